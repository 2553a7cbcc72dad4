//! Command-line interface: every knob is a flag with an `INFERPLANE_*` environment twin.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "inferplane",
    version,
    about = "Event-sourced control plane for self-hosted LLM inference"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane: API, live event stream, projections.
    Serve(Box<ServeArgs>),
    /// Run the whole product locally: a private PostgreSQL (unless DATABASE_URL is set),
    /// the catalog seeded, the control plane serving.
    Demo(Box<DemoArgs>),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Inspect or rebuild projections (read models).
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Manage the model catalog.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Manage API keys for /v1 (the key is printed once, on stdout).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Token usage: exports for FinOps.
    Usage {
        #[command(subcommand)]
        command: UsageCommand,
    },
    /// Measure the event store, projections and live stream against raw PostgreSQL.
    Bench(crate::bench::BenchArgs),
    /// Run a simulator of an outside service.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// Replay an aggregate's history from the event log, for auditors.
    Replay {
        #[command(subcommand)]
        command: ReplayCommand,
    },
    /// Run the worker side on a GPU VM.
    Worker {
        #[command(subcommand)]
        command: crate::workers::WorkerCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// An instance's events (position, time, type, actor, status and progress after each,
    /// a summary), then the instance at the end or at --at.
    Instance(ReplayInstanceArgs),
}

