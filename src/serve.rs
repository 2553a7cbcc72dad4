//! `serve` and `demo`: run a control-plane process until Ctrl-C or SIGTERM.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use inferplane_api::{OperatorToken, Settings};
use inferplane_processors::{AgentLaunch, LifecycleSettings, RunnerSettings};
use inferplane_scaleway::sim::{SimHandle, Simulator};
use tokio::net::TcpListener;

use crate::ConfigError;
use crate::cli::{DemoArgs, HttpArgs, ServeArgs, SimCommand};
use crate::database::Database;
use crate::lifecycle;
use crate::secrets;
use inferplane_processors::Lifecycle;

fn settings(
    http: &HttpArgs,
    engine_port: u16,
    workers: inferplane_api::WorkerSettings,
) -> Result<Settings, ConfigError> {
    Ok(Settings {
        body_limit_bytes: http.body_limit_bytes,
        sse_keep_alive: Duration::from_secs(http.sse_keep_alive_secs.max(1)),
        sse_buffer_batches: http.sse_buffer_batches.max(16),
        write_timeout: Duration::from_secs(http.write_timeout_secs.max(1)),
        position_wait: Duration::from_millis(http.position_wait_ms.min(60_000)),
        poll_interval: Duration::from_millis(http.poll_interval_ms.max(10)),
        projection_batch: http.projection_batch.clamp(1, 100_000),
        run_projections: !http.no_projections,
        idempotency_ttl: Duration::from_secs(http.idempotency_ttl_hours.max(1) * 3600),
        gateway: http.gateway.settings(engine_port)?,
        workers,
        ui_dir: ui_dir(http)?,
        ..Settings::default()
    })
}

/// The console folder: the one given (which must hold a build), else `ui/dist` when built.
fn ui_dir(http: &HttpArgs) -> Result<Option<std::path::PathBuf>, ConfigError> {
    match &http.ui_dir {
        Some(dir) if inferplane_api::ui::is_built(dir) => Ok(Some(dir.clone())),
        Some(dir) => Err(ConfigError(format!(
            "--ui-dir {}: no index.html there (build the console with `npm ci && npm run build` in ui/)",
            dir.display()
        ))),
        None => {
            let default = std::path::PathBuf::from(crate::ui_build::DEFAULT_DIST);
            if inferplane_api::ui::is_built(&default) {
                Ok(Some(default))
            } else {
                tracing::info!("no built console in ui/dist: serving the API only");
                Ok(None)
            }
        }
    }
}

fn operator_token(http: &HttpArgs) -> Result<Option<String>, ConfigError> {
    let token = secrets::resolve(
        "the operator token",
        http.admin_token.as_deref(),
        http.admin_token_file.as_deref(),
    )?;
    if let Some(t) = &token
        && t.len() < 16
    {
        return Err(ConfigError(
            "the operator token must be at least 16 characters".into(),
        ));
    }
    Ok(token)
}

async fn bind(http: &HttpArgs) -> anyhow::Result<TcpListener> {
    TcpListener::bind(http.listen)
        .await
        .map_err(|e| ConfigError(format!("cannot listen on {}: {e}", http.listen)).into())
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let token = operator_token(&args.http)?.ok_or_else(|| {
        ConfigError(
            "an operator token is required: set INFERPLANE_ADMIN_TOKEN_FILE (or INFERPLANE_ADMIN_TOKEN)"
                .into(),
        )
    })?;
    let workers = args.workers.resolve(args.http.listen, None)?;
    if workers.secret.is_none() && args.installer.wants_ssh(false) {
        // The bootstrap would install an agent that can never register: every instance would
        // go unavailable a stale window after it became ready.
        return Err(ConfigError(
            "bootstrapping VMs over SSH needs a worker secret for their agents: set INFERPLANE_WORKER_SECRET_FILE (or INFERPLANE_WORKER_SECRET)"
                .into(),
        )
        .into());
    }
    if workers.secret.is_none() {
        tracing::warn!(
            "no worker secret (INFERPLANE_WORKER_SECRET_FILE): worker agents cannot register, and ready instances become unavailable once their heartbeats are stale"
        );
    }
    let listener = bind(&args.http).await?;
    let db = Database::open(&args.db).await?;
    if args.migrate {
        db.migrate().await?;
    } else {
        let pending = inferplane_store::migrations_pending(&db.pool).await?;
        if pending > 0 {
            return Err(ConfigError(format!(
                "{pending} migrations are pending: run `inferplane migrate` or serve with --migrate=true"
            ))
            .into());
        }
    }
    let processors = if args.lifecycle.no_processors {
        None
    } else {
        match lifecycle::scaleway_client(&args.scaleway)? {
            Some(cloud) => {
                // Without an SSH key, VMs that are not on this machine fail at the bootstrap
                // (SSH_NOT_ACCESSIBLE), and are then cleaned up.
                let mut settings = args.lifecycle.settings();
                workers.apply(&mut settings);
                let installer = args.installer.installer(
                    false,
                    args.lifecycle.engine_port,
                    inferplane_worker::engine::EngineConfig::default(),
                    AgentLaunch::from_settings(&settings),
                )?;
                Some(lifecycle::lifecycle(
                    &db.pool,
                    cloud,
                    settings,
                    installer,
                    args.scaleway.scaleway_zones.clone(),
                ))
            }
            None => {
                tracing::warn!(
                    "no Scaleway secret key (INFERPLANE_SCALEWAY_SECRET_KEY_FILE): instance lifecycle processors are not running; requested instances wait"
                );
                None
            }
        }
    };
    let parts = Parts {
        processors,
        runner: runner_settings(&args.lifecycle),
        sim: None,
    };
    let api = settings(
        &args.http,
        args.lifecycle.engine_port,
        workers.api(args.lifecycle.engine_port),
    )?;
    run_until_stopped(db, listener, &token, api, None, parts).await
}

