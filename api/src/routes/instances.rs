//! `/api/instances`: GPU instances serving a model — requesting them, the operator's actions
//! on them, the list and the auditor's replay.
//!
//! A request names a model and optionally a zone, an instance type and a volume size; what it
//! leaves out is filled in from the catalog (see [`resolve`]). The API looks the facts up —
//! whether the model is active, its VRAM, the type's GPUs and price, whether the type can be
//! provisioned in the zone — and passes them in the command: the aggregate decides. Commands
//! answer from the aggregate they just changed; the list and `GET` answer from the `instances`
//! read model; `history` and `state` read the event log itself.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use inferplane_domain::catalog::{
    InstanceType, InstanceTypeId, InstanceTypeState, Provider, Zone, ZoneId, ZoneState,
    validate_type_code, validate_zone_code,
};
use inferplane_domain::instance::{
    Instance, InstanceCommand, InstanceError, InstanceId, InstanceStatus, RequestInstance, VllmMode,
};
use inferplane_domain::model::{Model, ModelId, ModelState};
use inferplane_projections::gpu_catalog;
use inferplane_projections::instances::{
    self as read_model, InstanceQuery, InstanceView, ModelFilter, PointInTime, ReplayError, Tracked,
};
use inferplane_store::{CommandContext, CommandOutcome};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, instance_rejection};
use crate::extract::{CommandMeta, PathId, Query, StrictJson};
use crate::routes::respond::{self, Written, respond};

/// The largest page of a list.
const MAX_LIMIT: i64 = 500;
const DEFAULT_LIMIT: i64 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    /// A Hugging Face repository id or a model UUID.
    model: String,
    zone: Option<String>,
    instance_type: Option<String>,
    data_volume_gb: Option<i64>,
    allowed_zones: Option<Vec<String>>,
    vllm_mode: Option<VllmMode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Comma-separated statuses.
    status: Option<String>,
    /// A repository id or a model UUID.
    model: Option<String>,
    zone: Option<String>,
    sort: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminateQuery {
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    at: Option<String>,
}

fn unknown_instance() -> ApiError {
    instance_rejection(InstanceError::NotFound)
}

/// `422` naming `field`, for a name the catalog does not know or a default it cannot give.
fn not_in_catalog(code: &'static str, field: &str, detail: String) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        "Not in the catalog",
        detail.clone(),
    )
    .with_field(field, detail)
}

/// The aggregate's refusal `e`, blamed on `field` (for errors found before the command).
fn refused(e: InstanceError, field: &str) -> ApiError {
    let detail = e.to_string();
    let mut problem = instance_rejection(e);
    problem.errors.clear();
    problem.with_field(field, detail)
}

async fn find_model(state: &AppState, model: &str) -> Result<(Uuid, ModelState), ApiError> {
    let model = model.trim();
    let id = model
        .parse::<Uuid>()
        .unwrap_or_else(|_| ModelId::for_repo(model).0);
    let loaded = state.store.load::<Model>(&id.to_string(), None).await?;
    match loaded.aggregate.state {
        Some(s) => Ok((id, s)),
        None => Err(not_in_catalog(
            "unknown-model",
            "model",
            format!(
                "no model {:?} is registered",
                model.chars().take(200).collect::<String>()
            ),
        )),
    }
}

/// A zone named in the request: well-formed and registered.
async fn find_zone(state: &AppState, field: &str, code: &str) -> Result<ZoneState, ApiError> {
    let code = code.trim();
    validate_zone_code(code).map_err(|_| {
        let value = code.chars().take(64).collect();
        refused(InstanceError::InvalidZone { value }, field)
    })?;
    let id = ZoneId::new(Provider::Scaleway, code).0.to_string();
    state
        .store
        .load::<Zone>(&id, None)
        .await?
        .aggregate
        .state
        .ok_or_else(|| {
            not_in_catalog(
                "unknown-zone",
                field,
                format!("no zone {code:?} is registered"),
            )
        })
}

/// An instance type by code: well-formed and registered (codes are upper-cased).
async fn find_type(state: &AppState, code: &str) -> Result<InstanceTypeState, ApiError> {
    let code = code.trim().to_ascii_uppercase();
    validate_type_code(&code).map_err(|_| {
        let value = code.chars().take(64).collect();
        refused(
            InstanceError::InvalidInstanceType { value },
            "instance_type",
        )
    })?;
    let id = InstanceTypeId::new(Provider::Scaleway, &code).0.to_string();
    state
        .store
        .load::<InstanceType>(&id, None)
        .await?
        .aggregate
        .state
        .ok_or_else(|| {
            not_in_catalog(
                "unknown-instance-type",
                "instance_type",
                format!("no instance type {code:?} is registered"),
            )
        })
}

