//! The answer to a command or a read of one resource: its view, `ETag`, and what the command
//! wrote. Shared by every resource so the headers mean the same everywhere.

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cqrs_es::Aggregate;
use inferplane_store::{CommandContext, CommandError, CommandOutcome, reader};
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, command_error};
use crate::routes::events::history_json;

/// Executes a command on aggregate `id`, mapping the aggregate's refusals with `rejection`.
pub(crate) async fn execute<A: Aggregate<Services = ()>>(
    state: &AppState,
    id: Uuid,
    command: A::Command,
    ctx: &CommandContext,
    rejection: fn(A::Error) -> ApiError,
) -> Result<CommandOutcome<A>, ApiError>
where
    A::Command: Clone,
{
    state
        .store
        .execute::<A>(&id.to_string(), command, &(), ctx)
        .await
        .map_err(|e: CommandError<A::Error>| command_error(e, rejection))
}

/// Every event of aggregate `id`, oldest first; `unknown` when it has none.
pub(crate) async fn history<A: Aggregate>(
    state: &AppState,
    id: Uuid,
    unknown: ApiError,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let events = reader::aggregate_history(&mut conn, A::TYPE, &id.to_string()).await?;
    if events.is_empty() {
        return Err(unknown);
    }
    Ok(Json(history_json(&events)))
}

/// What a command's outcome adds to its answer.
pub(crate) struct Written {
    pub replayed: bool,
    pub last_position: Option<i64>,
}

impl Written {
    pub fn of<A: Aggregate>(o: &CommandOutcome<A>) -> Self {
        Self {
            replayed: o.replayed,
            last_position: o.last_position,
        }
    }
}

/// Answers with a view, its `ETag`, and for commands the event position and replay marker;
/// `location` is set on 201.
pub(crate) fn respond<T: Serialize>(
    status: StatusCode,
    view: &T,
    version: i64,
    location: String,
    written: Option<Written>,
) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        headers.insert(header::ETAG, v);
    }
    if let Some(w) = written {
        if w.replayed {
            headers.insert(
                HeaderName::from_static("idempotent-replayed"),
                HeaderValue::from_static("true"),
            );
        }
        if let Some(p) = w.last_position
            && let Ok(v) = HeaderValue::from_str(&p.to_string())
        {
            headers.insert(HeaderName::from_static("x-event-position"), v);
        }
    }
    if status == StatusCode::CREATED
        && let Ok(v) = HeaderValue::from_str(&location)
    {
        headers.insert(header::LOCATION, v);
    }
    (status, headers, Json(view)).into_response()
}
