//! The worker side of inferplane: the agent that runs on each GPU VM, and a mock vLLM engine.
//!
//! - [`engine`]: a mock of vLLM's OpenAI-compatible server (same routes, same JSON, same
//!   Prometheus metric names) that runs anywhere a GPU cannot: the demo, readiness checks,
//!   gateway routing tests and benchmarks. Many engines fit in one process.

pub mod engine;
