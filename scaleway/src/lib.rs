//! Scaleway: a client for the Instance and Block Storage APIs, and a local simulator.
//!
//! Two halves that speak the same HTTP API:
//!
//! - [`client`]: [`ScalewayClient`], a typed client on `reqwest` for the calls the control plane
//!   needs to rent GPU VMs (servers, their actions and user data, block volumes, flexible IPs, the
//!   product catalog). It retries what is safe to retry (see [`client`] for the exact policy:
//!   non-idempotent creates are *not* retried on 5xx or timeouts), maps Scaleway's error bodies to
//!   the typed [`ScalewayError`], logs every request at debug level without the secret, and
//!   records `metrics` counters and histograms.
//! - [`sim`]: a real HTTP server (axum) answering the same routes with the same JSON shapes and
//!   status codes, with time compression (every `state_detail` step of a boot takes a
//!   configurable duration), per-VM public addresses on the loopback range, and a fault-injection
//!   admin API under `/_sim/`. Tests, `inferplane sim scaleway` and `inferplane demo` use it.
//!
//! The shared vocabulary lives in [`types`] (servers, volumes, IPs, products), [`money`]
//! (exact micro-euro prices, never through `f64`), [`error`] and [`secret`].

pub mod client;
pub mod error;
pub mod money;
pub mod operations;
pub mod secret;
pub mod sim;
pub mod types;

pub use client::{RetryPolicy, ScalewayClient, ScalewayConfig};
pub use error::ScalewayError;
pub use money::MicroEuros;
pub use secret::SecretKey;
pub use types::*;
