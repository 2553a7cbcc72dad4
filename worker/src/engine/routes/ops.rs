//! The non-inference routes: model list, health, version, metrics, and the `/_mock` controls.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::engine::error::ApiError;
use crate::engine::fault::Fault;
use crate::engine::metrics;
use crate::engine::protocol::models::{ModelCard, ModelList, ModelPermission};
use crate::engine::protocol::parse_body;
use crate::engine::state::Engine;
use crate::engine::stats::EngineStats;

/// What `GET /version` reports: vLLM's version field, marked as the mock.
pub const MOCK_VERSION: &str = concat!("0.10.2-mock+inferplane-", env!("CARGO_PKG_VERSION"));

pub(super) async fn list_models(State(engine): State<Arc<Engine>>) -> Result<Response, ApiError> {
    if engine.fault() == Fault::Dead {
        return Err(ApiError::Dead);
    }
    let created = engine.started_at;
    let data = engine
        .models
        .iter()
        .map(|model| ModelCard {
            id: model.spec.name.clone(),
            object: "model",
            created,
            owned_by: "vllm",
            root: model.spec.name.clone(),
            parent: None,
            max_model_len: engine.config.max_model_len,
            permission: vec![ModelPermission {
                id: format!("modelperm-{}", uuid::Uuid::new_v4().simple()),
                object: "model_permission",
                created,
                allow_create_engine: false,
                allow_sampling: true,
                allow_logprobs: true,
                allow_search_indices: false,
                allow_view: true,
                allow_fine_tuning: false,
                organization: "*",
                group: None,
                is_blocking: false,
            }],
        })
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    })
    .into_response())
}

pub(super) async fn health(State(engine): State<Arc<Engine>>) -> StatusCode {
    if engine.fault() == Fault::Dead {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

pub(super) async fn version() -> Json<serde_json::Value> {
    Json(json!({ "version": MOCK_VERSION }))
}

pub(super) async fn prometheus(State(engine): State<Arc<Engine>>) -> Response {
    let mut response = metrics::render(&engine.models).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

pub(super) async fn stats(State(engine): State<Arc<Engine>>) -> Json<EngineStats> {
    Json(engine.stats())
}

pub(super) async fn get_fault(State(engine): State<Arc<Engine>>) -> Json<Fault> {
    Json(engine.fault())
}

pub(super) async fn set_fault(
    State(engine): State<Arc<Engine>>,
    body: Bytes,
) -> Result<Json<Fault>, ApiError> {
    let fault: Fault = parse_body(&body)?;
    fault
        .validate()
        .map_err(|err| ApiError::bad_request(err.to_string(), Some("mode")))?;
    tracing::info!(%fault, "mock engine fault set");
    engine.set_fault(fault);
    Ok(Json(fault))
}

pub(super) async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

pub(super) async fn method_not_allowed() -> Response {
    let body = json!({
        "error": {
            "message": "Method Not Allowed",
            "type": "MethodNotAllowedError",
            "param": null,
            "code": 405,
        }
    });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}
