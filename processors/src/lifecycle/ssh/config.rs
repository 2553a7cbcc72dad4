//! The SSH installer's settings; secrets in them never show in `Debug`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::script::{RemoteLayout, ScriptFlavour};
use super::session::SshAccess;

/// A secret string: `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Everything the SSH installer needs (each is a flag of `serve` and `demo`).
#[derive(Debug, Clone)]
pub struct SshConfig {
    pub access: SshAccess,
    /// SSH port of the VMs.
    pub port: u16,
    /// Connect here instead of `<public IP>:<port>` (development and tests: a local sshd).
    pub target_override: Option<SocketAddr>,
    /// One phase may run this long; then it fails.
    pub phase_timeout: Duration,
    /// The worker agent binary uploaded to each VM.
    pub agent_binary: PathBuf,
    /// The Hugging Face token given to vLLM (a root-only file on the VM).
    pub hf_token: Option<Secret>,
    pub flavour: ScriptFlavour,
    pub layout: RemoteLayout,
    pub vllm_image: String,
    pub haproxy_image: String,
    /// Port of the engine (vLLM, or HAProxy in multi mode) on the VM.
    pub engine_port: u16,
    /// Header multi mode's HAProxy keeps sessions sticky on.
    pub session_header: String,
    /// Output is recorded at least this often while a phase runs.
    pub log_flush_interval: Duration,
    /// And in chunks of at most this many bytes.
    pub log_chunk_bytes: usize,
}

impl SshConfig {
    /// The defaults, with the given key and agent binary.
    pub fn new(key_file: PathBuf, agent_binary: PathBuf) -> Self {
        Self {
            access: SshAccess {
                user: "root".into(),
                key_file,
                connect_timeout: Duration::from_secs(10),
            },
            port: 22,
            target_override: None,
            phase_timeout: Duration::from_secs(600),
            agent_binary,
            hf_token: None,
            flavour: ScriptFlavour::Vllm,
            layout: RemoteLayout::default(),
            vllm_image: DEFAULT_VLLM_IMAGE.into(),
            haproxy_image: DEFAULT_HAPROXY_IMAGE.into(),
            engine_port: 8000,
            session_header: "X-Session-Id".into(),
            log_flush_interval: Duration::from_millis(500),
            log_chunk_bytes: 4096,
        }
    }
}

/// The vLLM image, pinned (a new tag is a deliberate change).
pub const DEFAULT_VLLM_IMAGE: &str = "vllm/vllm-openai:v0.11.0";
/// The HAProxy image of multi mode, pinned.
pub const DEFAULT_HAPROXY_IMAGE: &str = "haproxy:3.2";

/// Agent environment entries whose values are redacted from the output like the HF token.
pub(super) fn is_secret_name(name: &str) -> bool {
    ["_TOKEN", "_SECRET", "_KEY", "_PASSWORD"]
        .iter()
        .any(|s| name.ends_with(s))
}
