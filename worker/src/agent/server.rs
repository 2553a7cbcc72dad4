//! The agent's own endpoints: `/healthz`, `/readyz`, `/metrics`, `/info`.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use super::protocol::WorkerStatus;
use super::run::{AGENT_VERSION, Shared};

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/info", get(info))
        .with_state(shared)
}

/// The agent process is alive.
async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 only when the engine lists the expected model.
async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let status = s.observation.lock().await.status;
    match status {
        Some(WorkerStatus::Ready) => (StatusCode::OK, "ready\n").into_response(),
        other => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: {}\n",
                other.map_or("not observed yet", WorkerStatus::as_str)
            ),
        )
            .into_response(),
    }
}

async fn info(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let o = s.observation.lock().await.clone();
    let c = &s.config;
    Json(json!({
        "instance_id": c.instance_id,
        "agent_version": AGENT_VERSION,
        "model": c.model,
        "engine_url": c.engine_url,
        "control_plane_url": c.control_plane_url,
        "heartbeat_interval_ms": c.heartbeat_interval.as_millis() as u64,
        "registered": o.registered,
        "install_attempt": o.install_attempt,
        "status": o.status.map(WorkerStatus::as_str),
        "instance_status": o.instance_status,
        "models": o.engine.models,
        "waiting": o.engine.waiting,
        "running": o.engine.running,
        "kv_cache_usage": o.engine.kv_cache_usage,
        "gpus": o.gpus,
        "system": o.system,
        "last_heartbeat_ok_ms": o.last_heartbeat_ok_ms,
        "last_error": o.last_error,
    }))
}

/// The agent's own series, in the Prometheus text format.
async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let o = s.observation.lock().await.clone();
    let n = &s.counters;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "inferplane_agent_heartbeats_ok_total",
        "Heartbeats the control plane accepted.",
        n.heartbeats_ok.load(Ordering::Relaxed),
    );
    counter(
        "inferplane_agent_heartbeats_failed_total",
        "Heartbeats that failed (control plane down or refusing).",
        n.heartbeats_failed.load(Ordering::Relaxed),
    );
    counter(
        "inferplane_agent_registrations_ok_total",
        "Registrations the control plane accepted.",
        n.registrations_ok.load(Ordering::Relaxed),
    );
    counter(
        "inferplane_agent_registrations_failed_total",
        "Registrations that failed.",
        n.registrations_failed.load(Ordering::Relaxed),
    );
    counter(
        "inferplane_agent_engine_scrapes_failed_total",
        "Looks at the engine that got no answer.",
        n.engine_scrapes_failed.load(Ordering::Relaxed),
    );
    let ready = u8::from(o.status == Some(WorkerStatus::Ready));
    let _ = writeln!(
        out,
        "# HELP inferplane_agent_engine_ready 1 when the engine lists the expected model.\n# TYPE inferplane_agent_engine_ready gauge\ninferplane_agent_engine_ready {ready}"
    );
    let _ = writeln!(
        out,
        "# HELP inferplane_agent_registered 1 when the agent holds a worker token.\n# TYPE inferplane_agent_registered gauge\ninferplane_agent_registered {}",
        u8::from(o.registered)
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
