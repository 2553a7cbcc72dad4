//! Health, readiness, metrics, and projection status.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and every migration is applied.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (status, body) = match inferplane_store::migrations_pending(&state.pool).await {
        Ok(0) => (
            StatusCode::OK,
            serde_json::json!({ "status": "ready", "database": "ok", "migrations": "applied" }),
        ),
        Ok(n) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "not ready", "database": "ok", "migrations": format!("{n} pending") }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "status": "not ready", "database": "unreachable" }),
            )
        }
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /api/projections`: checkpoint and lag of every projection.
pub async fn projections(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let status = inferplane_projections::status(&state.pool).await?;
    Ok(Json(serde_json::json!({ "projections": status })))
}

/// Any route that does not exist.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// A route that exists, called with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this route does not accept that method",
    )
}
