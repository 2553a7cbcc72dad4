//! The worker agent: runs on each GPU VM beside the engine, registers with the control plane
//! and heartbeats what the engine and the machine are doing.
//!
//! - **Register** (`POST /api/workers/register`) with the one-time bootstrap token the
//!   bootstrap put in its environment; the control plane answers with a worker token, kept in
//!   the state dir (mode 0600) so that a restart goes on without the bootstrap token.
//! - **Heartbeat** (`POST /api/workers/heartbeat`, `Authorization: Bearer <worker token>`)
//!   every interval: status, models served (`/v1/models`), vLLM's queue (`waiting`,
//!   `running`) and KV-cache usage from the engine's `/metrics`, GPUs from `nvidia-smi`,
//!   load, memory and disk from `/proc` and `statvfs`.
//! - While the control plane is down, retries with exponential backoff and jitter; told that
//!   its token is unknown (401 `unknown-worker-token`), registers again.
//! - Serves `/healthz`, `/readyz` (200 only when the engine lists the model), `/metrics` (its
//!   own counters) and `/info` (JSON).
//!
//! Many agents fit in one process (no global state): the demo runs one per simulated VM.

mod client;
mod config;
mod engine;
pub mod nvidia;
pub mod prometheus;
pub mod protocol;
mod run;
mod server;
mod state;
pub mod system;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

pub use client::{CallError, ControlPlane};
pub use config::{AgentArgs, AgentConfig, AgentConfigError};
pub use engine::EngineView;
pub use run::{AGENT_VERSION, Observation};
pub use state::Credentials;

/// Starts agents.
pub struct Agent;

/// A running agent; [`shutdown`](Self::shutdown) stops it.
pub struct AgentHandle {
    addr: SocketAddr,
    shared: Arc<run::Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Starts the agent's loop and its endpoints on `listener`.
    pub fn start_on(listener: TcpListener, config: AgentConfig) -> io::Result<AgentHandle> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(run::Shared {
            config,
            observation: Mutex::new(Observation::default()),
            counters: run::Counters::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let app = server::router(shared.clone());
        let mut http_stop = stopped.clone();
        let http = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "agent endpoints stopped");
            }
        });
        let looping = tokio::spawn(run::run(shared.clone(), stopped));
        Ok(AgentHandle {
            addr,
            shared,
            stop,
            tasks: vec![http, looping],
        })
    }

    /// Runs an agent until `stop` resolves (the `inferplane worker agent` command).
    pub async fn run(
        config: AgentConfig,
        listen: SocketAddr,
        stop: impl std::future::Future<Output = ()>,
    ) -> io::Result<()> {
        let listener = TcpListener::bind(listen).await?;
        tracing::info!(addr = %listener.local_addr()?, instance = %config.instance_id, "worker agent listening");
        let handle = Self::start_on(listener, config)?;
        stop.await;
        handle.shutdown().await;
        Ok(())
    }
}

impl AgentHandle {
    /// Address of the agent's endpoints.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the agent last saw and did.
    pub async fn observation(&self) -> Observation {
        self.shared.observation.lock().await.clone()
    }

    /// Stops the loop and the endpoints.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Stops at once, as a dying VM would (no goodbye to the control plane either way).
    pub fn abort(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}
