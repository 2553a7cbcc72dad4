//! The answer to a command or a read of one resource: its view, `ETag`, and what the command
//! wrote. Shared by every resource so the headers mean the same everywhere.

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cqrs_es::Aggregate;
use inferplane_store::CommandOutcome;
use serde::Serialize;

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
