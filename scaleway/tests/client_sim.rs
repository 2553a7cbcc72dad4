//! The client against the simulator, over real HTTP on 127.0.0.1.
//!
//! One test binary (faster to link than one per file); each module covers one concern.
//! `tests/observability.rs` is separate: it installs a thread-local `tracing` subscriber, which
//! must not race with other tests' log callsites in the same process.

#[path = "client_sim/errors.rs"]
mod errors;
#[path = "client_sim/lifecycle.rs"]
mod lifecycle;
#[path = "client_sim/resources.rs"]
mod resources;
#[path = "client_sim/retries.rs"]
mod retries;
#[path = "client_sim/secrets.rs"]
mod secrets;
#[path = "client_sim/support.rs"]
mod support;
