//! Usage metering without a database write on the request path.
//!
//! A request pushes its [`UsageRecord`] into an in-memory buffer. A background flusher appends
//! the buffer as one `UsageRecorded` event to this process's own Usage aggregate at least every
//! `flush_interval`, or as soon as `flush_records` are waiting. On graceful shutdown the
//! flusher drains the buffer before it returns. A failed append keeps the records and is
//! retried; only a hard crash (SIGKILL, power loss) loses what was buffered since the last
//! flush: at most one interval's worth of records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inferplane_domain::usage::{MAX_BATCH, Usage, UsageEvent, UsageRecord};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::{EventStore, NewEvent};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

#[derive(Default)]
struct Buffer {
    records: Vec<UsageRecord>,
}

/// The request side: cheap to clone, never blocks on I/O.
#[derive(Clone)]
pub struct Meter {
    buffer: Arc<Mutex<Buffer>>,
    wake: Arc<Notify>,
    flush_records: usize,
    /// Records appended to the store so far.
    flushed: Arc<AtomicU64>,
    /// Records handed to the meter so far.
    recorded: Arc<AtomicU64>,
    aggregate_id: Uuid,
}

impl Meter {
    pub fn new(flush_records: usize) -> Self {
        Self {
            buffer: Arc::default(),
            wake: Arc::default(),
            flush_records: flush_records.clamp(1, MAX_BATCH),
            flushed: Arc::default(),
            recorded: Arc::default(),
            aggregate_id: Uuid::now_v7(),
        }
    }

    /// This process's Usage aggregate.
    pub fn aggregate_id(&self) -> Uuid {
        self.aggregate_id
    }

    pub fn record(&self, record: UsageRecord) {
        let len = {
            let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            b.records.push(record);
            b.records.len()
        };
        self.recorded.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("inferplane_gateway_usage_buffered").set(len as f64);
        if len >= self.flush_records {
            self.wake.notify_one();
        }
    }

    /// Records handed over, and records appended to the store.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.recorded.load(Ordering::Relaxed),
            self.flushed.load(Ordering::Relaxed),
        )
    }

    fn take(&self, max: usize) -> Vec<UsageRecord> {
        let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let n = b.records.len().min(max);
        b.records.drain(..n).collect()
    }

    fn put_back(&self, mut records: Vec<UsageRecord>) {
        let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        records.append(&mut b.records);
        b.records = records;
    }

    fn buffered(&self) -> usize {
        self.buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .records
            .len()
    }

    /// Appends everything buffered, batch by batch. `version` is the aggregate's last sequence.
    async fn flush(&self, store: &EventStore, version: &mut i64) -> anyhow::Result<()> {
        loop {
            let records = self.take(MAX_BATCH);
            if records.is_empty() {
                return Ok(());
            }
            let n = records.len();
            let event = UsageEvent::UsageRecorded { records };
            let payload = serde_json::to_value(&event)?;
            let new = NewEvent {
                event_type: "UsageRecorded".into(),
                event_version: "1".into(),
                payload,
            };
            let metadata = EventMetadata::new_command(Actor::system("gateway"));
            let started = std::time::Instant::now();
            match store
                .append(
                    <Usage as cqrs_es::Aggregate>::TYPE,
                    &self.aggregate_id.to_string(),
                    *version,
                    &[new],
                    &metadata,
                )
                .await
            {
                Ok(_) => {
                    *version += 1;
                    self.flushed.fetch_add(n as u64, Ordering::Relaxed);
                    metrics::histogram!("inferplane_gateway_usage_flush_seconds")
                        .record(started.elapsed().as_secs_f64());
                    metrics::counter!("inferplane_gateway_usage_records_flushed_total")
                        .increment(n as u64);
                }
                Err(e) => {
                    let UsageEvent::UsageRecorded { records } = event;
                    self.put_back(records);
                    return Err(e);
                }
            }
        }
    }

    /// Runs the flusher until `stop` turns true, then drains the buffer.
    pub async fn run(self, store: EventStore, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut version = 0i64;
        loop {
            let stopping = *stop.borrow();
            if let Err(e) = self.flush(&store, &mut version).await {
                tracing::warn!(error = %e, buffered = self.buffered(), "usage flush failed; retrying");
                if stopping {
                    // Keep trying for a while: records handed over must not be lost.
                    for _ in 0..20 {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        if self.flush(&store, &mut version).await.is_ok() {
                            break;
                        }
                    }
                    return;
                }
                tokio::time::sleep(interval).await;
                continue;
            }
            metrics::gauge!("inferplane_gateway_usage_buffered").set(self.buffered() as f64);
            if stopping {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }
}
