//! The admin API under `/_sim/` (no token needed: the simulator is a local test double).
//!
//! - `GET /_sim/faults`, `PUT /_sim/faults`: read or replace the [`Faults`] document.
//! - `GET /_sim/state`: every server, volume and IP, call counts per operation, faults.
//! - `POST /_sim/reset`: empty world, initial faults, counters at zero.
//! - `POST /_sim/servers/{id}/delete`: the server disappears behind the caller's back (any
//!   state; local volumes vanish, block volumes are detached, IPs released).
//! - `POST /_sim/servers/{id}/stop`: the server is stopped behind the caller's back.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::sim::error::SimError;
use crate::sim::faults::Faults;
use crate::sim::world::Shared;

pub(super) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/state", get(state))
        .route("/_sim/reset", post(reset))
        .route("/_sim/servers/{id}/delete", post(delete_server))
        .route("/_sim/servers/{id}/stop", post(stop_server))
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(shared.world().faults.clone())
}

async fn put_faults(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Json<Faults>, SimError> {
    let faults: Faults = serde_json::from_slice(&body)
        .map_err(|e| SimError::argument("faults", "format", e.to_string()))?;
    faults
        .validate()
        .map_err(|e| SimError::argument("faults", "constraint", e))?;
    shared.world().faults = faults.clone();
    tracing::info!(?faults, "simulator faults replaced");
    Ok(Json(faults))
}

async fn state(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.snapshot()).into_response()
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.reset();
    StatusCode::NO_CONTENT
}

async fn delete_server(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<StatusCode, SimError> {
    shared
        .world()
        .remove_server(&id)
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| SimError::server_not_found(&id))
}

async fn stop_server(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<StatusCode, SimError> {
    if shared.world().force_stop(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(SimError::server_not_found(&id))
    }
}
