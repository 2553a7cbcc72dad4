//! A local Scaleway simulator: a real HTTP server speaking the Instance and Block Storage APIs
//! with the same routes, JSON shapes and status codes, for tests, `inferplane sim scaleway` and
//! `inferplane demo`.
//!
//! # What it simulates
//! - Servers: creation (201, `stopped`, `allowed_actions ["poweron","backup"]`, `public_ips []`)
//!   with validation (commercial type from [`catalog`], zone, exactly one of project or
//!   organization, image, volumes: `l_ssd` only on types with local storage), actions with the
//!   observed `state_detail` steps played out in compressed time (below), deletion of stopped
//!   servers only, `PATCH`, attach/detach of block volumes, user data.
//! - Public addresses: a dynamic IP is drawn from the configured pool (by default a random /24
//!   in 127/8, so that the demo can bind a mock worker on it and parallel simulators do not
//!   collide) and appears in `public_ips` (and the deprecated `public_ip`) once the server runs.
//!   Flexible IPs come from the same pool.
//! - Block volumes: `creating` then `available` after one step, `in_use` when attached,
//!   deletion refused while attached; `terminate` deletes local volumes and only detaches block
//!   volumes, like the real API.
//! - Lists with `page`/`per_page` (default 50, max 100), filters, `X-Total-Count` and `Link`.
//! - The product catalog and availability (`shortage` under an out-of-stock fault).
//! - Faults ([`Faults`]) set at start ([`SimConfig::faults`]) or at runtime, directly through
//!   [`SimHandle`] or through the admin API (no token needed: the simulator is a local test
//!   double): `GET|PUT /_sim/faults`, `GET /_sim/state` (servers, volumes, IPs, call counts per
//!   operation), `POST /_sim/reset`, `POST /_sim/servers/{id}/delete` (deleted behind the
//!   caller's back, in any state) and `POST /_sim/servers/{id}/stop` (stopped behind its back).
//!
//! # Server transitions
//!
//! Each accepted action applies its first step at once and the following ones one per configured
//! step duration (`--sim-step-ms`):
//!
//! | action | steps (`state` / `state_detail`) |
//! |---|---|
//! | poweron from `stopped` | starting/allocating node -> provisioning node -> booting kernel -> kernel-started -> running/booted (the reserved dynamic IP is attached) |
//! | poweron with an allocation failure | starting/allocating node -> stopped (the reserved IP is released) |
//! | poweron from `stopped in place` | starting/booting kernel -> kernel-started -> running/booted |
//! | poweroff | stopping -> stopped (dynamic IP released) |
//! | stop_in_place | stopping -> stopped in place (node and IP kept) |
//! | reboot | starting/rebooting -> running/booted |
//! | terminate | stopping/terminating -> gone (local volumes deleted, block volumes detached) |
//!
//! Error statuses are listed in [`error`]. Every response carries an `X-Request-Id`; requests
//! are logged at debug level without the token.
//!
//! # Running it
//! [`serve`] runs on a bound listener until a shutdown future completes (for the binary);
//! [`Simulator::start`] binds `127.0.0.1:0` in the background and returns a [`SimHandle`] with
//! the base URL and in-process admin helpers (for tests).

pub mod catalog;
pub mod config;
pub mod error;
pub mod faults;
mod http;
mod lifecycle;
mod ops;
mod paging;
pub mod views;
mod world;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{IpPool, SimConfig};
pub use error::SimError;
pub use faults::{BurstFault, Faults, StockFault};
pub use views::SimSnapshot;

use world::Shared;

/// The simulator could not start or stopped on an I/O error.
#[derive(Debug, thiserror::Error)]
pub enum SimServeError {
    /// The configuration is invalid.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// Binding or serving failed.
    #[error("simulator I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves the simulator on `listener` until `shutdown` completes (then drains in-flight
/// requests and returns).
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimServeError> {
    let settings = config.resolve().map_err(SimServeError::Config)?;
    run(listener, Shared::new(settings), shutdown).await
}

async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimServeError> {
    let local = listener.local_addr()?;
    tracing::info!(
        address = %local,
        zones = ?shared.settings.zones,
        step_ms = shared.settings.step.as_millis() as u64,
        ip_pool = %shared.settings.pool,
        authentication = if shared.settings.secret_key.is_some() { "secret key" } else { "any token" },
        "scaleway simulator listening"
    );
    axum::serve(listener, http::router(shared))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Entry point for tests: starts a simulator in the background.
pub struct Simulator;

impl Simulator {
    /// Binds `127.0.0.1:0` and serves in a background task.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimServeError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, config).await
    }

    /// Serves on `listener` in a background task.
    pub async fn start_on(
        listener: TcpListener,
        config: SimConfig,
    ) -> Result<SimHandle, SimServeError> {
        let settings = config.resolve().map_err(SimServeError::Config)?;
        let shared = Shared::new(settings);
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, shared.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(SimHandle {
            addr,
            base_url: format!("http://{addr}"),
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running simulator. Dropping it stops the server (without waiting).
pub struct SimHandle {
    addr: SocketAddr,
    base_url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), SimServeError>>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:<port>`: the base URL to give the client.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pool VM public addresses are drawn from.
    pub fn ip_pool(&self) -> IpPool {
        self.shared.settings.pool
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.shared.world().faults.clone()
    }

    /// Replaces the faults (like `PUT /_sim/faults`).
    pub fn set_faults(&self, faults: Faults) -> Result<(), SimError> {
        faults
            .validate()
            .map_err(|e| SimError::argument("faults", "constraint", e))?;
        self.shared.world().faults = faults;
        Ok(())
    }

    /// Changes the faults in place.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.shared.world().faults);
    }

    /// Everything the simulator holds (like `GET /_sim/state`).
    pub fn state(&self) -> SimSnapshot {
        self.shared.snapshot()
    }

    /// Deletes a server behind the caller's back. False when it does not exist.
    pub fn delete_server_behind_back(&self, server_id: &str) -> bool {
        self.shared.world().remove_server(server_id).is_some()
    }

    /// Stops a server behind the caller's back. False when it does not exist.
    pub fn stop_server_behind_back(&self, server_id: &str) -> bool {
        self.shared.world().force_stop(server_id)
    }

    /// Empties the world, restores the initial faults and zeroes the counters.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops the server and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) -> Result<(), SimServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| SimServeError::Io(std::io::Error::other(e)))?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
