//! The live stream hub: one reader per process that follows the global stream and fans new
//! events out in memory to every SSE client. Clients never hold a database connection while
//! they wait.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use inferplane_store::reader::{self, Filter};
use inferplane_store::{Cursor, StoredEvent, WakeUps};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::broadcast;

/// One event as the stream sends it: serialised once, shared by every client.
#[derive(Debug)]
pub struct HubEvent {
    pub event: StoredEvent,
    pub json: Arc<str>,
}

/// A batch read in one go, in stream order.
pub type HubBatch = Arc<Vec<HubEvent>>;

/// The envelope of an event on the wire (SSE `data:` and `/api/events`).
#[derive(Serialize)]
pub struct Envelope<'a> {
    pub position: i64,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub payload: &'a serde_json::Value,
    pub metadata: &'a serde_json::Value,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

impl<'a> From<&'a StoredEvent> for Envelope<'a> {
    fn from(e: &'a StoredEvent) -> Self {
        Self {
            position: e.position,
            aggregate_type: &e.aggregate_type,
            aggregate_id: &e.aggregate_id,
            sequence: e.sequence,
            event_type: &e.event_type,
            event_version: &e.event_version,
            payload: &e.payload,
            metadata: &e.metadata,
            recorded_at: e.recorded_at,
        }
    }
}

pub fn to_hub_event(event: StoredEvent) -> HubEvent {
    let json: Arc<str> = serde_json::to_string(&Envelope::from(&event))
        .unwrap_or_else(|_| "{}".into())
        .into();
    HubEvent { event, json }
}

#[derive(Clone)]
pub struct StreamHub {
    sender: broadcast::Sender<HubBatch>,
    cursor: Arc<RwLock<Cursor>>,
}

impl StreamHub {
    /// Starts following the stream from its current head.
    pub async fn start(
        pool: PgPool,
        wakeups: WakeUps,
        capacity: usize,
        poll_interval: Duration,
    ) -> anyhow::Result<Self> {
        let start = reader::head(&mut *pool.acquire().await?).await?;
        let (sender, _) = broadcast::channel(capacity);
        let hub = Self {
            sender,
            cursor: Arc::new(RwLock::new(start)),
        };
        tokio::spawn(follow(hub.clone(), pool, wakeups, poll_interval));
        Ok(hub)
    }

    /// Subscribe first, then read [`cursor`](Self::cursor): every event after that cursor
    /// arrives on the receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<HubBatch> {
        self.sender.subscribe()
    }

    /// The last event this hub has published.
    pub fn cursor(&self) -> Cursor {
        *self.cursor.read().unwrap_or_else(|e| e.into_inner())
    }
}

async fn follow(hub: StreamHub, pool: PgPool, mut wakeups: WakeUps, poll_interval: Duration) {
    loop {
        wakeups.borrow_and_update();
        loop {
            let after = hub.cursor();
            let read = match pool.acquire().await {
                Ok(mut conn) => {
                    reader::read_after(&mut conn, after, &Filter::default(), 1_000).await
                }
                Err(e) => Err(e),
            };
            match read {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    let last = events.last().map(StoredEvent::cursor).unwrap_or(after);
                    let batch: Vec<HubEvent> = events.into_iter().map(to_hub_event).collect();
                    // Publish the cursor before the batch; see `subscribe`.
                    *hub.cursor.write().unwrap_or_else(|e| e.into_inner()) = last;
                    let _ = hub.sender.send(Arc::new(batch));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live stream hub cannot read the store; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
        // Committed events behind an older open transaction: the notification for them is
        // spent, so look again shortly.
        let held_back = match pool.acquire().await {
            Ok(mut conn) => reader::held_back(&mut conn, hub.cursor())
                .await
                .unwrap_or(false),
            Err(_) => false,
        };
        if held_back {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        tokio::select! {
            r = wakeups.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(poll_interval) => {}
        }
    }
}
