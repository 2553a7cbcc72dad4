//! `/api/workers`: the worker agents on the GPU VMs.
//!
//! - `POST /api/workers/register` (no operator token): the agent presents its instance id and
//!   the one-time bootstrap token, derived from the worker secret and the install attempt; it
//!   must connect from the instance's public IP (unless the operator disabled the check). It
//!   gets a random worker token, shown once; the instance records only its SHA-256
//!   (`WorkerRegistered`), one registration per install attempt.
//! - `POST /api/workers/heartbeat` (`Authorization: Bearer <worker token>`): the gauges go to
//!   `worker_telemetry`, overwritten each time; only changes of health (the agent's status, or
//!   heartbeats resuming after a stale spell) and of the model set become events.
//! - `GET /api/workers`, `GET /api/workers/{instance_id}` (operator token): the telemetry with
//!   its freshness.

mod telemetry;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use inferplane_domain::instance::{Instance, InstanceCommand, InstanceId};
use inferplane_domain::worker_credentials::{token_hash, verify_bootstrap_token};
use inferplane_domain::{Actor, DEFAULT_TENANT, EventMetadata};
use inferplane_store::CommandContext;
use inferplane_worker::agent::protocol::{
    Heartbeat, HeartbeatResponse, RegisterRequest, RegisterResponse, UNKNOWN_WORKER_TOKEN,
    WORKER_TOKEN_PREFIX, WorkerStatus,
};
use serde_json::json;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, command_error, instance_rejection};
use crate::extract::{PathId, StrictJson};

fn registrations(outcome: &'static str) {
    metrics::counter!("inferplane_worker_registrations_total", "outcome" => outcome).increment(1);
}

fn heartbeats(outcome: &'static str) {
    metrics::counter!("inferplane_worker_heartbeats_total", "outcome" => outcome).increment(1);
}

/// Metadata of what a worker's call causes: the worker is the actor.
fn worker_context(id: Uuid, headers: &HeaderMap) -> CommandContext {
    let command_id = Uuid::now_v7();
    CommandContext::new(EventMetadata {
        correlation_id: command_id,
        causation_id: format!("command:{command_id}"),
        actor: Actor::system(format!("worker:{id}")),
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(128).collect()),
        tenant_id: DEFAULT_TENANT,
    })
}

fn unknown_token() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::UNAUTHORIZED,
        UNKNOWN_WORKER_TOKEN,
        "Unknown worker token",
        "this worker token is not (or no longer) valid for the instance; register again",
    );
    e.headers.push((
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"inferplane-workers\""),
    ));
    e
}

/// A fresh worker token: `wk_` and 32 random bytes in hex.
fn new_worker_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{WORKER_TOKEN_PREFIX}{}", hex::encode(bytes))
}

pub async fn register(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    StrictJson { value: req, .. }: StrictJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let settings = &state.settings.workers;
    let Some(secret) = &settings.secret else {
        registrations("disabled");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "worker-registration-disabled",
            "Worker registration disabled",
            "the control plane has no worker secret (INFERPLANE_WORKER_SECRET_FILE)",
        ));
    };
    let id = InstanceId(req.instance_id);
    let loaded = state.store.load::<Instance>(&id.to_string(), None).await?;
    let Some(inst) = loaded.aggregate.state else {
        registrations("unknown_instance");
        return Err(instance_rejection(
            inferplane_domain::instance::InstanceError::NotFound,
        ));
    };
    let attempt = inst.install.attempt;
    if !verify_bootstrap_token(secret, id, attempt, &req.bootstrap_token) {
        registrations("bad_token");
        tracing::info!(instance = %id, attempt, "worker registration refused: wrong bootstrap token");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid-bootstrap-token",
            "Invalid bootstrap token",
            "the bootstrap token is not the one of this instance's current install attempt",
        ));
    }
    let from_ip = if settings.check_address {
        let Some(Extension(ConnectInfo(peer))) = peer else {
            registrations("address_mismatch");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "worker-address-mismatch",
                "Refused by the instance",
                "the caller's address is unknown",
            ));
        };
        Some(peer.ip().to_string())
    } else {
        None
    };
    let token = new_worker_token();
    let command = InstanceCommand::RegisterWorker {
        attempt,
        token_hash: token_hash(&token),
        agent_version: req.agent_version.clone(),
        from_ip,
    };
    let ctx = worker_context(req.instance_id, &headers);
    if let Err(e) = state
        .store
        .execute::<Instance>(&id.to_string(), command, &(), &ctx)
        .await
    {
        let problem = command_error(e, instance_rejection);
        registrations(match problem.code {
            "worker-address-mismatch" => "address_mismatch",
            "worker-already-registered" => "already_registered",
            "illegal-transition" => "wrong_status",
            "internal" => "error",
            _ => "refused",
        });
        return Err(problem);
    }
    registrations("accepted");
    tracing::info!(instance = %id, attempt, agent_version = %req.agent_version, "worker registered");
    let body = RegisterResponse {
        instance_id: req.instance_id,
        worker_token: token,
        install_attempt: attempt,
        stale_after_ms: settings.stale_after.as_millis() as u64,
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

/// The bearer token of the request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

pub async fn heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<StrictJson<Heartbeat>, ApiError>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let settings = &state.settings.workers;
    let Some(token) = bearer(&headers) else {
        heartbeats("unauthorized");
        let mut e = unknown_token();
        e.detail = "a worker token is required (Authorization: Bearer <worker token>)".into();
        return Err(e);
    };
    let StrictJson { value: hb, .. } = body.inspect_err(|_| heartbeats("invalid"))?;
    let cred = telemetry::credential(&state.pool, hb.instance_id).await?;
    let presented = token_hash(token);
    let valid = cred
        .token_hash
        .as_deref()
        .is_some_and(|h| bool::from(h.as_bytes().ct_eq(presented.as_bytes())));
    if !valid {
        heartbeats("unauthorized");
        tracing::info!(instance = %hb.instance_id, "heartbeat refused: unknown worker token");
        return Err(unknown_token());
    }
    let ip = cred.public_ip.as_deref().unwrap_or("0.0.0.0");
    let engine_url = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("http://[{v6}]:{}", settings.engine_port),
        _ => format!("http://{ip}:{}", settings.engine_port),
    };
    let prev = telemetry::record(&state.pool, &hb, &engine_url, cred.install_attempt).await?;
    heartbeats("accepted");
    record_changes(&state, &headers, &hb, prev.as_ref()).await;
    Ok(Json(HeartbeatResponse {
        instance_status: cred.instance_status.unwrap_or_default(),
        stale_after_ms: settings.stale_after.as_millis() as u64,
    }))
}

