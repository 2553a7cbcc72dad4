//! A loopback "VM" for the SSH installer's tests: an sshd (see `sshd.rs`), a folder standing
//! for the VM's root file system, an agent binary, and an installing instance pinned to it.

use std::path::PathBuf;
use std::time::Duration;

use inferplane_domain::catalog::Provider;
use inferplane_domain::instance::{
    InstanceEvent, InstanceRequested, InstanceState, InstanceStatus, VllmMode, state_after,
};
use inferplane_processors::lifecycle::ssh::{RemoteLayout, Secret};
use inferplane_processors::{InstallContext, ScriptFlavour, SshConfig, SshInstaller};

use super::sshd::{self, Sshd, SshdKeys};

pub const TOKEN: &str = "hf_TestTokenThatMustNeverLeak42";
pub const HARMLESS: &str = include_str!("../../templates/harmless.sh");

/// A loopback "VM": an sshd, a folder standing for its root file system, an agent binary.
pub struct Vm {
    pub keys: SshdKeys,
    pub sshd: Sshd,
    pub root: tempfile::TempDir,
    pub agent: PathBuf,
    _agent_dir: tempfile::TempDir,
}

impl Vm {
    pub async fn start() -> Option<Self> {
        if !sshd::available() {
            return None;
        }
        let keys = SshdKeys::generate();
        let sshd = Sshd::start(&keys).await;
        let agent_dir = tempfile::tempdir().unwrap();
        let agent = agent_dir.path().join("inferplane");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&agent, bytes).unwrap();
        Some(Self {
            keys,
            sshd,
            root: tempfile::tempdir().unwrap(),
            agent,
            _agent_dir: agent_dir,
        })
    }

    pub fn layout(&self) -> RemoteLayout {
        RemoteLayout::under(&self.root.path().display().to_string())
    }

    pub fn config(&self, flavour: ScriptFlavour) -> SshConfig {
        let mut c = SshConfig::new(self.keys.client_key(), self.agent.clone());
        c.access.user = sshd::current_user();
        c.target_override = Some(self.sshd.addr);
        c.layout = self.layout();
        c.flavour = flavour;
        c.phase_timeout = Duration::from_secs(30);
        c.log_flush_interval = Duration::from_millis(100);
        c.hf_token = Some(Secret::new(TOKEN));
        c
    }

    pub fn installer(&self, flavour: ScriptFlavour) -> SshInstaller {
        SshInstaller::new(self.config(flavour)).expect("installer")
    }

    /// An installing instance whose pinned host key is this server's.
    pub fn instance(&self) -> InstanceState {
        instance_pinned(&self.keys.host_fingerprint())
    }
}

pub fn harmless(sleep_secs: u32) -> ScriptFlavour {
    ScriptFlavour::Harmless {
        sleep_secs,
        fail_phase: None,
    }
}

pub fn instance_pinned(fingerprint: &str) -> InstanceState {
    let requested = InstanceRequested {
        model_id: uuid::Uuid::now_v7(),
        model_repo: "org/test-model-8b".into(),
        model_required_vram_gb: 16,
        zone: "fr-par-2".into(),
        allowed_zones: vec!["fr-par-2".into()],
        instance_type: "L4-1-24G".into(),
        gpu_count: 1,
        vram_per_gpu_gb: 24,
        hourly_price_micro_eur: 750_000,
        data_volume_gb: 50,
        vllm_mode: VllmMode::Mono,
        provider: Provider::Scaleway,
    };
    let mut state = state_after([InstanceEvent::InstanceRequested(requested)])
        .state
        .expect("requested");
    state.status = InstanceStatus::Installing;
    state.public_ip = Some("127.0.0.1".into());
    state.ssh_host_key = Some(fingerprint.to_string());
    state
}

pub fn context() -> InstallContext {
    InstallContext {
        agent_env: vec![
            ("INFERPLANE_AGENT_INSTANCE_ID".into(), "i-1".into()),
            ("INFERPLANE_AGENT_MODEL".into(), "org/test-model-8b".into()),
            (
                "INFERPLANE_AGENT_TEST_TOKEN".into(),
                "agent-secret-77".into(),
            ),
        ],
        timeout: Duration::from_secs(60),
    }
}
