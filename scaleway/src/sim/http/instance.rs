//! Instance API handlers (`/instance/v1/zones/{zone}/...`): thin wrappers that lock the world,
//! call [`crate::sim::ops`], render the answer and spawn lifecycle tasks.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::sim::error::SimError;
use crate::sim::lifecycle;
use crate::sim::ops::{ips, products, servers};
use crate::sim::paging::{Query, paginate};
use crate::sim::world::{Shared, World};

type Result<T> = std::result::Result<T, SimError>;

/// Headers of a list page.
pub(super) fn page_headers(total: usize, link: Option<String>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&total.to_string()) {
        headers.insert("x-total-count", value);
    }
    if let Some(value) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LINK, value);
    }
    headers
}

fn server_json(world: &World, zone: &str, id: &str) -> Result<Response> {
    let server = world
        .server_in(zone, id)
        .ok_or_else(|| SimError::server_not_found(id))?;
    Ok(Json(json!({ "server": world.server_view(server) })).into_response())
}

pub(super) async fn list_servers(
    State(shared): State<Arc<Shared>>,
    Path(zone): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let query = Query::parse(raw.as_deref())?;
    let world = shared.world();
    let matching = servers::list(&world, &zone, &query)?;
    let path = format!("/instance/v1/zones/{zone}/servers");
    let page = paginate(matching, &query, &path)?;
    let body = json!({
        "total_count": page.total,
        "servers": page.items.iter().map(|s| world.server_view(s)).collect::<Vec<_>>(),
    });
    Ok((page_headers(page.total, page.link), Json(body)).into_response())
}

pub(super) async fn create_server(
    State(shared): State<Arc<Shared>>,
    Path(zone): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let mut world = shared.world();
    let id = servers::create(&shared.settings, &mut world, &zone, &body)?;
    let response = server_json(&world, &zone, &id)?;
    Ok((StatusCode::CREATED, response).into_response())
}

pub(super) async fn get_server(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
) -> Result<Response> {
    server_json(&shared.world(), &zone, &id)
}

pub(super) async fn update_server(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    let mut world = shared.world();
    servers::update(&mut world, &zone, &id, &body)?;
    server_json(&world, &zone, &id)
}

pub(super) async fn delete_server(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
) -> Result<Response> {
    servers::delete(&mut shared.world(), &zone, &id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn server_action(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    let (task, transition, generation) = {
        let mut world = shared.world();
        servers::action(&shared.settings, &mut world, &zone, &id, &body)?
    };
    lifecycle::spawn_transition(shared.clone(), id, generation, transition);
    Ok((StatusCode::ACCEPTED, Json(json!({ "task": task }))).into_response())
}

pub(super) async fn attach_volume(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    let mut world = shared.world();
    servers::attach_volume(&mut world, &zone, &id, &body)?;
    server_json(&world, &zone, &id)
}

pub(super) async fn detach_volume(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    let mut world = shared.world();
    servers::detach_volume(&mut world, &zone, &id, &body)?;
    server_json(&world, &zone, &id)
}

pub(super) async fn list_user_data(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
) -> Result<Response> {
    let world = shared.world();
    let server = world
        .server_in(&zone, &id)
        .ok_or_else(|| SimError::server_not_found(&id))?;
    let keys: Vec<&String> = server.user_data.keys().collect();
    Ok(Json(json!({ "user_data": keys })).into_response())
}

pub(super) async fn get_user_data(
    State(shared): State<Arc<Shared>>,
    Path((zone, id, key)): Path<(String, String, String)>,
) -> Result<Response> {
    let text = servers::get_user_data(&shared.world(), &zone, &id, &key)?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], text).into_response())
}

pub(super) async fn set_user_data(
    State(shared): State<Arc<Shared>>,
    Path((zone, id, key)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response> {
    servers::set_user_data(&mut shared.world(), &zone, &id, &key, &body)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn delete_user_data(
    State(shared): State<Arc<Shared>>,
    Path((zone, id, key)): Path<(String, String, String)>,
) -> Result<Response> {
    servers::delete_user_data(&mut shared.world(), &zone, &id, &key)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn ip_json(world: &World, zone: &str, id: &str) -> Result<Response> {
    let ip = ips::get(world, zone, id)?;
    Ok(Json(json!({ "ip": world.ip_view(ip) })).into_response())
}

pub(super) async fn create_ip(
    State(shared): State<Arc<Shared>>,
    Path(zone): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let mut world = shared.world();
    let id = ips::create(&shared.settings, &mut world, &zone, &body)?;
    let response = ip_json(&world, &zone, &id)?;
    Ok((StatusCode::CREATED, response).into_response())
}

pub(super) async fn get_ip(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
) -> Result<Response> {
    ip_json(&shared.world(), &zone, &id)
}

pub(super) async fn update_ip(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    let mut world = shared.world();
    ips::update(&mut world, &zone, &id, &body)?;
    ip_json(&world, &zone, &id)
}

pub(super) async fn delete_ip(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
) -> Result<Response> {
    ips::delete(&mut shared.world(), &zone, &id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_products(
    Path(zone): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let query = Query::parse(raw.as_deref())?;
    let path = format!("/instance/v1/zones/{zone}/products/servers");
    let page = paginate(products::entries(), &query, &path)?;
    let body = products::products_body(&page.items);
    Ok((page_headers(page.total, page.link), Json(body)).into_response())
}

pub(super) async fn availability(
    State(shared): State<Arc<Shared>>,
    Path(zone): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let query = Query::parse(raw.as_deref())?;
    let path = format!("/instance/v1/zones/{zone}/products/servers/availability");
    let page = paginate(products::entries(), &query, &path)?;
    let body = products::availability_body(&shared.world(), &zone, &page.items, page.total);
    Ok((page_headers(page.total, page.link), Json(body)).into_response())
}
