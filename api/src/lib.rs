//! The HTTP surface of inferplane and the process that serves it.
//!
//! [`server::start`] wires one process: the LISTEN notifier, the live stream hub, the
//! projection runners, and the axum router ([`routes::router`]).

pub mod auth;
pub mod error;
pub mod extract;
pub mod gateway_feed;
pub mod hub;
pub mod routes;
pub mod server;
pub mod stream_conn;
pub mod telemetry;
pub mod ui;
pub mod write_deadline;

use std::time::Duration;

use inferplane_store::EventStore;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

pub use auth::OperatorToken;
pub use server::{Server, start};

/// Knobs of the HTTP surface and of the background loops of a process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
    /// Interval of SSE keep-alive comments.
    pub sse_keep_alive: Duration,
    /// Events read per store query when a stream client replays.
    pub sse_replay_page: i64,
    /// Batches the hub keeps for slow clients before cutting them off.
    pub sse_buffer_batches: usize,
    /// A connection whose write waits this long for the peer to take bytes is closed.
    pub write_timeout: Duration,
    /// How long a request given the position of a committed event that is not readable yet
    /// (an older transaction is open) waits for it before answering `503`.
    pub position_wait: Duration,
    /// Fallback poll when no notification arrives.
    pub poll_interval: Duration,
    /// Events per projection transaction.
    pub projection_batch: i64,
    /// Run the projection runners in this process (they elect one leader per projection).
    pub run_projections: bool,
    /// How long an `Idempotency-Key` is remembered; a retry after that appends again.
    pub idempotency_ttl: Duration,
    /// Folder of the built operator console (`ui/dist`), served at `/`; `None`: API only.
    pub ui_dir: Option<std::path::PathBuf>,
    /// The `/v1` gateway.
    pub gateway: inferplane_gateway::GatewaySettings,
    /// Worker agents: registration and heartbeats.
    pub workers: WorkerSettings,
}

/// How the control plane treats worker agents (`/api/workers/*`).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The secret bootstrap tokens are derived from; `None` refuses every registration (503).
    pub secret: Option<inferplane_domain::worker_credentials::WorkerSecret>,
    /// A worker whose last heartbeat is older than this is stale.
    pub stale_after: Duration,
    /// Accept a registration only from the instance's recorded public IP. Turn off only when
    /// agents reach the control plane through NAT or a proxy that hides their address.
    pub check_address: bool,
    /// Port of the engine on worker VMs: the telemetry's `engine_url` is
    /// `http://<public ip>:<engine_port>`.
    pub engine_port: u16,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            secret: None,
            stale_after: Duration::from_secs(30),
            check_address: true,
            engine_port: 8000,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            sse_keep_alive: Duration::from_secs(15),
            sse_replay_page: 500,
            sse_buffer_batches: 4096,
            write_timeout: Duration::from_secs(60),
            position_wait: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            projection_batch: 1000,
            run_projections: true,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            gateway: inferplane_gateway::GatewaySettings::default(),
            workers: WorkerSettings::default(),
            ui_dir: None,
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub store: EventStore,
    pub hub: hub::StreamHub,
    pub operator_token: OperatorToken,
    pub metrics: PrometheusHandle,
    pub settings: Settings,
    /// The `/v1` gateway of this process.
    pub gateway: std::sync::Arc<inferplane_gateway::Gateway>,
    /// Turns true when the process stops; live streams end with a `reconnect` event.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}
