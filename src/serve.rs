//! `serve` and `demo`: run a control-plane process until Ctrl-C or SIGTERM.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use inferplane_api::{OperatorToken, Settings};
use tokio::net::TcpListener;

use crate::ConfigError;
use crate::cli::{DemoArgs, HttpArgs, ServeArgs};
use crate::database::Database;
use crate::secrets;

fn settings(http: &HttpArgs) -> Settings {
    Settings {
        body_limit_bytes: http.body_limit_bytes,
        sse_keep_alive: Duration::from_secs(http.sse_keep_alive_secs.max(1)),
        sse_buffer_batches: http.sse_buffer_batches.max(16),
        poll_interval: Duration::from_millis(http.poll_interval_ms.max(10)),
        projection_batch: http.projection_batch.clamp(1, 100_000),
        run_projections: !http.no_projections,
        idempotency_ttl: Duration::from_secs(http.idempotency_ttl_hours.max(1) * 3600),
        ..Settings::default()
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
    run_until_stopped(db, listener, &token, settings(&args.http), None).await
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
    let listener = bind(&args.http).await?;
    let db = Database::open(&args.db).await?;
    db.migrate().await?;
    let seeded = crate::admin::seed(&db.pool).await?;
    tracing::info!(
        registered = seeded.registered(),
        present = seeded.present(),
        "catalog seeded (models, zones, instance types)"
    );
    let banner = Banner {
        addr: listener.local_addr()?.to_string(),
        token: token.clone(),
        token_file: generated.then(|| data_dir.join("admin-token")),
        private_db: db.is_private(),
    };
    run_until_stopped(db, listener, &token, settings(&args.http), Some(banner)).await
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
}

impl Banner {
    fn print(&self) {
        let Self {
            addr,
            token,
            token_file,
            private_db,
        } = self;
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
             \x20 API:       http://{addr}/api  (health: /healthz, metrics: /metrics)\n\
             \x20 token:     {token}{saved}\n\
             \x20 try:       curl -H \"Authorization: Bearer {auth}\" http://{addr}/api/models\n\
             \x20 live:      curl -N -H \"Authorization: Bearer {auth}\" \"http://{addr}/api/events/stream?after=0\"\n\
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
) -> anyhow::Result<()> {
    let mut server = inferplane_api::start(
        db.pool.clone(),
        listener,
        OperatorToken::new(token),
        settings,
    )
    .await?;
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
    db.close(true).await?;
    match failed {
        None => Ok(()),
        Some(part) => anyhow::bail!("{part} ended unexpectedly"),
    }
}

async fn stop_signal() {
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
