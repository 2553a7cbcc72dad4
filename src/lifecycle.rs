//! Flags of the instance lifecycle (provider, timeouts, processors) and its wiring into a
//! process.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use inferplane_api::Server;
use inferplane_processors::{
    Installer, Lifecycle, LifecycleSettings, ProcessorRunner, RunnerSettings,
};
use inferplane_scaleway::{ScalewayClient, ScalewayConfig, SecretKey};
use sqlx::PgPool;

use crate::ConfigError;
use crate::secrets;

/// The Scaleway account the control plane rents GPU VMs from.
#[derive(Debug, Clone, Args)]
pub struct ScalewayArgs {
    /// Base URL of the Scaleway API (point it at `inferplane sim scaleway` to try things out).
    #[arg(
        long,
        env = "INFERPLANE_SCALEWAY_API_URL",
        default_value = "https://api.scaleway.com"
    )]
    pub scaleway_api_url: String,
    /// Secret key (prefer INFERPLANE_SCALEWAY_SECRET_KEY_FILE: a flag shows in the process
    /// list). Without a key, `serve` runs no lifecycle processors.
    #[arg(long, env = "INFERPLANE_SCALEWAY_SECRET_KEY", hide_env_values = true)]
    pub scaleway_secret_key: Option<String>,
    /// File holding the secret key.
    #[arg(long, env = "INFERPLANE_SCALEWAY_SECRET_KEY_FILE")]
    pub scaleway_secret_key_file: Option<std::path::PathBuf>,
    /// Project the servers and volumes are created in.
    #[arg(long, env = "INFERPLANE_SCALEWAY_PROJECT_ID", default_value = "")]
    pub scaleway_project_id: String,
    /// Zones the reconciler sweeps (comma-separated).
    #[arg(
        long,
        env = "INFERPLANE_SCALEWAY_ZONES",
        value_delimiter = ',',
        default_value = "fr-par-1,fr-par-2,nl-ams-1"
    )]
    pub scaleway_zones: Vec<String>,
    /// Timeout of one Scaleway request, in seconds.
    #[arg(long, env = "INFERPLANE_SCALEWAY_TIMEOUT_SECS", default_value_t = 30)]
    pub scaleway_timeout_secs: u64,
}

/// Timeouts, retry bounds and intervals of the lifecycle process managers.
#[derive(Debug, Clone, Args)]
pub struct LifecycleArgs {
    /// Do not run the lifecycle processors in this process (another process runs them; they
    /// elect one leader each anyway).
    #[arg(long, env = "INFERPLANE_NO_PROCESSORS")]
    pub no_processors: bool,
    /// Steps each processor runs at once.
    #[arg(long, env = "INFERPLANE_PROCESSOR_CONCURRENCY", default_value_t = 64)]
    pub processor_concurrency: usize,
    /// Interval between looks at a server being started or stopped, in milliseconds.
    #[arg(long, env = "INFERPLANE_PROVIDER_POLL_MS", default_value_t = 3000)]
    pub provider_poll_ms: u64,
    /// Request to a running server with an IP, in seconds (then PROVIDER_START_TIMEOUT).
    #[arg(
        long,
        env = "INFERPLANE_PROVISIONING_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub provisioning_timeout_secs: u64,
    /// Power-on attempts after silent allocation failures (then PROVIDER_START_FAILED).
    #[arg(long, env = "INFERPLANE_MAX_POWER_ON_ATTEMPTS", default_value_t = 5)]
    pub max_power_on_attempts: u32,
    /// Failed provider calls in a row before an instance fails with PROVIDER_ERROR.
    #[arg(long, env = "INFERPLANE_MAX_PROVIDER_ERRORS", default_value_t = 8)]
    pub max_provider_errors: u32,
    /// Running server to SSH reachable, in seconds (then SSH_NOT_ACCESSIBLE).
    #[arg(long, env = "INFERPLANE_SSH_WAIT_TIMEOUT_SECS", default_value_t = 180)]
    pub ssh_wait_timeout_secs: u64,
    /// The whole bootstrap, in seconds (then INSTALL_FAILED).
    #[arg(long, env = "INFERPLANE_BOOTSTRAP_TIMEOUT_SECS", default_value_t = 900)]
    pub bootstrap_timeout_secs: u64,
    /// Install done to ready, in seconds (then STARTUP_TIMEOUT).
    #[arg(
        long,
        env = "INFERPLANE_READINESS_TIMEOUT_SECS",
        default_value_t = 3600
    )]
    pub readiness_timeout_secs: u64,
    /// Interval between readiness probes, in milliseconds.
    #[arg(long, env = "INFERPLANE_READINESS_PROBE_MS", default_value_t = 5000)]
    pub readiness_probe_ms: u64,
    /// Interval of the watchdog's look at serving instances, in seconds.
    #[arg(long, env = "INFERPLANE_WATCHDOG_INTERVAL_SECS", default_value_t = 30)]
    pub watchdog_interval_secs: u64,
    /// Interval of the reconciliation pass over each zone, in seconds.
    #[arg(
        long,
        env = "INFERPLANE_RECONCILE_INTERVAL_SECS",
        default_value_t = 300
    )]
    pub reconcile_interval_secs: u64,
    /// Tagged resources younger than this are never reaped as orphans, in seconds.
    #[arg(long, env = "INFERPLANE_ORPHAN_GRACE_SECS", default_value_t = 600)]
    pub orphan_grace_secs: u64,
    /// Image of new servers.
    #[arg(
        long,
        env = "INFERPLANE_SERVER_IMAGE",
        default_value = "ubuntu_jammy_gpu_os_12"
    )]
    pub server_image: String,
    /// Port of the engine's OpenAI-compatible API on worker VMs.
    #[arg(long, env = "INFERPLANE_ENGINE_PORT", default_value_t = 8000)]
    pub engine_port: u16,
}

