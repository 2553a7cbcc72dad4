pub mod catalog;
pub mod events;
pub mod instances;
pub mod keys;
pub mod models;
pub mod ops;
mod respond;
pub mod usage;
pub mod workers;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post, put};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use self::catalog::{instance_types as types, zones};
use crate::AppState;
use crate::auth::require_operator;
use crate::telemetry::track_http;

/// The whole HTTP surface: open health and metrics, everything under `/api` behind the
/// operator token.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/models", get(models::list).post(models::register))
        .route("/models/{id}", get(models::get).patch(models::update))
        .route("/models/{id}/activate", post(models::activate))
        .route("/models/{id}/deactivate", post(models::deactivate))
        .route("/models/{id}/history", get(models::history))
        .route(
            "/models/{id}/compatible-types",
            get(catalog::compatible_types),
        )
        .route("/zones", get(zones::list).post(zones::register))
        .route("/zones/{id}", get(zones::get).patch(zones::update))
        .route("/zones/{id}/activate", post(zones::activate))
        .route("/zones/{id}/deactivate", post(zones::deactivate))
        .route("/zones/{id}/history", get(zones::history))
        .route("/instance-types", get(types::list).post(types::register))
        .route("/instance-types/{id}", get(types::get).patch(types::update))
        .route("/instance-types/{id}/activate", post(types::activate))
        .route("/instance-types/{id}/deactivate", post(types::deactivate))
        .route("/instance-types/{id}/history", get(types::history))
        .route(
            "/instance-types/{id}/availability/{zone}",
            put(types::put_availability).delete(types::delete_availability),
        )
        .route("/instances", get(instances::list).post(instances::request))
        .route(
            "/instances/{id}",
            get(instances::get).delete(instances::terminate),
        )
        .route("/instances/{id}/reinstall", post(instances::reinstall))
        .route("/instances/{id}/archive", post(instances::archive))
        .route("/instances/{id}/drain", post(instances::drain))
        .route("/instances/{id}/history", get(instances::history))
        .route("/instances/{id}/state", get(instances::state_at))
        .route("/keys", get(keys::list).post(keys::create))
        .route(
            "/keys/{id}",
            get(keys::get).patch(keys::update).delete(keys::revoke),
        )
        .route("/keys/{id}/rotate", post(keys::rotate))
        .route("/keys/{id}/history", get(keys::history))
        .route("/usage", get(usage::usage))
        .route("/usage/export", get(usage::export))
        .route("/costs", get(usage::costs))
        .route("/events", get(events::list))
        .route("/events/stream", get(events::stream))
        .route("/projections", get(ops::projections))
        .route("/workers", get(workers::list))
        .route("/workers/{id}", get(workers::get))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(
            state.operator_token.clone(),
            require_operator,
        ));
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    let app = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        // Worker agents authenticate with their own tokens, not the operator's.
        .route("/api/workers/register", post(workers::register))
        .route("/api/workers/heartbeat", post(workers::heartbeat))
        .nest("/api", api)
        .nest_service(
            "/v1",
            inferplane_gateway::proxy::router(state.gateway.clone()),
        );
    // Every route above keeps priority; only what matches none of them reaches the console.
    let app = match &state.settings.ui_dir {
        Some(dir) => crate::ui::mount(app, dir),
        None => app.fallback(ops::not_found),
    };
    app.method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.body_limit_bytes))
        .layer(middleware::from_fn(track_http))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
