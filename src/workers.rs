//! Worker agents: the control plane's side (worker secret, stale window, the URL agents use)
//! and the `inferplane worker agent` command that runs on each GPU VM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use inferplane_api::WorkerSettings;
use inferplane_domain::worker_credentials::WorkerSecret;
use inferplane_processors::LifecycleSettings;

use crate::ConfigError;
use crate::secrets;

/// How the control plane treats worker agents.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Secret the agents' one-time bootstrap tokens are derived from (prefer
    /// INFERPLANE_WORKER_SECRET_FILE). Without it no agent can register. `demo` generates one.
    #[arg(long, env = "INFERPLANE_WORKER_SECRET", hide_env_values = true)]
    pub worker_secret: Option<String>,
    /// File holding the worker secret.
    #[arg(long, env = "INFERPLANE_WORKER_SECRET_FILE")]
    pub worker_secret_file: Option<PathBuf>,
    /// A worker whose last heartbeat is older than this is stale (its instance unavailable),
    /// in seconds.
    #[arg(long, env = "INFERPLANE_WORKER_STALE_AFTER_SECS", default_value_t = 30)]
    pub worker_stale_after_secs: u64,
    /// The control plane's base URL as worker VMs reach it (default: http:// and the listen
    /// address, 127.0.0.1 for an unspecified one: right for the simulator's VMs only).
    #[arg(long = "control-plane-url", env = "INFERPLANE_CONTROL_PLANE_URL")]
    pub worker_control_plane_url: Option<String>,
    /// Interval between heartbeats of the agents the bootstrap starts, in milliseconds.
    #[arg(long, env = "INFERPLANE_WORKER_HEARTBEAT_MS", default_value_t = 5000)]
    pub worker_heartbeat_ms: u64,
    /// Accept a registration only from the instance's public IP. Set to false only when
    /// agents reach the control plane through NAT or a proxy that hides their address.
    #[arg(long, env = "INFERPLANE_WORKER_CHECK_ADDRESS", default_value_t = true, action = clap::ArgAction::Set)]
    pub worker_check_address: bool,
}

/// The worker knobs, resolved.
pub struct Workers {
    pub secret: Option<WorkerSecret>,
    pub stale_after: Duration,
    pub control_plane_url: String,
    pub heartbeat: Duration,
    pub check_address: bool,
}

impl WorkerArgs {
    /// Resolves the flags; `generated` supplies a secret when none is configured (the demo's).
    pub fn resolve(
        &self,
        listen: SocketAddr,
        generated: Option<&dyn Fn() -> anyhow::Result<String>>,
    ) -> anyhow::Result<Workers> {
        let secret = secrets::resolve(
            "the worker secret",
            self.worker_secret.as_deref(),
            self.worker_secret_file.as_deref(),
        )?;
        let secret = match (secret, generated) {
            (Some(s), _) => Some(s),
            (None, Some(make)) => Some(make()?),
            (None, None) => None,
        };
        if let Some(s) = &secret
            && s.len() < 16
        {
            return Err(
                ConfigError("the worker secret must be at least 16 characters".into()).into(),
            );
        }
        let control_plane_url = match &self.worker_control_plane_url {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_string()
            }
            Some(u) => {
                return Err(ConfigError(format!(
                    "INFERPLANE_CONTROL_PLANE_URL must be an http(s) URL (got {u:?})"
                ))
                .into());
            }
            None => {
                let host = if listen.ip().is_unspecified() {
                    SocketAddr::new([127, 0, 0, 1].into(), listen.port())
                } else {
                    listen
                };
                format!("http://{host}")
            }
        };
        Ok(Workers {
            secret: secret.map(WorkerSecret::new),
            stale_after: Duration::from_secs(self.worker_stale_after_secs.max(1)),
            control_plane_url,
            heartbeat: Duration::from_millis(self.worker_heartbeat_ms.max(100)),
            check_address: self.worker_check_address,
        })
    }
}

impl Workers {
    /// The API's side.
    pub fn api(&self, engine_port: u16) -> WorkerSettings {
        WorkerSettings {
            secret: self.secret.clone(),
            stale_after: self.stale_after,
            check_address: self.check_address,
            engine_port,
        }
    }

    /// The lifecycle's side.
    pub fn apply(&self, settings: &mut LifecycleSettings) {
        settings.worker_stale_after = self.stale_after;
        settings.worker_secret = self.secret.clone();
        settings.control_plane_url = Some(self.control_plane_url.clone());
        settings.agent_heartbeat_interval = self.heartbeat;
    }
}

/// The demo's worker secret: reused from the data dir, or generated there (mode 0600).
pub fn demo_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("worker-secret");
    if let Some(s) = secrets::resolve("the demo worker secret", None, Some(&path))
        .ok()
        .flatten()
    {
        return Ok(s);
    }
    let secret = secrets::generate_token();
    std::fs::write(&path, format!("{secret}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(secret)
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// The worker agent of a GPU VM: registers with the control plane, heartbeats the
    /// engine's and the machine's state, serves /healthz, /readyz, /metrics and /info.
    Agent(inferplane_worker::agent::AgentArgs),
}

/// `inferplane worker agent`, until Ctrl-C or SIGTERM.
pub async fn run(command: WorkerCommand) -> anyhow::Result<()> {
    let WorkerCommand::Agent(args) = command;
    let config = args.config().map_err(|e| ConfigError(e.0))?;
    if config.bootstrap_token.is_none() {
        tracing::warn!(
            "no bootstrap token (INFERPLANE_AGENT_BOOTSTRAP_TOKEN_FILE): the agent can only go on with a worker token saved in its state dir"
        );
    }
    inferplane_worker::agent::Agent::run(config, args.listen, crate::serve::stop_signal())
        .await
        .map_err(|e| ConfigError(format!("cannot listen on {}: {e}", args.listen)).into())
}
