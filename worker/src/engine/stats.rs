//! Request counters for tests and operators (`GET /_mock/stats`, [`EngineHandle::stats`]).
//!
//! [`EngineHandle::stats`]: super::EngineHandle::stats

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::fault::Fault;

/// A snapshot of what an engine has done. Request counts are per HTTP inference request
/// (chat, completions, embeddings); `running` and `waiting` count sequences, like vLLM's gauges.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EngineStats {
    /// Inference requests received.
    pub requests: u64,
    /// Answered in full.
    pub succeeded: u64,
    /// Refused with a 4xx (bad body, unknown model, wrong task).
    pub invalid: u64,
    /// Refused with 503 (queue full, `dead` or `reject` fault).
    pub rejected: u64,
    /// Failed by an injected fault (`error_500`, `die_mid_stream`).
    pub failed: u64,
    /// Abandoned by the client (disconnect) or cut by a hard stop before the end.
    pub cancelled: u64,
    /// Accepted requests not finished yet (queued or generating).
    pub in_flight: u64,
    /// Sequences generating now, all models.
    pub running: u64,
    /// Sequences waiting for a slot, all models.
    pub waiting: u64,
    /// The fault in force.
    pub fault: Fault,
}

/// The live counters behind [`EngineStats`].
#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    pub requests: AtomicU64,
    pub succeeded: AtomicU64,
    pub invalid: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    pub cancelled: AtomicU64,
    pub in_flight: AtomicU64,
}

impl StatsCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, running: u64, waiting: u64, fault: Fault) -> EngineStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EngineStats {
            requests: read(&self.requests),
            succeeded: read(&self.succeeded),
            invalid: read(&self.invalid),
            rejected: read(&self.rejected),
            failed: read(&self.failed),
            cancelled: read(&self.cancelled),
            in_flight: read(&self.in_flight),
            running,
            waiting,
            fault,
        }
    }
}