#[derive(Debug, Args)]
pub struct ReplayInstanceArgs {
    /// The instance's id (a UUID).
    pub id: String,
    /// Stop at this point: an RFC 3339 time (2026-11-25T14:35:00Z) or a stream position.
    #[arg(long, env = "INFERPLANE_REPLAY_AT")]
    pub at: Option<String>,
    /// Print JSON ({"history": [...], "state": {...}}) instead of a table.
    #[arg(long, env = "INFERPLANE_JSON")]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Name, checkpoint and lag of every projection.
    Status {
        #[command(flatten)]
        db: DbArgs,
        /// Print JSON instead of a table.
        #[arg(long, env = "INFERPLANE_JSON")]
        json: bool,
    },
    /// Replay a projection from the first event into a fresh read model, then swap it in.
    /// The API keeps serving the old one meanwhile.
    Rebuild {
        /// Projection name (see `projections status`).
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Register the seed catalog of open models; models already registered are left as they are.
    Seed(DbArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (only the key, on stdout, for scripts).
    Create(KeysCreateArgs),
    /// Revoke a key: it stops working on every gateway process within a second.
    Revoke(KeysRevokeArgs),
}

#[derive(Debug, Args)]
pub struct KeysCreateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// A name for people (who or what uses the key).
    #[arg(long)]
    pub name: String,
    /// Models the key may use (comma-separated or repeated); all when absent.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Requests per minute.
    #[arg(long = "rpm")]
    pub rpm_limit: Option<i64>,
    /// Tokens per minute.
    #[arg(long = "tpm")]
    pub tpm_limit: Option<i64>,
    /// Tokens per calendar month (UTC).
    #[arg(long)]
    pub budget_tokens: Option<i64>,
    /// When the key stops working (RFC 3339).
    #[arg(long)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Args)]
pub struct KeysRevokeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The key's id (from `GET /api/keys`).
    pub id: uuid::Uuid,
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Export usage rows (hourly by default) as CSV or JSON lines, streamed.
    Export(UsageExportArgs),
}

#[derive(Debug, Args)]
pub struct UsageExportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// csv or json (one object per line).
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Start of the range (RFC 3339); the beginning of time when absent.
    #[arg(long)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of the range (RFC 3339, exclusive); now when absent.
    #[arg(long)]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Grouping: any of key, model, worker, endpoint (comma-separated); all four by default.
    #[arg(long)]
    pub group_by: Option<String>,
    /// hour, day or month.
    #[arg(long, default_value = "hour")]
    pub bucket: String,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log filter (tracing EnvFilter syntax).
    #[arg(
        long = "log",
        env = "INFERPLANE_LOG",
        default_value = "info,sqlx=warn",
        global = true
    )]
    pub filter: String,
    /// Log line format.
    #[arg(
        long,
        env = "INFERPLANE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL. When unset, a private cluster under the data dir is used (started if
    /// needed).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Folder of local state: the private PostgreSQL cluster and the demo's generated token.
    #[arg(long, env = "INFERPLANE_DATA_DIR", default_value = "./.inferplane")]
    pub data_dir: PathBuf,
    /// Folder of the PostgreSQL server binaries (initdb, pg_ctl); searched when unset.
    #[arg(long, env = "INFERPLANE_PG_BIN")]
    pub pg_bin: Option<PathBuf>,
    /// Maximum database connections of this process.
    #[arg(long, env = "INFERPLANE_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,
    /// Most appends written together by one statement (group commit: the appends of a store
    /// that queue while one is written go in the next). 1 writes each append alone.
    #[arg(long, env = "INFERPLANE_APPEND_GROUP_MAX", default_value_t = inferplane_store::DEFAULT_APPEND_GROUP_MAX as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub append_group_max: u16,
}

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address to listen on.
    #[arg(long, env = "INFERPLANE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Operator token (prefer INFERPLANE_ADMIN_TOKEN_FILE: a flag shows in the process list).
    #[arg(long, env = "INFERPLANE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the operator token.
    #[arg(long, env = "INFERPLANE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "INFERPLANE_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Interval of keep-alive comments on live streams, in seconds.
    #[arg(long, env = "INFERPLANE_SSE_KEEP_ALIVE_SECS", default_value_t = 15)]
    pub sse_keep_alive_secs: u64,
    /// Event batches buffered for live-stream clients before a slow one is cut off.
    #[arg(long, env = "INFERPLANE_SSE_BUFFER_BATCHES", default_value_t = 4096)]
    pub sse_buffer_batches: usize,
    /// Seconds a write may wait for the peer to take bytes (the send buffer full) before the
    /// connection is closed: a live-stream client that stopped reading, or a stalled reader
    /// of any response.
    #[arg(long, env = "INFERPLANE_WRITE_TIMEOUT_SECS", default_value_t = 60)]
    pub write_timeout_secs: u64,
    /// Milliseconds a request given the position of a just-committed event waits for it to
    /// become readable (older transactions to end) before answering 503.
    #[arg(long, env = "INFERPLANE_POSITION_WAIT_MS", default_value_t = 5000)]
    pub position_wait_ms: u64,
    /// Fallback poll of the event store when no notification arrives, in milliseconds.
    #[arg(long, env = "INFERPLANE_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// Events applied per projection transaction.
    #[arg(long, env = "INFERPLANE_PROJECTION_BATCH", default_value_t = 1000)]
    pub projection_batch: i64,
    /// Hours an Idempotency-Key is remembered; a retry after that appends again.
    #[arg(long, env = "INFERPLANE_IDEMPOTENCY_TTL_HOURS", default_value_t = 24)]
    pub idempotency_ttl_hours: u64,
    /// Do not run projection runners in this process (another process runs them).
    #[arg(long, env = "INFERPLANE_NO_PROJECTIONS")]
    pub no_projections: bool,
    /// Folder of the built operator console, served at `/` [default: `ui/dist` when it exists].
    #[arg(long, env = "INFERPLANE_UI_DIR")]
    pub ui_dir: Option<PathBuf>,
    #[command(flatten)]
    pub gateway: crate::gateway::GatewayArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    /// Apply pending migrations before serving.
    #[arg(long, env = "INFERPLANE_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate: bool,
    #[command(flatten)]
    pub scaleway: crate::lifecycle::ScalewayArgs,
    #[command(flatten)]
    pub lifecycle: crate::lifecycle::LifecycleArgs,
    #[command(flatten)]
    pub workers: crate::workers::WorkerArgs,
    #[command(flatten)]
    pub installer: crate::installer::InstallerArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    /// Delete the data dir (private cluster and generated token) and start afresh.
    #[arg(long)]
    pub reset: bool,
    /// Do not build the console (`npm ci` + `npm run build` in `ui/`) when its sources are newer
    /// than `ui/dist`.
    #[arg(long, env = "INFERPLANE_DEMO_NO_UI_BUILD")]
    pub no_ui_build: bool,
    /// Address of the demo's Scaleway simulator (port 0: any free port).
    #[arg(
        long,
        env = "INFERPLANE_DEMO_SIM_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub sim_listen: SocketAddr,
    #[command(flatten)]
    pub sim: inferplane_scaleway::sim::SimConfig,
    #[command(flatten)]
    pub engine: inferplane_worker::engine::EngineConfig,
    #[command(flatten)]
    pub lifecycle: crate::lifecycle::LifecycleArgs,
    #[command(flatten)]
    pub workers: crate::workers::WorkerArgs,
    #[command(flatten)]
    pub installer: crate::installer::InstallerArgs,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A local Scaleway API (servers, block volumes, IPs, products) with time compression and
    /// fault injection under /_sim/, for trying the control plane without an account.
    Scaleway(SimScalewayArgs),
}

#[derive(Debug, Args)]
pub struct SimScalewayArgs {
    /// Address to listen on.
    #[arg(long, env = "INFERPLANE_SIM_LISTEN", default_value = "127.0.0.1:4010")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub config: inferplane_scaleway::sim::SimConfig,
}
