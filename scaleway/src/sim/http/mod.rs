//! The simulator's HTTP surface: routes, and the middleware every API request goes through.
//!
//! Order for an API request: request id + debug log (every response, admin and unknown routes
//! included, gets an `X-Request-Id`) -> authentication (`X-Auth-Token`) -> zone check ->
//! call counting and faults (burst before or after the handler, latency after it) -> handler.
//! The token is never logged.

mod admin;
mod block;
mod instance;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::error::SimError;
use super::world::Shared;
use crate::operations as op;

const SERVERS: &str = "/instance/v1/zones/{zone}/servers";
const SERVER: &str = "/instance/v1/zones/{zone}/servers/{id}";
const SERVER_ACTION: &str = "/instance/v1/zones/{zone}/servers/{id}/action";
const ATTACH: &str = "/instance/v1/zones/{zone}/servers/{id}/attach-volume";
const DETACH: &str = "/instance/v1/zones/{zone}/servers/{id}/detach-volume";
const USER_DATA_LIST: &str = "/instance/v1/zones/{zone}/servers/{id}/user_data";
const USER_DATA: &str = "/instance/v1/zones/{zone}/servers/{id}/user_data/{key}";
const IPS: &str = "/instance/v1/zones/{zone}/ips";
const IP: &str = "/instance/v1/zones/{zone}/ips/{id}";
const PRODUCTS: &str = "/instance/v1/zones/{zone}/products/servers";
const AVAILABILITY: &str = "/instance/v1/zones/{zone}/products/servers/availability";
const VOLUMES: &str = "/block/v1alpha1/zones/{zone}/volumes";
const VOLUME: &str = "/block/v1alpha1/zones/{zone}/volumes/{id}";

/// The operation name of a matched route (see [`crate::operations`]).
fn operation(method: &Method, route: &str) -> &'static str {
    match (method.as_str(), route) {
        ("GET", SERVERS) => op::LIST_SERVERS,
        ("POST", SERVERS) => op::CREATE_SERVER,
        ("GET", SERVER) => op::GET_SERVER,
        ("PATCH", SERVER) => op::UPDATE_SERVER,
        ("DELETE", SERVER) => op::DELETE_SERVER,
        (_, SERVER_ACTION) => op::SERVER_ACTION,
        (_, ATTACH) => op::ATTACH_VOLUME,
        (_, DETACH) => op::DETACH_VOLUME,
        ("GET", USER_DATA) | ("GET", USER_DATA_LIST) => op::GET_USER_DATA,
        ("PATCH", USER_DATA) => op::SET_USER_DATA,
        ("DELETE", USER_DATA) => op::DELETE_USER_DATA,
        (_, IPS) => op::CREATE_IP,
        ("GET", IP) => op::GET_IP,
        ("PATCH", IP) => op::UPDATE_IP,
        ("DELETE", IP) => op::DELETE_IP,
        (_, PRODUCTS) => op::LIST_SERVER_PRODUCTS,
        (_, AVAILABILITY) => op::SERVER_AVAILABILITY,
        ("POST", VOLUMES) => op::CREATE_VOLUME,
        (_, VOLUMES) => op::LIST_VOLUMES,
        ("GET", VOLUME) => op::GET_VOLUME,
        ("DELETE", VOLUME) => op::DELETE_VOLUME,
        _ => "unknown",
    }
}

/// The full router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route(
            SERVERS,
            get(instance::list_servers).post(instance::create_server),
        )
        .route(
            SERVER,
            get(instance::get_server)
                .patch(instance::update_server)
                .delete(instance::delete_server),
        )
        .route(SERVER_ACTION, post(instance::server_action))
        .route(ATTACH, post(instance::attach_volume))
        .route(DETACH, post(instance::detach_volume))
        .route(USER_DATA_LIST, get(instance::list_user_data))
        .route(
            USER_DATA,
            get(instance::get_user_data)
                .patch(instance::set_user_data)
                .delete(instance::delete_user_data),
        )
        .route(IPS, post(instance::create_ip))
        .route(
            IP,
            get(instance::get_ip)
                .patch(instance::update_ip)
                .delete(instance::delete_ip),
        )
        .route(PRODUCTS, get(instance::list_products))
        .route(AVAILABILITY, get(instance::availability))
        .route(VOLUMES, get(block::list_volumes).post(block::create_volume))
        .route(VOLUME, get(block::get_volume).delete(block::delete_volume))
        .route_layer(middleware::from_fn_with_state(shared.clone(), api_guard));

    Router::new()
        .merge(api)
        .merge(admin::router())
        .fallback(unknown_route)
        .layer(middleware::from_fn(request_id_and_log))
        .with_state(shared)
}

async fn unknown_route() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"type": "not_found", "message": "unknown route"})),
    )
        .into_response()
}

/// The operation of a response, for the log line.
#[derive(Clone, Copy)]
struct OperationName(&'static str);

/// Adds `X-Request-Id` to every response and logs the request at debug level.
async fn request_id_and_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let operation = response
        .extensions()
        .get::<OperationName>()
        .map(|o| o.0)
        .unwrap_or("-");
    tracing::debug!(
        target: "inferplane_scaleway::sim",
        %method,
        path,
        operation,
        status = response.status().as_u16(),
        request_id,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "simulated scaleway request"
    );
    response
}

/// Authentication, zone check, call counting and faults for API routes.
async fn api_guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let operation = operation(request.method(), &route);
    let mut response = guarded(&shared, operation, request, next).await;
    response.extensions_mut().insert(OperationName(operation));
    response
}

async fn guarded(
    shared: &Arc<Shared>,
    operation: &'static str,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    if token.is_empty() {
        return SimError::DeniedAuthentication("invalid_argument").into_response();
    }
    if let Some(expected) = &shared.settings.secret_key
        && !expected.matches(token)
    {
        return SimError::DeniedAuthentication("not_found").into_response();
    }
    let zone = request.uri().path().split('/').nth(4).unwrap_or("");
    if !shared.settings.zones.iter().any(|z| z == zone) {
        return SimError::argument(
            "zone",
            "constraint",
            format!(
                "unknown zone {zone:?}: must be one of {}",
                shared.settings.zones.join(", ")
            ),
        )
        .into_response();
    }

    let (burst, latency) = {
        let mut world = shared.world();
        world.count_call(operation);
        let burst = world.faults.take_burst(operation);
        (burst, world.faults.latency_for(operation))
    };
    let injected = burst.as_ref().map(|b| SimError::Injected {
        status: b.status,
        retry_after_secs: b.retry_after_secs,
    });
    let response = match (burst.as_ref().map(|b| b.after_handler), injected) {
        (Some(false), Some(error)) => return error.into_response(),
        (Some(true), Some(error)) => {
            // The request is applied; only its answer is replaced.
            let _applied = next.run(request).await;
            error.into_response()
        }
        _ => next.run(request).await,
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    response
}
