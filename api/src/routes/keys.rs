//! `/api/keys`: API keys for `/v1`.
//!
//! A new key (creation, rotation) is generated here, returned once in the answer, and only its
//! SHA-256 and display prefix are recorded. Such commands refuse an `Idempotency-Key`: a
//! replay could not show the key again.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use inferplane_domain::api_key::{
    ApiKey, ApiKeyCommand, ApiKeyError, KEY_SCHEME, KeyLimits, KeySecret, LimitsPatch, PREFIX_LEN,
    patch,
};
use inferplane_projections::api_keys::{self as read, ApiKeyView};
use inferplane_store::{CommandContext, CommandOutcome};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{CommandMeta, PathId, StrictJson};
use crate::routes::respond;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    name: String,
    models: Option<Vec<String>>,
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
    budget_tokens: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    name: Option<String>,
    #[serde(default, deserialize_with = "patch")]
    models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch")]
    rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "patch")]
    tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "patch")]
    budget_tokens: Option<Option<i64>>,
    #[serde(default, deserialize_with = "patch")]
    expires_at: Option<Option<DateTime<Utc>>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    grace_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    reason: Option<String>,
}

/// Default grace period of a rotation: one hour.
pub const DEFAULT_GRACE_SECONDS: i64 = 3600;

fn rejection(e: ApiKeyError) -> ApiError {
    let status = match e {
        ApiKeyError::NotFound => StatusCode::NOT_FOUND,
        ApiKeyError::AlreadyExists | ApiKeyError::Revoked => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code(), "Refused by the API key", e.to_string())
}

/// A new random key and what is recorded of it.
pub fn generate_key() -> (String, KeySecret) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_SCHEME}{}", hex::encode(bytes));
    let secret = KeySecret {
        prefix: key[..PREFIX_LEN].to_string(),
        key_hash: hex::encode(Sha256::digest(key.as_bytes())),
    };
    (key, secret)
}

fn no_idempotency(ctx: &CommandContext) -> Result<(), ApiError> {
    if ctx.idempotency.is_some() {
        return Err(ApiError::bad_request(
            "idempotency-not-supported",
            "a new key is shown only once, so this command cannot be replayed: send it without Idempotency-Key",
        ));
    }
    Ok(())
}

/// Waits (briefly) until this process's gateway applied the command's events, so a key used
/// right after its creation, or a revocation checked right after it, behaves as answered.
/// Other processes follow within milliseconds.
async fn settle(state: &AppState, id: Uuid, version: i64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while state.gateway.keys.version_of(id) < version && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

async fn view_of(
    state: &AppState,
    id: Uuid,
    o: &CommandOutcome<ApiKey>,
) -> Result<ApiKeyView, ApiError> {
    settle(state, id, o.version).await;
    let s = o
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| rejection(ApiKeyError::NotFound))?;
    let now = Utc::now();
    // Times of revocation and rotation come from the read model when it has caught up.
    let row = read::get(&state.pool, id).await?;
    let last_used = row.as_ref().and_then(|r| r.last_used_at);
    Ok(ApiKeyView::from_state(
        id,
        s,
        o.version,
        o.created_at.unwrap_or(now),
        row.as_ref()
            .and_then(|r| r.revoked_at)
            .or(s.revoked.then_some(o.updated_at.unwrap_or(now))),
        row.as_ref()
            .and_then(|r| r.rotated_at)
            .or(s.previous.as_ref().map(|_| o.updated_at.unwrap_or(now))),
        last_used,
        o.updated_at.unwrap_or(now),
        now,
    ))
}

fn answer(
    status: StatusCode,
    view: ApiKeyView,
    key: Option<String>,
    o: &CommandOutcome<ApiKey>,
) -> Response {
    let location = format!("/api/keys/{}", view.id);
    match key {
        None => respond::respond(
            status,
            &view,
            view.version,
            location,
            Some(respond::Written::of(o)),
        ),
        Some(key) => {
            let body = json!({"key": key, "api_key": view});
            let mut res = respond::respond(
                status,
                &body,
                view.version,
                location,
                Some(respond::Written::of(o)),
            );
            // The key must not be kept by any cache on the way.
            res.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            res
        }
    }
}