/// Active zones, by code (from the catalog read model).
async fn active_zones(conn: &mut PgConnection) -> Result<Vec<String>, ApiError> {
    Ok(gpu_catalog::list_zones(conn)
        .await?
        .into_iter()
        .filter(|z| z.zone.active && z.zone.provider == Provider::Scaleway)
        .map(|z| z.zone.code)
        .collect())
}

fn offered(t: &InstanceTypeState, zone: &str) -> bool {
    t.availability.get(zone).is_some_and(|a| a.can_provision())
}

/// The zone and type codes a request leaves out, from the catalog read model:
/// - zone: the first active zone (by code) where a compatible type can be provisioned — or,
///   with a type given, where that type can be provisioned;
/// - type: the cheapest active type that fits the model and can be provisioned in the zone.
async fn placement(
    conn: &mut PgConnection,
    required_vram_gb: u32,
    zone: Option<&str>,
    itype: Option<&InstanceTypeState>,
) -> Result<(String, String), ApiError> {
    match (zone, itype) {
        (Some(z), Some(t)) => Ok((z.to_string(), t.code.clone())),
        (Some(z), None) => gpu_catalog::compatible_types(conn, required_vram_gb, Some(z))
            .await?
            .into_iter()
            .next()
            .map(|t| (z.to_string(), t.instance_type.code))
            .ok_or_else(|| {
                not_in_catalog(
                    "no-placement",
                    "instance_type",
                    format!(
                        "no active instance type with at least {required_vram_gb} GB of VRAM \
                         can be provisioned in zone {z}; name one with instance_type"
                    ),
                )
            }),
        (None, Some(t)) => active_zones(conn)
            .await?
            .into_iter()
            .find(|z| offered(t, z))
            .map(|z| (z, t.code.clone()))
            .ok_or_else(|| {
                not_in_catalog(
                    "no-placement",
                    "zone",
                    format!(
                        "instance type {} can be provisioned in no active zone now",
                        t.code
                    ),
                )
            }),
        (None, None) => {
            let types = gpu_catalog::compatible_types(conn, required_vram_gb, None).await?;
            active_zones(conn)
                .await?
                .into_iter()
                .find_map(|z| {
                    let t = types.iter().find(|t| offered(&t.instance_type, &z))?;
                    Some((z, t.instance_type.code.clone()))
                })
                .ok_or_else(|| {
                    not_in_catalog(
                        "no-placement",
                        "zone",
                        format!(
                            "no active zone offers an active instance type with at least \
                             {required_vram_gb} GB of VRAM now"
                        ),
                    )
                })
        }
    }
}

/// Turns a request into the command, looking every fact up in the catalog. Names are
/// checked against the aggregates (current); defaults are chosen from the read models, then
/// the chosen type is loaded from its aggregate so that its facts are current.
async fn resolve(state: &AppState, r: RequestBody) -> Result<RequestInstance, ApiError> {
    let (model_id, model) = find_model(state, &r.model).await?;
    let zone = match r.zone.as_deref() {
        Some(z) => Some(find_zone(state, "zone", z).await?),
        None => None,
    };
    let allowed_zones = r.allowed_zones.unwrap_or_default();
    for (i, z) in allowed_zones.iter().enumerate() {
        find_zone(state, &format!("allowed_zones[{i}]"), z).await?;
    }
    let given_type = match r.instance_type.as_deref() {
        Some(t) => Some(find_type(state, t).await?),
        None => None,
    };
    let mut conn = state.pool.acquire().await?;
    let (zone_code, type_code) = placement(
        &mut conn,
        model.required_vram_gb,
        zone.as_ref().map(|z| z.code.as_str()),
        given_type.as_ref(),
    )
    .await
    .map_err(|e| {
        // Nothing can be placed for an inactive model: that is the reason to report.
        if model.active {
            e
        } else {
            instance_rejection(InstanceError::ModelInactive {
                model_repo: model.hf_repo_id.clone(),
            })
        }
    })?;
    drop(conn);
    let itype = match given_type {
        Some(t) => t,
        None => find_type(state, &type_code).await?,
    };
    let zone_active = match zone {
        Some(z) => z.active,
        // Chosen among the active zones.
        None => true,
    };
    Ok(RequestInstance {
        model_id,
        model_repo: model.hf_repo_id,
        model_required_vram_gb: model.required_vram_gb,
        model_active: model.active,
        type_available_in_zone: zone_active && itype.active && offered(&itype, &zone_code),
        zone: zone_code,
        allowed_zones,
        instance_type: itype.code,
        gpu_count: itype.gpu_count,
        vram_per_gpu_gb: itype.vram_per_gpu_gb,
        hourly_price_micro_eur: itype.hourly_price_micro_eur,
        data_volume_gb: r
            .data_volume_gb
            .unwrap_or_else(|| i64::from(model.data_volume_gb)),
        vllm_mode: r.vllm_mode.unwrap_or_default(),
    })
}

