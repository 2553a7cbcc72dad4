//! `/api/instance-types`: GPU machine types, their price, and availability per zone.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use inferplane_domain::catalog::{
    Availability, CatalogError, InstanceType, InstanceTypeCommand, InstanceTypeId, Provider,
    RegisterInstanceType, UpdateInstanceType, Zone, ZoneId, validate_zone_code,
};
use inferplane_projections::gpu_catalog::{self, InstanceTypeView, TypeQuery};
use inferplane_store::{CommandContext, CommandOutcome};
use serde::Deserialize;
use uuid::Uuid;

use super::{known_zone, rejection};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{CommandMeta, PathId, Query, StrictJson};
use crate::routes::respond::{self, Written, respond};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[serde(default)]
    provider: Provider,
    code: String,
    gpu_model: String,
    gpu_count: i64,
    vram_per_gpu_gb: i64,
    vcpus: i64,
    ram_gb: i64,
    hourly_price_micro_eur: i64,
    #[serde(default)]
    availability: BTreeMap<String, Availability>,
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    gpu_model: Option<String>,
    gpu_count: Option<i64>,
    vram_per_gpu_gb: Option<i64>,
    vcpus: Option<i64>,
    ram_gb: Option<i64>,
    hourly_price_micro_eur: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityRequest {
    availability: Availability,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    zone: Option<String>,
    active: Option<bool>,
    availability: Option<Availability>,
}

fn answer(
    status: StatusCode,
    id: Uuid,
    o: &CommandOutcome<InstanceType>,
) -> Result<Response, ApiError> {
    let state = o
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| rejection(CatalogError::TypeNotRegistered))?;
    let now = chrono::Utc::now();
    let (created, updated) = (o.created_at.unwrap_or(now), o.updated_at.unwrap_or(now));
    let view = InstanceTypeView::from_state(id, state, o.version, created, updated);
    let written = Written::of(o);
    let location = format!("/api/instance-types/{id}");
    Ok(respond(status, &view, o.version, location, Some(written)))
}

async fn execute(
    state: &AppState,
    id: Uuid,
    command: InstanceTypeCommand,
    ctx: &CommandContext,
) -> Result<CommandOutcome<InstanceType>, ApiError> {
    respond::execute(state, id, command, ctx, rejection).await
}

