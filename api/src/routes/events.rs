//! The event log over HTTP: pages of JSON, and the live SSE stream.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use inferplane_store::reader::{self, Filter, Located};
use inferplane_store::{Cursor, StoredEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Query;
use crate::hub::{Envelope, HubEvent, to_hub_event};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Position of the last event already seen (0 = from the first event).
    after: Option<i64>,
    limit: Option<i64>,
    aggregate_type: Option<String>,
    aggregate_id: Option<String>,
    event_type: Option<String>,
    correlation_id: Option<String>,
}

impl EventQuery {
    fn filter(&self) -> Filter {
        Filter {
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            event_type: self.event_type.clone(),
            correlation_id: self.correlation_id.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct EventPage<'a> {
    events: Vec<Envelope<'a>>,
    /// Pass as `after` for the next page; equal to `after` when nothing new was there.
    next_after: i64,
}

/// The cursor to read after `position`. A position a command's answer has just named can be
/// committed but not yet readable: wait for it rather than refuse it.
async fn resolve(state: &AppState, position: i64) -> Result<Cursor, ApiError> {
    if position < 0 {
        return Err(ApiError::invalid_field(
            "after",
            "must be a position (0 or more)",
        ));
    }
    let wait = state.settings.position_wait;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match reader::locate(&mut *state.pool.acquire().await?, position).await? {
            Located::Readable(cursor) => return Ok(cursor),
            Located::Unknown => {
                return Err(ApiError::invalid_field(
                    "after",
                    format!("no event at position {position}"),
                ));
            }
            Located::Settling if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Located::Settling => {
                tracing::warn!(
                    position,
                    wait_ms = wait.as_millis() as u64,
                    "an event stayed behind an open transaction for the whole wait"
                );
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "position-not-readable-yet",
                    "Position not readable yet",
                    format!(
                        "the event at position {position} is committed, but an older transaction is still open; retry shortly"
                    ),
                );
                e.headers
                    .push((header::RETRY_AFTER, HeaderValue::from_static("1")));
                return Err(e);
            }
        }
    }
}

/// `GET /api/events`: the global stream, a page at a time, in commit order.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<EventQuery>,
) -> Result<axum::response::Response, ApiError> {
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "must be between 1 and 1000",
        ));
    }
    let cursor = resolve(&state, after).await?;
    let events = reader::read_after(
        &mut *state.pool.acquire().await?,
        cursor,
        &q.filter(),
        limit,
    )
    .await?;
    let next_after = events.last().map_or(after, |e| e.position);
    let page = EventPage {
        events: events.iter().map(Envelope::from).collect(),
        next_after,
    };
    Ok(axum::response::IntoResponse::into_response(Json(page)))
}

/// One frame of the live stream, whatever carries it (axum's SSE response, or the dedicated
/// connection handler in [`crate::stream_conn`]).
pub enum Frame {
    Event {
        id: i64,
        event_type: String,
        json: Arc<str>,
    },
    /// The last frame before the stream ends: where to resume from, and why.
    Reconnect(String),
}

impl Frame {
    fn event(h: &HubEvent) -> Self {
        Frame::Event {
            id: h.event.position,
            event_type: h.event.event_type.clone(),
            json: h.json.clone(),
        }
    }

    fn reconnect(sent: Cursor, reason: &str) -> Self {
        Frame::Reconnect(
            serde_json::json!({ "reason": reason, "last_event_id": sent.position }).to_string(),
        )
    }
}

/// Validates a stream request and opens the stream: replay from the store after
/// `Last-Event-ID` (or `?after=`), then the hub live, with no gap and no duplicate. Without a
/// position it starts at the head.
pub async fn open(
    state: &AppState,
    q: EventQuery,
    last_event_id: Option<&[u8]>,
) -> Result<impl Stream<Item = Frame> + Send + use<>, ApiError> {
    if q.limit.is_some() {
        return Err(ApiError::invalid_field(
            "limit",
            "is not used by the stream",
        ));
    }
    let last_event_id = match last_event_id {
        Some(v) => Some(
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid_field("Last-Event-ID", "must be a position"))?,
        ),
        None => None,
    };
    // Subscribe before reading the hub's cursor: everything after it comes on `live`.
    let mut live = state.hub.subscribe();
    let joined = state.hub.cursor();
    let start = match last_event_id.or(q.after) {
        Some(p) => resolve(state, p).await?,
        // Live from the head of the store, which the hub may not have reached yet.
        None => reader::head(&mut *state.pool.acquire().await?)
            .await?
            .max(joined),
    };
    let filter = q.filter();
    let pool = state.pool.clone();
    let page = state.settings.sse_replay_page;
    let guard = ClientGauge::new();
    let mut shutdown = state.shutdown.clone();

    Ok(async_stream::stream! {
        let _guard = guard;
        let mut sent = start;
        // Replay: everything up to the hub's cursor is committed, read it from the store.
        while sent < joined {
            let read = match pool.acquire().await {
                Ok(mut conn) => reader::read_range(&mut conn, sent, joined, &filter, page).await,
                Err(e) => Err(e),
            };
            match read {
                Ok(events) => {
                    let full = events.len() as i64 == page;
                    for e in events {
                        sent = e.cursor();
                        yield Frame::event(&to_hub_event(e));
                    }
                    if !full {
                        sent = joined;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "replay for a stream client failed");
                    yield Frame::reconnect(sent, "replay failed");
                    return;
                }
            }
        }
        // Live.
        loop {
            let received = tokio::select! {
                r = live.recv() => r,
                _ = inferplane_projections::stopped(&mut shutdown) => {
                    yield Frame::reconnect(sent, "server shutting down");
                    return;
                }
            };
            match received {
                Ok(batch) => {
                    for h in batch.iter() {
                        let c = h.event.cursor();
                        if c <= sent {
                            continue;
                        }
                        sent = c;
                        if filter.matches(&h.event) {
                            yield Frame::event(h);
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    metrics::counter!("inferplane_sse_clients_cut_off_total").increment(1);
                    yield Frame::reconnect(sent, "slow consumer: reconnect with Last-Event-ID");
                    return;
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// `GET /api/events/stream` through axum (keep-alive connections that made other requests
/// first; new connections for the stream go to [`crate::stream_conn`]).
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last_event_id = headers.get("last-event-id").map(|v| v.as_bytes());
    let frames = open(&state, q, last_event_id).await?;
    let events = frames.map(|f| {
        Ok(match f {
            Frame::Event {
                id,
                event_type,
                json,
            } => Event::default()
                .id(id.to_string())
                .event(event_type)
                .data(&*json),
            Frame::Reconnect(json) => Event::default().event("reconnect").data(json),
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(state.settings.sse_keep_alive)))
}

/// Counts connected stream clients for `/metrics`.
struct ClientGauge;

impl ClientGauge {
    fn new() -> Self {
        metrics::gauge!("inferplane_sse_clients").increment(1.0);
        Self
    }
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        metrics::gauge!("inferplane_sse_clients").decrement(1.0);
    }
}

/// Envelopes of one aggregate's history, for `/api/<aggregate>/{id}/history`.
pub fn history_json(events: &[StoredEvent]) -> serde_json::Value {
    serde_json::json!({ "events": events.iter().map(Envelope::from).collect::<Vec<_>>() })
}