/// `POST /api/keys`
pub async fn create(
    State(state): State<AppState>,
    meta: CommandMeta,
    body: StrictJson<CreateRequest>,
) -> Result<Response, ApiError> {
    let ctx = meta.with_body(&body.digest);
    no_idempotency(&ctx)?;
    let r = body.value;
    let id = Uuid::now_v7();
    let (key, secret) = generate_key();
    let command = ApiKeyCommand::Create {
        name: r.name,
        secret,
        limits: KeyLimits {
            models: r.models,
            rpm_limit: r.rpm_limit,
            tpm_limit: r.tpm_limit,
            budget_tokens: r.budget_tokens,
            expires_at: r.expires_at,
        },
        now: Utc::now(),
    };
    let o = respond::execute(&state, id, command, &ctx, rejection).await?;
    let view = view_of(&state, id, &o).await?;
    tracing::info!(key_id = %id, key_prefix = %view.prefix, "API key created");
    Ok(answer(StatusCode::CREATED, view, Some(key), &o))
}

/// `PATCH /api/keys/{id}`
pub async fn update(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
    body: StrictJson<UpdateRequest>,
) -> Result<Response, ApiError> {
    let ctx = meta.with_body(&body.digest);
    let r = body.value;
    let command = ApiKeyCommand::Update {
        name: r.name,
        limits: LimitsPatch {
            models: r.models,
            rpm_limit: r.rpm_limit,
            tpm_limit: r.tpm_limit,
            budget_tokens: r.budget_tokens,
            expires_at: r.expires_at,
        },
        now: Utc::now(),
    };
    let o = respond::execute(&state, id, command, &ctx, rejection).await?;
    let view = view_of(&state, id, &o).await?;
    Ok(answer(StatusCode::OK, view, None, &o))
}

/// `DELETE /api/keys/{id}`: revokes the key (its history stays).
pub async fn revoke(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
    body: Option<StrictJson<RevokeRequest>>,
) -> Result<Response, ApiError> {
    let (ctx, reason) = match body {
        Some(b) => (meta.with_body(&b.digest), b.value.reason),
        None => (meta.without_body(), None),
    };
    let o = respond::execute(
        &state,
        id,
        ApiKeyCommand::Revoke { reason },
        &ctx,
        rejection,
    )
    .await?;
    let view = view_of(&state, id, &o).await?;
    tracing::info!(key_id = %id, key_prefix = %view.prefix, "API key revoked");
    Ok(answer(StatusCode::OK, view, None, &o))
}

/// `POST /api/keys/{id}/rotate`
pub async fn rotate(
    State(state): State<AppState>,
    PathId(id): PathId,
    meta: CommandMeta,
    body: Option<StrictJson<RotateRequest>>,
) -> Result<Response, ApiError> {
    let (ctx, r) = match body {
        Some(b) => (meta.with_body(&b.digest), b.value),
        None => (meta.without_body(), RotateRequest::default()),
    };
    no_idempotency(&ctx)?;
    let (key, secret) = generate_key();
    let command = ApiKeyCommand::Rotate {
        secret,
        grace_seconds: r.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS),
        now: Utc::now(),
    };
    let o = respond::execute(&state, id, command, &ctx, rejection).await?;
    let view = view_of(&state, id, &o).await?;
    tracing::info!(key_id = %id, key_prefix = %view.prefix, "API key rotated");
    Ok(answer(StatusCode::OK, view, Some(key), &o))
}

/// `GET /api/keys`
pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let items = read::list(&state.pool).await?;
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/keys/{id}`
pub async fn get(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    match read::get(&state.pool, id).await? {
        Some(v) => Ok(respond::respond(
            StatusCode::OK,
            &v,
            v.version,
            String::new(),
            None,
        )),
        None => {
            // Just created: the read model may not have caught up yet.
            let loaded = state.store.load::<ApiKey>(&id.to_string(), None).await?;
            let Some(s) = loaded.aggregate.state.as_ref() else {
                return Err(rejection(ApiKeyError::NotFound));
            };
            let now = Utc::now();
            let v = ApiKeyView::from_state(
                id,
                s,
                loaded.version,
                loaded.created_at.unwrap_or(now),
                None,
                None,
                None,
                loaded.updated_at.unwrap_or(now),
                now,
            );
            Ok(
                respond::respond(StatusCode::OK, &v, v.version, String::new(), None)
                    .into_response(),
            )
        }
    }
}

/// `GET /api/keys/{id}/history`
pub async fn history(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<serde_json::Value>, ApiError> {
    respond::history::<ApiKey>(&state, id, rejection(ApiKeyError::NotFound)).await
}