/// Availability may only name registered zones of the type's provider. Checked against the
/// zone aggregates themselves (not the read model), so a zone registered a moment ago counts.
async fn check_zones<'a>(
    state: &AppState,
    provider: Provider,
    zones: impl IntoIterator<Item = &'a String>,
) -> Result<(), ApiError> {
    for zone in zones {
        validate_zone_code(zone).map_err(rejection)?;
        let id = ZoneId::new(provider, zone).0.to_string();
        if state
            .store
            .load::<Zone>(&id, None)
            .await?
            .aggregate
            .state
            .is_none()
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-zone",
                "Refused by the GPU catalog",
                format!(
                    "no zone with code {zone:?} is registered for {}",
                    provider.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// `POST /api/instance-types`
pub async fn register(
    State(state): State<AppState>,
    meta: CommandMeta,
    body: StrictJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let ctx = meta.with_body(&body.digest);
    let r = body.value;
    check_zones(&state, r.provider, r.availability.keys()).await?;
    let id = InstanceTypeId::new(r.provider, &r.code).0;
    let command = InstanceTypeCommand::Register(RegisterInstanceType {
        provider: r.provider,
        code: r.code,
        gpu_model: r.gpu_model,
        gpu_count: r.gpu_count,
        vram_per_gpu_gb: r.vram_per_gpu_gb,
        vcpus: r.vcpus,
        ram_gb: r.ram_gb,
        hourly_price_micro_eur: r.hourly_price_micro_eur,
        availability: r.availability,
        active: r.active.unwrap_or(true),
    });
    answer(
        StatusCode::CREATED,
        id,
        &execute(&state, id, command, &ctx).await?,
    )
}

/// `PATCH /api/instance-types/{id}`
pub async fn update(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
    body: StrictJson<UpdateRequest>,
) -> Result<Response, ApiError> {
    let ctx = meta.with_body(&body.digest);
    let r = body.value;
    let command = InstanceTypeCommand::Update(UpdateInstanceType {
        gpu_model: r.gpu_model,
        gpu_count: r.gpu_count,
        vram_per_gpu_gb: r.vram_per_gpu_gb,
        vcpus: r.vcpus,
        ram_gb: r.ram_gb,
        hourly_price_micro_eur: r.hourly_price_micro_eur,
    });
    answer(
        StatusCode::OK,
        id,
        &execute(&state, id, command, &ctx).await?,
    )
}

/// `{id}/availability/{zone}`: an unknown id is a missing resource, like [`PathId`].
fn type_and_zone(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(Uuid, String), ApiError> {
    let Path((raw, zone)) =
        path.map_err(|r| ApiError::bad_request("invalid-path", r.body_text()))?;
    let id = raw
        .parse()
        .map_err(|_| ApiError::not_found(format!("no resource with id {raw:?}")))?;
    Ok((id, zone))
}

async fn set_availability(
    state: &AppState,
    (id, zone): (Uuid, String),
    availability: Option<Availability>,
    ctx: CommandContext,
) -> Result<Response, ApiError> {
    let loaded = state
        .store
        .load::<InstanceType>(&id.to_string(), None)
        .await?;
    let provider = loaded
        .aggregate
        .state
        .map(|s| s.provider)
        .ok_or_else(|| rejection(CatalogError::TypeNotRegistered))?;
    if availability.is_some() {
        // Clearing a zone that was since renamed away must stay possible.
        check_zones(state, provider, [&zone]).await?;
    }
    let command = InstanceTypeCommand::SetAvailability { zone, availability };
    answer(
        StatusCode::OK,
        id,
        &execute(state, id, command, &ctx).await?,
    )
}

/// `PUT /api/instance-types/{id}/availability/{zone}`
pub async fn put_availability(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    meta: CommandMeta,
    body: StrictJson<AvailabilityRequest>,
) -> Result<Response, ApiError> {
    let ctx = meta.with_body(&body.digest);
    set_availability(
        &state,
        type_and_zone(path)?,
        Some(body.value.availability),
        ctx,
    )
    .await
}

/// `DELETE /api/instance-types/{id}/availability/{zone}`: the type is no longer offered there.
pub async fn delete_availability(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    set_availability(&state, type_and_zone(path)?, None, meta.without_body()).await
}

/// `POST /api/instance-types/{id}/activate`
pub async fn activate(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    let command = InstanceTypeCommand::Activate;
    answer(
        StatusCode::OK,
        id,
        &execute(&state, id, command, &meta.without_body()).await?,
    )
}

/// `POST /api/instance-types/{id}/deactivate`
pub async fn deactivate(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    let command = InstanceTypeCommand::Deactivate;
    answer(
        StatusCode::OK,
        id,
        &execute(&state, id, command, &meta.without_body()).await?,
    )
}

/// `GET /api/instance-types[?zone=&active=&availability=]`
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let zone = known_zone(&mut conn, q.zone).await?;
    let query = TypeQuery {
        zone,
        active: q.active,
        availability: q.availability,
    };
    let types = gpu_catalog::list_types(&mut conn, &query).await?;
    Ok(Json(serde_json::json!({ "instance_types": types })))
}

/// `GET /api/instance-types/{id}`
pub async fn get(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    match gpu_catalog::get_type(&mut *state.pool.acquire().await?, id).await? {
        Some(v) => Ok(respond(StatusCode::OK, &v, v.version, String::new(), None)),
        None => Err(rejection(CatalogError::TypeNotRegistered)),
    }
}

/// `GET /api/instance-types/{id}/history`: every event of the type, oldest first.
pub async fn history(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<serde_json::Value>, ApiError> {
    respond::history::<InstanceType>(&state, id, rejection(CatalogError::TypeNotRegistered)).await
}
