//! What the reconciler found at a provider: resources tagged by us that nothing in the store
//! accounts for, and that it deleted.
//!
//! One aggregate per provider zone (`scaleway:fr-par-2`), so that the audit trail of orphans
//! has a home even when the instance a resource names never existed. Reaping the same resource
//! twice (a pass repeated after a crash) records nothing the second time.

use std::collections::BTreeSet;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The kind of a provider resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Server,
    Volume,
}

/// Why a resource was an orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanReason {
    /// Its tag names no instance of the store (after a grace period).
    UnknownInstance,
    /// Its instance is terminated or archived.
    InstanceTerminated,
    /// It carries our owner tag but no instance tag.
    Untagged,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReconciliationCommand {
    RecordOrphanReaped {
        kind: ResourceKind,
        resource_id: String,
        instance_id: Option<Uuid>,
        reason: OrphanReason,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReconciliationEvent {
    OrphanReaped {
        kind: ResourceKind,
        resource_id: String,
        instance_id: Option<Uuid>,
        reason: OrphanReason,
    },
}

impl DomainEvent for ReconciliationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OrphanReaped { .. } => "OrphanReaped".to_string(),
        }
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconciliationError {
    #[error("resource_id must be 1 to 200 printable characters")]
    InvalidResourceId,
}

/// The reconciliation record of one provider zone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Every resource reaped so far.
    pub reaped: BTreeSet<String>,
}

/// The aggregate id of a provider zone's record.
pub fn reconciliation_id(provider: &str, zone: &str) -> String {
    format!("{provider}:{zone}")
}

/// The rules: a reaped resource is recorded once.
pub fn decide(
    state: &Reconciliation,
    command: ReconciliationCommand,
) -> Result<Vec<ReconciliationEvent>, ReconciliationError> {
    match command {
        ReconciliationCommand::RecordOrphanReaped {
            kind,
            resource_id,
            instance_id,
            reason,
        } => {
            if resource_id.is_empty()
                || resource_id.len() > 200
                || !resource_id.chars().all(|c| c.is_ascii_graphic())
            {
                return Err(ReconciliationError::InvalidResourceId);
            }
            if state.reaped.contains(&resource_id) {
                return Ok(vec![]);
            }
            Ok(vec![ReconciliationEvent::OrphanReaped {
                kind,
                resource_id,
                instance_id,
                reason,
            }])
        }
    }
}

impl Aggregate for Reconciliation {
    const TYPE: &'static str = "reconciliation";
    type Command = ReconciliationCommand;
    type Event = ReconciliationEvent;
    type Error = ReconciliationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in decide(self, command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ReconciliationEvent::OrphanReaped { resource_id, .. } => {
                self.reaped.insert(resource_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reap(id: &str) -> ReconciliationCommand {
        ReconciliationCommand::RecordOrphanReaped {
            kind: ResourceKind::Server,
            resource_id: id.to_string(),
            instance_id: None,
            reason: OrphanReason::UnknownInstance,
        }
    }

    #[test]
    fn a_resource_is_recorded_once() {
        let mut state = Reconciliation::default();
        let events = decide(&state, reap("srv-1")).unwrap();
        assert_eq!(events.len(), 1);
        for e in events {
            state.apply(e);
        }
        assert!(decide(&state, reap("srv-1")).unwrap().is_empty());
        assert_eq!(decide(&state, reap("srv-2")).unwrap().len(), 1);
    }

    #[test]
    fn malformed_ids_are_refused() {
        let state = Reconciliation::default();
        assert_eq!(
            decide(&state, reap("")),
            Err(ReconciliationError::InvalidResourceId)
        );
        assert_eq!(
            decide(&state, reap("a b")),
            Err(ReconciliationError::InvalidResourceId)
        );
    }
}