/// Records the meaningful changes a heartbeat shows: a new status (or the first heartbeat, or
/// the first after a stale spell) as the worker's health, a new model set. The aggregate
/// ignores what it already knows. A refusal (the instance moved on) is not the worker's
/// problem: the heartbeat is still accepted.
async fn record_changes(
    state: &AppState,
    headers: &HeaderMap,
    hb: &Heartbeat,
    prev: Option<&telemetry::Previous>,
) {
    let stale_after = state.settings.workers.stale_after;
    let mut commands = Vec::new();
    let health_changed = prev.is_none_or(|p| p.status != hb.status.as_str() || p.age > stale_after);
    if health_changed {
        let reason = match hb.status {
            WorkerStatus::Ready => "the engine serves the model".to_string(),
            WorkerStatus::Starting => "the engine does not list the model yet".to_string(),
            WorkerStatus::EngineDown => "the engine does not answer".to_string(),
        };
        commands.push(InstanceCommand::RecordWorkerHealth {
            healthy: hb.status == WorkerStatus::Ready,
            reason,
        });
    }
    let mut models = hb.models.clone();
    models.sort();
    models.dedup();
    let models_changed = prev.is_none_or(|p| {
        let mut before = p.models.clone();
        before.sort();
        before.dedup();
        before != models
    });
    if models_changed {
        commands.push(InstanceCommand::RecordWorkerModels { models });
    }
    let id = hb.instance_id.to_string();
    for command in commands {
        let name = command.name();
        let ctx = worker_context(hb.instance_id, headers);
        match state
            .store
            .execute::<Instance>(&id, command, &(), &ctx)
            .await
        {
            Ok(_) => {}
            Err(inferplane_store::CommandError::Rejected(e)) => {
                tracing::debug!(instance = %id, command = name, reason = %e, "heartbeat change not recorded");
            }
            Err(e) => {
                tracing::warn!(instance = %id, command = name, error = %e, "cannot record a heartbeat change");
            }
        }
    }
}

pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let stale_after = state.settings.workers.stale_after;
    let rows = telemetry::list(&state.pool, stale_after).await?;
    Ok(Json(json!({
        "stale_after_ms": stale_after.as_millis() as u64,
        "items": rows,
    })))
}

pub async fn get(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<telemetry::WorkerRow>, ApiError> {
    telemetry::get(&state.pool, state.settings.workers.stale_after, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no worker has sent a heartbeat for {id}")))
}

/// Publishes `inferplane_workers{freshness}` (workers of instances in service) every 5 s.
pub async fn report_staleness(
    pool: sqlx::PgPool,
    stale_after: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> &'static str {
    loop {
        match telemetry::freshness(&pool, stale_after).await {
            Ok((fresh, stale)) => {
                metrics::gauge!("inferplane_workers", "freshness" => "fresh").set(fresh as f64);
                metrics::gauge!("inferplane_workers", "freshness" => "stale").set(stale as f64);
            }
            Err(e) => tracing::debug!(error = %e, "worker freshness unavailable"),
        }
        tokio::select! {
            _ = inferplane_projections::stopped(&mut stop) => return "worker staleness reporter",
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
