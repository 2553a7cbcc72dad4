//! The domain of inferplane: aggregates, their commands, events and errors.
//!
//! Everything here is pure. Decisions are synchronous functions of (state, command); facts from
//! the outside world (the clock, provider answers) arrive inside commands. The cqrs-es
//! `Aggregate` implementations are thin adapters over those functions so that the store can
//! load and execute them generically.

pub mod api_key;
pub mod catalog;
pub mod instance;
pub mod metadata;
pub mod model;
pub mod reconciliation;
pub mod usage;
pub mod worker_credentials;

pub use metadata::{Actor, ActorKind, DEFAULT_TENANT, EventMetadata};
