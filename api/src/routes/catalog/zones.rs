//! `/api/zones`: the provider zones GPU machines can be rented in.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use inferplane_domain::catalog::{
    CatalogError, Provider, RegisterZone, UpdateZone, Zone, ZoneCommand, ZoneId,
};
use inferplane_projections::gpu_catalog::{self, ZoneView};
use inferplane_store::{CommandContext, CommandOutcome};
use serde::Deserialize;
use uuid::Uuid;

use super::rejection;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{CommandMeta, PathId, StrictJson};
use crate::routes::respond::{self, Written, respond};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[serde(default)]
    provider: Provider,
    code: String,
    display_name: Option<String>,
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    display_name: Option<String>,
}

fn answer(status: StatusCode, id: Uuid, o: &CommandOutcome<Zone>) -> Result<Response, ApiError> {
    let state = o
        .aggregate
        .state
        .clone()
        .ok_or_else(|| rejection(CatalogError::ZoneNotRegistered))?;
    let now = chrono::Utc::now();
    let view = ZoneView {
        id,
        zone: state,
        version: o.version,
        registered_at: o.created_at.unwrap_or(now),
        updated_at: o.updated_at.unwrap_or(now),
    };
    let written = Written::of(o);
    Ok(respond(
        status,
        &view,
        o.version,
        format!("/api/zones/{id}"),
        Some(written),
    ))
}

async fn execute(
    state: &AppState,
    id: Uuid,
    command: ZoneCommand,
    ctx: &CommandContext,
) -> Result<CommandOutcome<Zone>, ApiError> {
    respond::execute(state, id, command, ctx, rejection).await
}

/// `POST /api/zones`
pub async fn register(
    State(state): State<AppState>,
    meta: CommandMeta,
    body: StrictJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let ctx = meta.with_body(&body.digest);
    let r = body.value;
    let id = ZoneId::new(r.provider, &r.code).0;
    let command = ZoneCommand::Register(RegisterZone {
        provider: r.provider,
        display_name: r.display_name.unwrap_or_else(|| r.code.clone()),
        code: r.code,
        active: r.active.unwrap_or(true),
    });
    answer(
        StatusCode::CREATED,
        id,
        &execute(&state, id, command, &ctx).await?,
    )
}

/// `PATCH /api/zones/{id}`
pub async fn update(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
    body: StrictJson<UpdateRequest>,
) -> Result<Response, ApiError> {
    let ctx = meta.with_body(&body.digest);
    let command = ZoneCommand::Update(UpdateZone {
        display_name: body.value.display_name,
    });
    answer(
        StatusCode::OK,
        id,
        &execute(&state, id, command, &ctx).await?,
    )
}

/// `POST /api/zones/{id}/activate`
pub async fn activate(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    let ctx = meta.without_body();
    answer(
        StatusCode::OK,
        id,
        &execute(&state, id, ZoneCommand::Activate, &ctx).await?,
    )
}

/// `POST /api/zones/{id}/deactivate`
pub async fn deactivate(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    let ctx = meta.without_body();
    answer(
        StatusCode::OK,
        id,
        &execute(&state, id, ZoneCommand::Deactivate, &ctx).await?,
    )
}

/// `GET /api/zones`
pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let zones = gpu_catalog::list_zones(&mut *state.pool.acquire().await?).await?;
    Ok(Json(serde_json::json!({ "zones": zones })))
}

/// `GET /api/zones/{id}`
pub async fn get(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    match gpu_catalog::get_zone(&mut *state.pool.acquire().await?, id).await? {
        Some(v) => Ok(respond(StatusCode::OK, &v, v.version, String::new(), None)),
        None => Err(rejection(CatalogError::ZoneNotRegistered)),
    }
}

/// `GET /api/zones/{id}/history`: every event of the zone, oldest first.
pub async fn history(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<serde_json::Value>, ApiError> {
    respond::history::<Zone>(&state, id, rejection(CatalogError::ZoneNotRegistered)).await
}
