//! The event log over HTTP: pages of JSON, and the live SSE stream.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use inferplane_store::reader::{self, Filter};
use inferplane_store::{Cursor, StoredEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Query;
use crate::hub::{Envelope, to_hub_event};

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

async fn resolve(state: &AppState, position: i64) -> Result<Cursor, ApiError> {
    if position < 0 {
        return Err(ApiError::invalid_field(
            "after",
            "must be a position (0 or more)",
        ));
    }
    reader::cursor_of(&mut *state.pool.acquire().await?, position)
        .await?
        .ok_or_else(|| ApiError::invalid_field("after", format!("no event at position {position}")))
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

fn sse_event(id: i64, event_type: &str, json: &str) -> Event {
    Event::default()
        .id(id.to_string())
        .event(event_type)
        .data(json)
}

/// `GET /api/events/stream`: replays from the store after `Last-Event-ID` (or `?after=`), then
/// follows the hub live, with no gap and no duplicate. Without either, it starts at the head.
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if q.limit.is_some() {
        return Err(ApiError::invalid_field(
            "limit",
            "is not used by the stream",
        ));
    }
    let last_event_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
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
        Some(p) => resolve(&state, p).await?,
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

    let stream = async_stream::stream! {
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
                        let h = to_hub_event(e);
                        yield Ok(sse_event(h.event.position, &h.event.event_type, &h.json));
                    }
                    if !full {
                        sent = joined;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "replay for a stream client failed");
                    yield Ok(reconnect_event(sent, "replay failed"));
                    return;
                }
            }
        }
        // Live.
        loop {
            let received = tokio::select! {
                r = live.recv() => r,
                _ = inferplane_projections::stopped(&mut shutdown) => {
                    yield Ok(reconnect_event(sent, "server shutting down"));
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
                            yield Ok(sse_event(h.event.position, &h.event.event_type, &h.json));
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    metrics::counter!("inferplane_sse_clients_cut_off_total").increment(1);
                    yield Ok(reconnect_event(sent, "slow consumer: reconnect with Last-Event-ID"));
                    return;
                }
                Err(RecvError::Closed) => return,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.settings.sse_keep_alive)))
}

/// The last event a client gets before being cut off: where to resume from.
fn reconnect_event(sent: Cursor, reason: &str) -> Event {
    Event::default()
        .event("reconnect")
        .data(serde_json::json!({ "reason": reason, "last_event_id": sent.position }).to_string())
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
