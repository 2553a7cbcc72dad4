//! Usage: what the gateway served, one record per request, appended in batches.
//!
//! A gateway process owns one Usage aggregate (its own id, chosen at start), so batches never
//! contend with another writer: each `UsageRecorded` event carries up to [`MAX_BATCH`]
//! records. A request is never a database write of its own.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::DomainEvent;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most records in one event.
pub const MAX_BATCH: usize = 5_000;

/// One request served (or refused after authentication) by the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub request_id: String,
    /// `None` for the operator's console.
    pub key_id: Option<Uuid>,
    /// The key's display prefix, or `operator`.
    pub key_prefix: String,
    pub model: String,
    /// The worker that served it; `None` when none was reached.
    pub instance_id: Option<Uuid>,
    /// `chat/completions`, `completions` or `embeddings`.
    pub endpoint: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// True when the engine reported the usage; false when it was counted from a stream that
    /// ended early.
    pub usage_reported: bool,
    /// Time to the first byte of the answer (streams: the first content chunk).
    pub ttft_ms: Option<u32>,
    pub duration_ms: u32,
    /// HTTP status sent to the client (499: the client went away).
    pub status: u16,
    pub streamed: bool,
    pub started_at: DateTime<Utc>,
    pub tenant_id: Uuid,
}

impl UsageRecord {
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UsageEvent {
    UsageRecorded { records: Vec<UsageRecord> },
}

impl DomainEvent for UsageEvent {
    fn event_type(&self) -> String {
        "UsageRecorded".to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UsageCommand {
    Record { records: Vec<UsageRecord> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("a usage batch holds 1 to {MAX_BATCH} records")]
    BadBatch,
}

/// One gateway process's usage log; its state is only the number of records it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub records: u64,
}

impl Usage {
    pub fn decide(&self, command: UsageCommand) -> Result<Vec<UsageEvent>, UsageError> {
        match command {
            UsageCommand::Record { records } => {
                if records.is_empty() || records.len() > MAX_BATCH {
                    return Err(UsageError::BadBatch);
                }
                Ok(vec![UsageEvent::UsageRecorded { records }])
            }
        }
    }
}

impl Aggregate for Usage {
    const TYPE: &'static str = "usage";
    type Command = UsageCommand;
    type Event = UsageEvent;
    type Error = UsageError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let UsageEvent::UsageRecorded { records } = event;
        self.records += records.len() as u64;
    }
}
