//! The agent's loop: observe the engine, register when needed, heartbeat, back off while the
//! control plane is unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, watch};

use super::client::{CallError, ControlPlane};
use super::config::AgentConfig;
use super::engine::{self, EngineView};
use super::protocol::{GpuStats, Heartbeat, RegisterRequest, SystemStats, WorkerStatus};
use super::state::{self, Credentials};
use super::{nvidia, system};

/// The agent's version, sent with registrations and heartbeats.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Longest wait between two attempts while the control plane is down.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the agent last saw and did, shared with its HTTP endpoints.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub engine: EngineView,
    pub status: Option<WorkerStatus>,
    pub gpus: Vec<GpuStats>,
    pub system: SystemStats,
    pub registered: bool,
    pub install_attempt: Option<u32>,
    /// The instance status the control plane answered with last.
    pub instance_status: Option<String>,
    /// Unix milliseconds of the last accepted heartbeat.
    pub last_heartbeat_ok_ms: Option<u64>,
    pub last_error: Option<String>,
}

/// Counters of the agent's own `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub heartbeats_ok: AtomicU64,
    pub heartbeats_failed: AtomicU64,
    pub registrations_ok: AtomicU64,
    pub registrations_failed: AtomicU64,
    pub engine_scrapes_failed: AtomicU64,
}

/// The agent's shared state.
pub struct Shared {
    pub config: AgentConfig,
    pub observation: Mutex<Observation>,
    pub counters: Counters,
}

/// Runs the loop until `stop` turns true.
pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let config = &shared.config;
    let http = match reqwest::Client::builder()
        .local_address(config.source_ip)
        .connect_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client");
            return;
        }
    };
    let cp = ControlPlane::new(http.clone(), &config.control_plane_url);
    let mut creds = config
        .state_dir
        .as_deref()
        .and_then(|d| state::load(d, config.instance_id));
    let mut failures: u32 = 0;
    loop {
        let hb = observe(&shared, &http).await;
        let outcome = match &creds {
            Some(c) => heartbeat(&shared, &cp, c, &hb).await,
            None => match register(&shared, &cp).await {
                Ok(c) => {
                    creds = Some(c);
                    // Heartbeat at once: the control plane learns the engine's state now.
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        let wait = match outcome {
            Ok(()) => {
                failures = 0;
                config.heartbeat_interval
            }
            Err(CallError::UnknownToken) => {
                tracing::warn!("the control plane no longer knows this worker; registering again");
                if let Some(d) = config.state_dir.as_deref() {
                    state::forget(d);
                }
                creds = None;
                shared.observation.lock().await.registered = false;
                failures += 1;
                backoff(config.heartbeat_interval, failures)
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(config.heartbeat_interval, failures);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "control plane call failed");
                shared.observation.lock().await.last_error = Some(e.to_string());
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Exponential backoff from a fifth of the interval (at least 200 ms) to [`MAX_BACKOFF`],
/// with jitter so that a control plane coming back is not hit by every agent at once.
fn backoff(interval: Duration, failures: u32) -> Duration {
    let base = (interval / 5).max(Duration::from_millis(200));
    let exp = base.saturating_mul(1u32 << failures.min(10).saturating_sub(1));
    let capped = exp.min(MAX_BACKOFF);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    capped.mul_f64(0.75 + 0.5 * jitter)
}

async fn observe(shared: &Shared, http: &reqwest::Client) -> Heartbeat {
    let config = &shared.config;
    let probe_timeout = config
        .heartbeat_interval
        .clamp(Duration::from_millis(500), Duration::from_secs(3));
    let (view, gpus) = tokio::join!(
        engine::observe(http, &config.engine_url, probe_timeout),
        async {
            match &config.nvidia_smi {
                Some(program) => nvidia::query(program, Duration::from_secs(5)).await,
                None => Vec::new(),
            }
        },
    );
    if !view.reachable {
        shared
            .counters
            .engine_scrapes_failed
            .fetch_add(1, Ordering::Relaxed);
    }
    let disk = config.disk_path.clone();
    let system = tokio::task::spawn_blocking(move || system::read(&disk))
        .await
        .unwrap_or_default();
    let status = view.status(&config.model);
    let hb = Heartbeat {
        instance_id: config.instance_id,
        status,
        agent_version: AGENT_VERSION.to_string(),
        models: view.models.clone(),
        waiting: view.waiting,
        running: view.running,
        kv_cache_usage: view.kv_cache_usage,
        gpus: gpus.clone(),
        system: system.clone(),
    };
    let mut o = shared.observation.lock().await;
    o.engine = view;
    o.status = Some(status);
    o.gpus = gpus;
    o.system = system;
    hb
}

async fn register(shared: &Shared, cp: &ControlPlane) -> Result<Credentials, CallError> {
    let config = &shared.config;
    let Some(token) = config.bootstrap_token.clone() else {
        shared
            .counters
            .registrations_failed
            .fetch_add(1, Ordering::Relaxed);
        return Err(CallError::Refused {
            status: 0,
            code: "no-bootstrap-token".into(),
            detail: "no bootstrap token configured (INFERPLANE_AGENT_BOOTSTRAP_TOKEN_FILE)".into(),
        });
    };
    let req = RegisterRequest {
        instance_id: config.instance_id,
        bootstrap_token: token,
        agent_version: AGENT_VERSION.to_string(),
    };
    match cp.register(&req).await {
        Ok(r) => {
            shared
                .counters
                .registrations_ok
                .fetch_add(1, Ordering::Relaxed);
            let creds = Credentials {
                instance_id: r.instance_id,
                install_attempt: r.install_attempt,
                worker_token: r.worker_token,
            };
            if let Some(d) = config.state_dir.as_deref()
                && let Err(e) = state::save(d, &creds)
            {
                tracing::warn!(error = %e, dir = %d.display(), "cannot save the worker token; a restart will need to register again");
            }
            let mut o = shared.observation.lock().await;
            o.registered = true;
            o.install_attempt = Some(r.install_attempt);
            o.last_error = None;
            tracing::info!(instance = %config.instance_id, attempt = r.install_attempt, "registered with the control plane");
            Ok(creds)
        }
        Err(e) => {
            shared
                .counters
                .registrations_failed
                .fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

async fn heartbeat(
    shared: &Shared,
    cp: &ControlPlane,
    creds: &Credentials,
    hb: &Heartbeat,
) -> Result<(), CallError> {
    match cp.heartbeat(&creds.worker_token, hb).await {
        Ok(r) => {
            shared
                .counters
                .heartbeats_ok
                .fetch_add(1, Ordering::Relaxed);
            let mut o = shared.observation.lock().await;
            o.registered = true;
            o.install_attempt = Some(creds.install_attempt);
            o.instance_status = Some(r.instance_status);
            o.last_heartbeat_ok_ms = Some(unix_ms());
            o.last_error = None;
            Ok(())
        }
        Err(e) => {
            shared
                .counters
                .heartbeats_failed
                .fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        let i = Duration::from_secs(5);
        let first = backoff(i, 1);
        assert!(first >= Duration::from_millis(750) && first <= Duration::from_millis(1250));
        let later = backoff(i, 4);
        assert!(later >= Duration::from_secs(6) && later <= Duration::from_secs(10));
        assert!(backoff(i, 30) <= MAX_BACKOFF.mul_f64(1.25));
    }
}
