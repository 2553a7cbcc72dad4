use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A place in the global stream: the committing transaction and the position within it.
///
/// The stream is ordered by this pair, not by position alone: positions are taken at insert
/// time but become visible at commit, so a later position can commit first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Cursor {
    pub transaction_id: i64,
    pub position: i64,
}

impl Cursor {
    /// Before the first event.
    pub const START: Cursor = Cursor {
        transaction_id: 0,
        position: 0,
    };
}

/// One event as stored, with its place in the global stream.
///
/// Its JSON documents are shared, not copied: every reader of a process gets the events the
/// shared reading decoded once ([`EventTap`](crate::EventTap)), and a clone costs a few small
/// strings, not a deep copy of the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub position: i64,
    pub transaction_id: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Arc<serde_json::Value>,
    pub metadata: Arc<serde_json::Value>,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// Decodes the payload as `T` (without copying it).
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        T::deserialize(&*self.payload)
    }

    pub fn cursor(&self) -> Cursor {
        Cursor {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }
}
