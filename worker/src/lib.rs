//! The worker side of inferplane: the agent that runs on each GPU VM, and a mock vLLM engine.
//!
//! - [`agent`]: the worker agent on each GPU VM: registers with the control plane, heartbeats
//!   the engine's and the machine's state, serves its own health and metrics.
//! - [`engine`]: a mock of vLLM's OpenAI-compatible server (same routes, same JSON, same
//!   Prometheus metric names) that runs anywhere a GPU cannot: the demo, readiness checks,
//!   gateway routing tests and benchmarks. Many engines fit in one process.

pub mod agent;
pub mod engine;