/// What runs beside the API in this process.
struct Parts {
    processors: Option<Arc<Lifecycle>>,
    runner: RunnerSettings,
    /// The demo's simulator, stopped with the process.
    sim: Option<SimHandle>,
}

fn runner_settings(args: &crate::lifecycle::LifecycleArgs) -> RunnerSettings {
    RunnerSettings {
        concurrency: args.processor_concurrency.max(1),
        ..RunnerSettings::default()
    }
}

/// `inferplane sim scaleway`: the simulator alone, until Ctrl-C or SIGTERM.
pub async fn sim(command: SimCommand) -> anyhow::Result<()> {
    let SimCommand::Scaleway(args) = command;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| ConfigError(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "Scaleway simulator: point INFERPLANE_SCALEWAY_API_URL at http://{addr}");
    inferplane_scaleway::sim::serve(listener, args.config, stop_signal())
        .await
        .map_err(|e| match e {
            inferplane_scaleway::sim::SimServeError::Config(m) => ConfigError(m).into(),
            other => anyhow::Error::new(other),
        })
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let data_dir = args.db.data_dir.clone();
    if args.reset {
        reset(&args).await?;
    }
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let (token, generated) = match operator_token(&args.http)? {
        Some(t) => (t, false),
        None => (demo_token(&data_dir)?, true),
    };
    let make_secret = || crate::workers::demo_secret(&data_dir);
    let workers = args.workers.resolve(args.http.listen, Some(&make_secret))?;
    let mut lc_settings = demo_settings(&args.lifecycle);
    workers.apply(&mut lc_settings);
    // Checked before anything starts: a configuration mistake is a one-line exit. Every
    // simulated VM runs a worker agent, as real ones do.
    let installer = args.installer.installer(
        true,
        args.lifecycle.engine_port,
        args.engine.clone(),
        AgentLaunch::from_settings(&lc_settings),
    )?;
    if !args.no_ui_build && args.http.ui_dir.is_none() {
        crate::ui_build::build_if_stale(std::path::Path::new("ui"));
    }
    let settings = settings(
        &args.http,
        args.lifecycle.engine_port,
        workers.api(args.lifecycle.engine_port),
    )?;
    let console = settings.ui_dir.is_some();
    let listener = bind(&args.http).await?;
    let db = Database::open(&args.db).await?;
    db.migrate().await?;
    let seeded = crate::admin::seed(&db.pool).await?;
    tracing::info!(
        registered = seeded.registered(),
        present = seeded.present(),
        "catalog seeded (models, zones, instance types)"
    );
    // The provider: a simulator in this process, with a key of its own.
    let sim_key = secrets::generate_token();
    let sim_listener = TcpListener::bind(args.sim_listen)
        .await
        .map_err(|e| ConfigError(format!("cannot listen on {}: {e}", args.sim_listen)))?;
    let sim_config = args
        .sim
        .clone()
        .with_secret_key(inferplane_scaleway::SecretKey::new(sim_key.clone()));
    let sim = Simulator::start_on(sim_listener, sim_config)
        .await
        .map_err(|e| ConfigError(format!("Scaleway simulator: {e}")))?;
    let cloud = lifecycle::client(
        sim.base_url(),
        inferplane_scaleway::SecretKey::new(sim_key),
        DEMO_PROJECT,
        args.sim
            .zones
            .first()
            .map(String::as_str)
            .unwrap_or("fr-par-2"),
        Duration::from_secs(10),
    )?;
    let lc = lifecycle::lifecycle(
        &db.pool,
        cloud,
        lc_settings,
        installer,
        args.sim.zones.clone(),
    );
    let banner = Banner {
        addr: listener.local_addr()?.to_string(),
        token: token.clone(),
        token_file: generated.then(|| data_dir.join("admin-token")),
        private_db: db.is_private(),
        sim_url: sim.base_url().to_string(),
        console,
    };
    let parts = Parts {
        processors: (!args.lifecycle.no_processors).then_some(lc),
        runner: runner_settings(&args.lifecycle),
        sim: Some(sim),
    };
    run_until_stopped(db, listener, &token, settings, Some(banner), parts).await
}