impl LifecycleArgs {
    /// The lifecycle settings from the flags (the worker ones are applied by
    /// `workers::Workers::apply`).
    pub fn settings(&self) -> LifecycleSettings {
        LifecycleSettings {
            provider_poll_interval: Duration::from_millis(self.provider_poll_ms.max(10)),
            provisioning_timeout: Duration::from_secs(self.provisioning_timeout_secs.max(1)),
            max_power_on_attempts: self.max_power_on_attempts.max(1),
            max_provider_errors: self.max_provider_errors.max(1),
            ssh_wait_timeout: Duration::from_secs(self.ssh_wait_timeout_secs.max(1)),
            bootstrap_timeout: Duration::from_secs(self.bootstrap_timeout_secs.max(1)),
            readiness_timeout: Duration::from_secs(self.readiness_timeout_secs.max(1)),
            readiness_probe_interval: Duration::from_millis(self.readiness_probe_ms.max(10)),
            watchdog_interval: Duration::from_secs(self.watchdog_interval_secs.max(1)),
            reconcile_interval: Duration::from_secs(self.reconcile_interval_secs.max(1)),
            orphan_grace: Duration::from_secs(self.orphan_grace_secs),
            image: self.server_image.clone(),
            engine_port: self.engine_port,
            // Set from the worker flags (see `workers::Workers::apply`).
            ..LifecycleSettings::default()
        }
    }
}

/// A Scaleway client from the flags; `None` when no secret key is configured.
pub fn scaleway_client(args: &ScalewayArgs) -> anyhow::Result<Option<ScalewayClient>> {
    let key = secrets::resolve(
        "the Scaleway secret key",
        args.scaleway_secret_key.as_deref(),
        args.scaleway_secret_key_file.as_deref(),
    )?;
    let Some(key) = key else { return Ok(None) };
    if args.scaleway_project_id.trim().is_empty() {
        return Err(ConfigError(
            "a Scaleway project id is required with a secret key: set INFERPLANE_SCALEWAY_PROJECT_ID"
                .into(),
        )
        .into());
    }
    client(
        &args.scaleway_api_url,
        SecretKey::new(key),
        &args.scaleway_project_id,
        args.scaleway_zones
            .first()
            .map(String::as_str)
            .unwrap_or("fr-par-2"),
        Duration::from_secs(args.scaleway_timeout_secs.max(1)),
    )
    .map(Some)
}

pub fn client(
    base_url: &str,
    key: SecretKey,
    project: &str,
    zone: &str,
    timeout: Duration,
) -> anyhow::Result<ScalewayClient> {
    let config = ScalewayConfig::new(key, project)
        .with_base_url(base_url)
        .with_default_zone(zone)
        .with_request_timeout(timeout);
    ScalewayClient::new(config).map_err(|e| ConfigError(format!("Scaleway client: {e}")).into())
}

/// Starts every lifecycle processor as parts of `server`, sharing its LISTEN connection.
pub fn start_processors(
    server: &mut Server,
    pool: &PgPool,
    lifecycle: Arc<Lifecycle>,
    runner: RunnerSettings,
) {
    for processor in lifecycle.processors() {
        let runner = ProcessorRunner {
            processor,
            pool: pool.clone(),
            wakeups: server.wakeups(),
            settings: runner.clone(),
        };
        server.spawn_part("processor", move |stop| runner.run(stop));
    }
}

/// The lifecycle's shared context.
pub fn lifecycle(
    pool: &PgPool,
    cloud: ScalewayClient,
    settings: LifecycleSettings,
    installer: Arc<dyn Installer>,
    zones: Vec<String>,
) -> Arc<Lifecycle> {
    Arc::new(Lifecycle {
        store: inferplane_store::EventStore::new(pool.clone()),
        cloud,
        settings,
        installer,
        zones,
        instances: Default::default(),
    })
}