fn replay_error(e: ReplayError) -> ApiError {
    match e {
        ReplayError::NotFound(_) => unknown_instance(),
        ReplayError::NotYet { .. } => {
            let mut problem = unknown_instance();
            problem.detail = e.to_string();
            problem
        }
        ReplayError::UnknownPosition(_) => invalid_at(e.to_string()),
        ReplayError::Decode { .. } | ReplayError::Store(_) => ApiError::internal(e),
    }
}

fn invalid_at(detail: String) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-at",
        "Invalid point in time",
        detail.clone(),
    )
    .with_field("at", detail)
}

/// Answers a command with the instance it left: its state from the outcome, its times from
/// its history up to that version.
async fn answer(
    state: &AppState,
    status: StatusCode,
    o: &CommandOutcome<Instance>,
) -> Result<Response, ApiError> {
    let id: Uuid = o.aggregate_id.parse().map_err(|e| {
        ApiError::internal(anyhow::anyhow!("instance id {:?}: {e}", o.aggregate_id))
    })?;
    let mut conn = state.pool.acquire().await?;
    let times = read_model::timeline(&mut conn, id, o.version)
        .await
        .map_err(replay_error)?;
    let tracked = Tracked {
        instance: o.aggregate.clone(),
        version: o.version,
        requested_at: times.requested_at.or(o.created_at),
        ready_at: times.ready_at,
        terminated_at: times.terminated_at,
        updated_at: o.updated_at.or(times.updated_at),
    };
    let view = InstanceView::from_tracked(id, &tracked, Utc::now()).ok_or_else(unknown_instance)?;
    let location = format!("/api/instances/{id}");
    Ok(respond(
        status,
        &view,
        o.version,
        location,
        Some(Written::of(o)),
    ))
}

async fn execute(
    state: &AppState,
    id: Uuid,
    command: InstanceCommand,
    ctx: &CommandContext,
) -> Result<CommandOutcome<Instance>, ApiError> {
    respond::execute(state, id, command, ctx, instance_rejection).await
}

/// `POST /api/instances`
pub async fn request(
    State(state): State<AppState>,
    meta: CommandMeta,
    body: StrictJson<RequestBody>,
) -> Result<Response, ApiError> {
    let ctx = meta.with_body(&body.digest);
    let command = InstanceCommand::Request(resolve(&state, body.value).await?);
    // A retry with the same Idempotency-Key is answered with the first instance, whatever id
    // is drawn here.
    let id = InstanceId::new_v7().0;
    let outcome = execute(&state, id, command, &ctx).await?;
    answer(&state, StatusCode::CREATED, &outcome).await
}

/// `DELETE /api/instances/{id}[?reason=]`: terminate. Answers `202`: the terminator deletes
/// the resources, then confirms.
pub async fn terminate(
    State(state): State<AppState>,
    PathId(id): PathId,
    Query(q): Query<TerminateQuery>,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    // The reason is part of the request an Idempotency-Key stands for.
    let reason_digest = hex::encode(Sha256::digest(q.reason.as_deref().unwrap_or("")));
    let ctx = meta.with_body(&reason_digest);
    let command = InstanceCommand::Terminate { reason: q.reason };
    let outcome = execute(&state, id, command, &ctx).await?;
    answer(&state, StatusCode::ACCEPTED, &outcome).await
}

async fn action(
    state: &AppState,
    id: Uuid,
    command: InstanceCommand,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    let outcome = execute(state, id, command, &meta.without_body()).await?;
    answer(state, StatusCode::OK, &outcome).await
}

/// `POST /api/instances/{id}/reinstall`
pub async fn reinstall(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    action(&state, id, InstanceCommand::Reinstall, meta).await
}