/// The project id the demo's simulated account uses.
const DEMO_PROJECT: &str = "00000000-0000-4000-8000-00000000de70";

/// The demo compresses the lifecycle's intervals so that an instance is ready in seconds.
fn demo_settings(args: &crate::lifecycle::LifecycleArgs) -> LifecycleSettings {
    let mut s = args.settings();
    s.provider_poll_interval = s.provider_poll_interval.min(Duration::from_millis(250));
    s.readiness_probe_interval = s.readiness_probe_interval.min(Duration::from_millis(250));
    s.watchdog_interval = s.watchdog_interval.min(Duration::from_secs(5));
    s.reconcile_interval = s.reconcile_interval.min(Duration::from_secs(60));
    s
}

async fn reset(args: &DemoArgs) -> anyhow::Result<()> {
    let dir = &args.db.data_dir;
    if !dir.exists() {
        return Ok(());
    }
    if args.db.database_url.is_none() && dir.join("postgres").exists() {
        // Stop a cluster that may still run there before deleting its files.
        let db = Database::open(&args.db).await?;
        db.stop_cluster().await?;
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "demo data removed");
    Ok(())
}

/// The demo's token: reused from the data dir, or generated and saved there (mode 0600).
fn demo_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("admin-token");
    if let Some(t) = secrets::resolve("the demo token", None, Some(&path))
        .ok()
        .flatten()
    {
        return Ok(t);
    }
    let token = secrets::generate_token();
    std::fs::write(&path, format!("{token}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(token)
}

struct Banner {
    addr: String,
    token: String,
    /// Where the token was saved, when the demo generated or reused its own.
    token_file: Option<std::path::PathBuf>,
    private_db: bool,
    sim_url: String,
    /// Whether the console is served at `/`.
    console: bool,
}

impl Banner {
    fn print(&self) {
        let Self {
            addr,
            token,
            token_file,
            private_db,
            sim_url,
            console,
        } = self;
        let console = if *console {
            format!("http://{addr}/  (log in with the token below)")
        } else {
            "not built (see the messages above): API only".to_string()
        };
        let db = if *private_db {
            "private PostgreSQL cluster in the data dir"
        } else {
            "DATABASE_URL"
        };
        let (saved, auth) = match token_file {
            Some(f) => (
                format!("\n             (saved in {})", f.display()),
                format!("$(cat {})", f.display()),
            ),
            None => (String::new(), "$INFERPLANE_ADMIN_TOKEN".to_string()),
        };
        println!(
            "\ninferplane demo is running ({db})\n\
             \x20 console:   {console}\n\
             \x20 API:       http://{addr}/api  (health: /healthz, metrics: /metrics)\n\
             \x20 token:     {token}{saved}\n\
             \x20 try:       curl -H \"Authorization: Bearer {auth}\" http://{addr}/api/models\n\
             \x20 live:      curl -N -H \"Authorization: Bearer {auth}\" \"http://{addr}/api/events/stream?after=0\"\n\
             \x20 instance:  curl -H \"Authorization: Bearer {auth}\" -H 'Content-Type: application/json' \\\n\
             \x20              -d '{{\"model\": \"meta-llama/Llama-3.1-8B-Instruct\"}}' http://{addr}/api/instances\n\
             \x20 API key:   inferplane keys create --name demo   (prints an sk-ip-... key; or POST /api/keys)\n\
             \x20 OpenAI:    curl -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' \\\n\
             \x20              -d '{{\"model\": \"meta-llama/Llama-3.1-8B-Instruct\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hi\"}}]}}' \\\n\
             \x20              http://{addr}/v1/chat/completions   (any OpenAI SDK: base_url http://{addr}/v1)\n\
             \x20 Scaleway:  simulator at {sim_url} (faults: {sim_url}/_sim/faults)\n\
             \x20 stop:      Ctrl-C\n"
        );
    }
}

async fn run_until_stopped(
    db: Database,
    listener: TcpListener,
    token: &str,
    settings: Settings,
    banner: Option<Banner>,
    parts: Parts,
) -> anyhow::Result<()> {
    let mut server = inferplane_api::start(
        db.pool.clone(),
        listener,
        OperatorToken::new(token),
        settings,
    )
    .await?;
    if let Some(lc) = &parts.processors {
        lifecycle::start_processors(&mut server, &db.pool, lc.clone(), parts.runner.clone());
    }
    if let Some(b) = banner {
        b.print();
    }
    let failed = tokio::select! {
        _ = stop_signal() => None,
        part = server.wait_for_failure() => Some(part),
    };
    match failed {
        None => tracing::info!("stopping"),
        Some(part) => tracing::error!(part, "a part of the process ended unexpectedly; stopping"),
    }
    server.shutdown().await;
    if let Some(sim) = parts.sim {
        let _ = sim.shutdown().await;
    }
    db.close(true).await?;
    match failed {
        None => Ok(()),
        Some(part) => anyhow::bail!("{part} ended unexpectedly"),
    }
}

pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
