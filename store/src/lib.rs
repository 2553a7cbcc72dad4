//! The append-only event store of inferplane on PostgreSQL.
//!
//! - [`EventStore`] loads aggregates and executes commands against them, appending their events
//!   with optimistic concurrency and recording idempotency keys in the same transaction.
//! - [`reader`] reads the global stream in commit-consistent order without ever skipping an
//!   event (the xid8 horizon), for projections, processors and the live stream.
//! - [`Notifier`] holds the one LISTEN connection of a process and wakes readers, and
//!   [`EventTap`] lets them share one reading of the new events.
//! - [`cluster`] starts a private PostgreSQL cluster from the installed binaries.

pub mod cluster;
mod commands;
mod db;
mod envelope;
mod notifier;
pub mod reader;
mod tap;
pub mod testing;
mod writer;

pub use commands::{
    CommandContext, CommandError, CommandOutcome, EventStore, Idempotency, Loaded, NewEvent,
};
pub use db::{MIGRATOR, connect, migrations_pending};
pub use envelope::{Cursor, StoredEvent};
pub use notifier::{Notifier, WakeUps};
pub use tap::EventTap;
pub use writer::{DEFAULT_APPEND_GROUP_MAX, observe_append_queue, set_append_group_max};

/// The channel the store's trigger notifies once per append transaction.
pub const NOTIFY_CHANNEL: &str = "inferplane_events";
