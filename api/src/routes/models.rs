//! `/api/models`: the model catalog.
//!
//! Commands answer from the aggregate they just changed (always current); queries answer from
//! the catalog read model (current within a few milliseconds of a commit).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use inferplane_domain::model::{
    Model, ModelCommand, ModelError, ModelId, ModelTask, RegisterModel, UpdateModel,
};
use inferplane_projections::models::{self as catalog, ModelQuery, ModelView};
use inferplane_store::{CommandContext, CommandOutcome};
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{CommandMeta, PathId, Query, StrictJson};
use crate::routes::respond::{self, Written};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    hf_repo_id: String,
    display_name: Option<String>,
    parameter_count: i64,
    required_vram_gb: i64,
    context_length: i64,
    data_volume_gb: Option<i64>,
    #[serde(default)]
    task: ModelTask,
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    display_name: Option<String>,
    parameter_count: Option<i64>,
    required_vram_gb: Option<i64>,
    context_length: Option<i64>,
    data_volume_gb: Option<i64>,
    task: Option<ModelTask>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    active: Option<bool>,
    task: Option<ModelTask>,
    q: Option<String>,
}

fn rejection(e: ModelError) -> ApiError {
    let status = match e {
        ModelError::NotRegistered => StatusCode::NOT_FOUND,
        ModelError::AlreadyRegistered { .. } => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(
        status,
        e.code(),
        "Refused by the model catalog",
        e.to_string(),
    )
}

fn respond(
    status: StatusCode,
    view: ModelView,
    outcome: Option<&CommandOutcome<Model>>,
) -> Response {
    let location = format!("/api/models/{}", view.id);
    respond::respond(
        status,
        &view,
        view.version,
        location,
        outcome.map(Written::of),
    )
}

fn view_of(id: Uuid, o: &CommandOutcome<Model>) -> Result<ModelView, ApiError> {
    let state = o
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| rejection(ModelError::NotRegistered))?;
    let (created, updated) = (o.created_at, o.updated_at);
    let now = chrono::Utc::now();
    Ok(ModelView::from_state(
        id,
        state,
        o.version,
        created.unwrap_or(now),
        updated.unwrap_or(now),
    ))
}

async fn execute(
    state: &AppState,
    id: Uuid,
    command: ModelCommand,
    ctx: &CommandContext,
) -> Result<CommandOutcome<Model>, ApiError> {
    respond::execute(state, id, command, ctx, rejection).await
}

/// `POST /api/models`
pub async fn register(
    State(state): State<AppState>,
    meta: CommandMeta,
    body: StrictJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let ctx = meta.with_body(&body.digest);
    let r = body.value;
    let id = ModelId::for_repo(&r.hf_repo_id).0;
    let command = ModelCommand::Register(RegisterModel {
        display_name: r.display_name.unwrap_or_else(|| r.hf_repo_id.clone()),
        hf_repo_id: r.hf_repo_id,
        parameter_count: r.parameter_count,
        required_vram_gb: r.required_vram_gb,
        context_length: r.context_length,
        data_volume_gb: r.data_volume_gb,
        task: r.task,
        active: r.active.unwrap_or(true),
    });
    let outcome = execute(&state, id, command, &ctx).await?;
    Ok(respond(
        StatusCode::CREATED,
        view_of(id, &outcome)?,
        Some(&outcome),
    ))
}

/// `PATCH /api/models/{id}`
pub async fn update(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
    body: StrictJson<UpdateRequest>,
) -> Result<Response, ApiError> {
    let ctx = meta.with_body(&body.digest);
    let r = body.value;
    let command = ModelCommand::Update(UpdateModel {
        display_name: r.display_name,
        parameter_count: r.parameter_count,
        required_vram_gb: r.required_vram_gb,
        context_length: r.context_length,
        data_volume_gb: r.data_volume_gb,
        task: r.task,
    });
    let outcome = execute(&state, id, command, &ctx).await?;
    Ok(respond(
        StatusCode::OK,
        view_of(id, &outcome)?,
        Some(&outcome),
    ))
}

/// `POST /api/models/{id}/activate`
pub async fn activate(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    let outcome = execute(&state, id, ModelCommand::Activate, &meta.without_body()).await?;
    Ok(respond(
        StatusCode::OK,
        view_of(id, &outcome)?,
        Some(&outcome),
    ))
}

/// `POST /api/models/{id}/deactivate`
pub async fn deactivate(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
) -> Result<Response, ApiError> {
    let outcome = execute(&state, id, ModelCommand::Deactivate, &meta.without_body()).await?;
    Ok(respond(
        StatusCode::OK,
        view_of(id, &outcome)?,
        Some(&outcome),
    ))
}

/// `GET /api/models`
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let models = catalog::list(
        &state.pool,
        &ModelQuery {
            active: q.active,
            task: q.task,
            search: q.q.filter(|s| !s.trim().is_empty()),
        },
    )
    .await?;
    Ok(Json(serde_json::json!({ "models": models })))
}

/// `GET /api/models/{id}`
pub async fn get(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    match catalog::get(&state.pool, id).await? {
        Some(view) => Ok(respond(StatusCode::OK, view, None)),
        None => Err(rejection(ModelError::NotRegistered)),
    }
}

/// `GET /api/models/{id}/history`: every event of the model, oldest first.
pub async fn history(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<serde_json::Value>, ApiError> {
    respond::history::<Model>(&state, id, rejection(ModelError::NotRegistered)).await
}