/// `POST /api/instances/{id}/archive`
pub async fn archive(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    action(&state, id, InstanceCommand::Archive, meta).await
}

/// `POST /api/instances/{id}/drain`
pub async fn drain(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    action(&state, id, InstanceCommand::Drain, meta).await
}

fn parse_statuses(value: &str) -> Result<Vec<InstanceStatus>, ApiError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<InstanceStatus>()
                .map_err(|e| ApiError::invalid_field("status", e.to_string()))
        })
        .collect()
}

/// `GET /api/instances[?status=&model=&zone=&sort=&limit=&offset=]`
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid_field("offset", "must be 0 or more"));
    }
    let sort = match q.sort.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse()
            .map_err(|e: read_model::UnknownSort| ApiError::invalid_field("sort", e.to_string()))?,
        None => Default::default(),
    };
    let mut conn = state.pool.acquire().await?;
    let zone = q.zone.filter(|z| !z.is_empty());
    if let Some(z) = &zone
        && !gpu_catalog::zone_known(&mut conn, z).await?
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown-zone",
            "Unknown zone",
            format!("zone: no zone with code {z:?} is registered"),
        )
        .with_field("zone", "no such zone"));
    }
    let query = InstanceQuery {
        statuses: parse_statuses(q.status.as_deref().unwrap_or(""))?,
        model: q
            .model
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .map(ModelFilter::parse),
        zone,
        sort,
        limit,
        offset,
    };
    let page = read_model::list(&mut conn, &query).await?;
    let next = offset + page.instances.len() as i64;
    Ok(Json(serde_json::json!({
        "instances": page.instances,
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "next_offset": (next < page.total && !page.instances.is_empty()).then_some(next),
    })))
}

/// `GET /api/instances/{id}`
pub async fn get(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    if let Some(v) = read_model::get(&state.pool, id).await? {
        return Ok(respond(StatusCode::OK, &v, v.version, String::new(), None));
    }
    // Not in the read model yet (it follows the store by a moment, e.g. right after the
    // request): the store is the truth, so a client that just got a 201 can read it back.
    let loaded = state
        .store
        .load::<Instance>(&id.to_string(), None)
        .await
        .map_err(ApiError::internal)?;
    if loaded.aggregate.state.is_none() {
        return Err(unknown_instance());
    }
    let mut conn = state.pool.acquire().await?;
    let times = read_model::timeline(&mut conn, id, loaded.version)
        .await
        .map_err(replay_error)?;
    let tracked = Tracked {
        instance: loaded.aggregate,
        version: loaded.version,
        requested_at: times.requested_at.or(loaded.created_at),
        ready_at: times.ready_at,
        terminated_at: times.terminated_at,
        updated_at: loaded.updated_at.or(times.updated_at),
    };
    let view = InstanceView::from_tracked(id, &tracked, Utc::now()).ok_or_else(unknown_instance)?;
    Ok(respond(
        StatusCode::OK,
        &view,
        tracked.version,
        String::new(),
        None,
    ))
}

/// `GET /api/instances/{id}/history`: every event of the instance, oldest first.
pub async fn history(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<serde_json::Value>, ApiError> {
    respond::history::<Instance>(&state, id, unknown_instance()).await
}

/// `GET /api/instances/{id}/state[?at=<RFC 3339 time | position>]`: the instance as it stood
/// at that point, replayed from its events.
pub async fn state_at(
    State(state): State<AppState>,
    PathId(id): PathId,
    Query(q): Query<StateQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let at = match q.at.as_deref() {
        Some(raw) => Some(
            raw.parse::<PointInTime>()
                .map_err(|e| invalid_at(e.to_string()))?,
        ),
        None => None,
    };
    let mut conn = state.pool.acquire().await?;
    let replay = read_model::replay(&mut conn, id, at)
        .await
        .map_err(replay_error)?;
    // The cost is counted up to the point asked for.
    let as_of = match at {
        Some(PointInTime::Time(t)) => t,
        Some(PointInTime::Position(_)) => replay.last_recorded_at().unwrap_or_else(Utc::now),
        None => Utc::now(),
    };
    let view = replay.view(as_of).ok_or_else(unknown_instance)?;
    Ok(Json(serde_json::json!({
        "at": at,
        "position": replay.position,
        "version": replay.tracked.version,
        "recorded_at": replay.last_recorded_at(),
        "events_applied": replay.history.len(),
        "state": view,
    })))
}
