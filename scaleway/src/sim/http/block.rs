//! Block Storage API handlers (`/block/v1alpha1/zones/{zone}/volumes`). Unlike the Instance
//! API, this API returns the volume object itself, not wrapped.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::instance::page_headers;
use crate::sim::error::SimError;
use crate::sim::lifecycle;
use crate::sim::ops::volumes;
use crate::sim::paging::{Query, paginate};
use crate::sim::world::Shared;

type Result<T> = std::result::Result<T, SimError>;

pub(super) async fn create_volume(
    State(shared): State<Arc<Shared>>,
    Path(zone): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let (id, view) = {
        let mut world = shared.world();
        let id = volumes::create(&shared.settings, &mut world, &zone, &body)?;
        let view = world.volume_view(volumes::get(&world, &zone, &id)?);
        (id, view)
    };
    lifecycle::spawn_volume_creation(shared.clone(), id);
    Ok(Json(view).into_response())
}

pub(super) async fn get_volume(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
) -> Result<Response> {
    let world = shared.world();
    let volume = volumes::get(&world, &zone, &id)?;
    Ok(Json(world.volume_view(volume)).into_response())
}

pub(super) async fn list_volumes(
    State(shared): State<Arc<Shared>>,
    Path(zone): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let query = Query::parse(raw.as_deref())?;
    let world = shared.world();
    let matching = volumes::list(&world, &zone, &query);
    let path = format!("/block/v1alpha1/zones/{zone}/volumes");
    let page = paginate(matching, &query, &path)?;
    let body = json!({
        "volumes": page.items.iter().map(|v| world.volume_view(v)).collect::<Vec<_>>(),
        "total_count": page.total,
    });
    Ok((page_headers(page.total, page.link), Json(body)).into_response())
}

pub(super) async fn delete_volume(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
) -> Result<Response> {
    volumes::delete(&mut shared.world(), &zone, &id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
