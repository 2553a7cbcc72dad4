//! The agent's settings: flags with `INFERPLANE_AGENT_*` environment twins, secrets also from
//! files.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use uuid::Uuid;

/// `inferplane worker agent` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The instance this VM is (a UUID; the bootstrap sets it).
    #[arg(long, env = "INFERPLANE_AGENT_INSTANCE_ID")]
    pub instance_id: Uuid,
    /// Base URL of the control plane, as this VM reaches it.
    #[arg(long, env = "INFERPLANE_AGENT_CONTROL_PLANE_URL")]
    pub control_plane_url: String,
    /// Base URL of the local engine (vLLM or HAProxy in front of several).
    #[arg(
        long,
        env = "INFERPLANE_AGENT_ENGINE_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub engine_url: String,
    /// The model the engine must serve for the worker to be ready.
    #[arg(long, env = "INFERPLANE_AGENT_MODEL")]
    pub model: String,
    /// Address of the agent's own endpoints (/healthz, /readyz, /metrics, /info).
    #[arg(long, env = "INFERPLANE_AGENT_LISTEN", default_value = "0.0.0.0:9100")]
    pub listen: SocketAddr,
    /// Interval between heartbeats, in milliseconds.
    #[arg(long, env = "INFERPLANE_AGENT_HEARTBEAT_MS", default_value_t = 5000)]
    pub heartbeat_ms: u64,
    /// The one-time bootstrap token (prefer INFERPLANE_AGENT_BOOTSTRAP_TOKEN_FILE).
    #[arg(long, env = "INFERPLANE_AGENT_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,
    /// File holding the bootstrap token.
    #[arg(long, env = "INFERPLANE_AGENT_BOOTSTRAP_TOKEN_FILE")]
    pub bootstrap_token_file: Option<PathBuf>,
    /// Folder where the agent keeps its worker token (file `worker-token`, mode 0600), so that
    /// a restart does not need the one-time bootstrap token again.
    #[arg(
        long,
        env = "INFERPLANE_AGENT_STATE_DIR",
        default_value = "/var/lib/inferplane-agent"
    )]
    pub state_dir: PathBuf,
    /// Source address of connections to the control plane (default: chosen by the system).
    #[arg(long, env = "INFERPLANE_AGENT_SOURCE_IP")]
    pub source_ip: Option<IpAddr>,
    /// The nvidia-smi program (absent on CPU machines: no GPUs are reported; empty: never run).
    #[arg(
        long,
        env = "INFERPLANE_AGENT_NVIDIA_SMI",
        default_value = "nvidia-smi"
    )]
    pub nvidia_smi: String,
}

/// A configuration mistake, reported on one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AgentConfigError(pub String);

/// The agent's settings, secrets resolved.
#[derive(Clone)]
pub struct AgentConfig {
    pub instance_id: Uuid,
    pub control_plane_url: String,
    pub engine_url: String,
    pub model: String,
    pub heartbeat_interval: Duration,
    pub bootstrap_token: Option<String>,
    /// `None`: the worker token lives in memory only (the demo's in-process agents).
    pub state_dir: Option<PathBuf>,
    pub source_ip: Option<IpAddr>,
    /// The nvidia-smi program; `None` reports no GPUs (simulated VMs).
    pub nvidia_smi: Option<String>,
    /// The filesystem reported as the disk (the state dir, else `/`).
    pub disk_path: PathBuf,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("instance_id", &self.instance_id)
            .field("control_plane_url", &self.control_plane_url)
            .field("engine_url", &self.engine_url)
            .field("model", &self.model)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<redacted>"),
            )
            .field("state_dir", &self.state_dir)
            .field("source_ip", &self.source_ip)
            .finish_non_exhaustive()
    }
}

impl AgentArgs {
    pub fn config(&self) -> Result<AgentConfig, AgentConfigError> {
        let bootstrap_token = secret(
            "the bootstrap token",
            self.bootstrap_token.as_deref(),
            self.bootstrap_token_file.as_deref(),
        )?;
        for (name, url) in [
            ("--control-plane-url", &self.control_plane_url),
            ("--engine-url", &self.engine_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(AgentConfigError(format!(
                    "{name} must be an http:// or https:// URL (got {url:?})"
                )));
            }
        }
        if self.model.trim().is_empty() {
            return Err(AgentConfigError("--model must not be empty".into()));
        }
        Ok(AgentConfig {
            instance_id: self.instance_id,
            control_plane_url: self.control_plane_url.trim_end_matches('/').to_string(),
            engine_url: self.engine_url.trim_end_matches('/').to_string(),
            model: self.model.trim().to_string(),
            heartbeat_interval: Duration::from_millis(self.heartbeat_ms.max(100)),
            bootstrap_token,
            state_dir: Some(self.state_dir.clone()),
            source_ip: self.source_ip,
            nvidia_smi: Some(self.nvidia_smi.clone()).filter(|p| !p.is_empty()),
            disk_path: self.state_dir.clone(),
        })
    }
}

/// The secret given directly or read from `file` (trailing newline removed); both is an error.
fn secret(
    name: &str,
    value: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<String>, AgentConfigError> {
    match (value.filter(|v| !v.is_empty()), file) {
        (Some(_), Some(_)) => Err(AgentConfigError(format!(
            "{name} is given both directly and as a file; give only one"
        ))),
        (Some(v), None) => Ok(Some(v.to_string())),
        (None, Some(path)) => {
            let content = std::fs::read_to_string(path).map_err(|e| {
                AgentConfigError(format!("cannot read {name} file {}: {e}", path.display()))
            })?;
            let s = content.trim_end_matches(['\n', '\r']).to_string();
            Ok((!s.is_empty()).then_some(s))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    #[test]
    fn defaults_and_a_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        // Not hex: the instance id (a UUID) is in the output too.
        std::fs::write(&file, "tok-Zq9-secret\n").unwrap();
        let id = Uuid::now_v7().to_string();
        let cli = Cli::parse_from([
            "agent",
            "--instance-id",
            &id,
            "--control-plane-url",
            "http://10.0.0.1:8080/",
            "--model",
            "m",
            "--bootstrap-token-file",
            file.to_str().unwrap(),
        ]);
        assert_eq!(cli.agent.listen.to_string(), "0.0.0.0:9100");
        let config = cli.agent.config().unwrap();
        assert_eq!(config.bootstrap_token.as_deref(), Some("tok-Zq9-secret"));
        assert_eq!(config.control_plane_url, "http://10.0.0.1:8080");
        assert_eq!(config.engine_url, "http://127.0.0.1:8000");
        assert_eq!(config.heartbeat_interval, Duration::from_secs(5));
        assert!(
            !format!("{config:?}").contains("tok-Zq9-secret"),
            "the token is redacted"
        );
    }

    #[test]
    fn a_token_given_twice_or_a_bad_url_is_refused() {
        let id = Uuid::now_v7().to_string();
        let cli = Cli::parse_from([
            "agent",
            "--instance-id",
            &id,
            "--control-plane-url",
            "10.0.0.1:8080",
            "--model",
            "m",
        ]);
        assert!(cli.agent.config().unwrap_err().0.contains("http"));
        assert!(secret("t", Some("a"), Some(Path::new("/x"))).is_err());
    }
}
