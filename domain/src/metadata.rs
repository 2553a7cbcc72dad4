//! Metadata carried by every event: who acted, on behalf of which request, in which tenant.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The tenant every event belongs to until tenants exist. Recording it now means tenants and
/// roles can arrive later without rewriting history.
pub const DEFAULT_TENANT: Uuid = Uuid::from_u128(0);

/// What kind of party caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A human operator, authenticated by the operator token.
    Operator,
    /// An API client, authenticated by an API key.
    ApiKey,
    /// A process manager of the control plane.
    Processor,
    /// The platform itself (catalog seed, migrations, command-line tools).
    System,
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    /// A stable, non-secret name: `admin`, a key's display prefix, a processor's name.
    pub id: String,
}

impl Actor {
    pub fn operator(id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Operator,
            id: id.into(),
        }
    }

    pub fn system(id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::System,
            id: id.into(),
        }
    }

    pub fn processor(id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Processor,
            id: id.into(),
        }
    }
}

/// Metadata stored with every event (the `metadata` column of the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Shared by everything one user intention caused, across aggregates and processors.
    pub correlation_id: Uuid,
    /// What directly caused this event: `command:<uuid>` or `event:<position>`.
    pub causation_id: String,
    pub actor: Actor,
    /// The HTTP request id (`x-request-id`), or the processor run that acted.
    pub request_id: Option<String>,
    pub tenant_id: Uuid,
}

impl EventMetadata {
    /// Metadata for a new command with its own correlation: used by the CLI and tests.
    pub fn new_command(actor: Actor) -> Self {
        let command_id = Uuid::now_v7();
        Self {
            correlation_id: command_id,
            causation_id: format!("command:{command_id}"),
            actor,
            request_id: None,
            tenant_id: DEFAULT_TENANT,
        }
    }
}
