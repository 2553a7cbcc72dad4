//! A mock of vLLM's OpenAI-compatible server, for everywhere a GPU cannot run: the demo, the
//! control plane's readiness checks, the gateway's routing tests, benchmarks.
//!
//! # Fidelity
//! The engine answers vLLM's routes with vLLM's JSON (`/v1/models`, `/v1/chat/completions`,
//! `/v1/completions`, `/v1/embeddings`, `/health`, `/version`, `/metrics`), so the official
//! OpenAI SDKs work against it unchanged, and its Prometheus exposition carries vLLM's metric
//! names with values that real traffic moves (running/waiting gauges, KV-cache usage, token
//! counters, finish reasons, TTFT/ITL/e2e/queue histograms, prefix cache).
//!
//! # Design
//! - **Deterministic output.** Text is words from a fixed vocabulary picked by hashing the seed,
//!   the model and the prompt ([`text`]); prompts are tokenised one word per token plus a
//!   ChatML-like template for chat ([`prompt`]); embeddings are hashed unit vectors. Tests can
//!   predict every byte and every token count.
//! - **Plans, then a timeline.** A request's sequences are fully planned before the first token
//!   (which makes stop strings exact), then a [`run::Run`] plays the plan on tokio timers:
//!   queue wait, time to first token, one inter-token latency per token. Streaming writes each
//!   token when it is "generated"; nothing is buffered.
//! - **Real scheduling.** Each model has a FIFO scheduler with `max_num_seqs` running slots and
//!   a bounded waiting queue (503 beyond it); slots and counters are released by `Drop`, so a
//!   client disconnect cancels generation at once.
//! - **Faults** ([`Fault`]) are switched at run time to test failure handling: slow, error_500,
//!   die_mid_stream, dead, reject.
//! - **Cheap instances.** No global state (metrics live in each engine), one task per idle
//!   engine: [`MockEngine::start`] runs hundreds in one process.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use inferplane_worker::engine::{EngineConfig, Fault, MockEngine};
//! let engine = MockEngine::start(EngineConfig::with_models(["llama-3.1-8b"])).await?;
//! let openai_base_url = engine.openai_base_url(); // give this to an OpenAI client
//! engine.set_fault(Fault::Dead).ok();              // /health now answers 503
//! engine.shutdown().await?;
//! # Ok(()) }
//! ```

mod config;
mod embedding;
mod error;
mod fault;
mod hash;
mod metrics;
mod prefix_cache;
pub mod prompt;
mod protocol;
mod routes;
mod run;
mod scheduler;
mod server;
mod state;
mod stats;
pub mod text;

pub use config::{
    ConfigError, DEFAULT_EMBEDDING_DIM, DEFAULT_ITL_MS, DEFAULT_KV_CACHE_TOKENS,
    DEFAULT_MAX_MODEL_LEN, DEFAULT_MAX_NUM_SEQS, DEFAULT_MAX_TOKENS, DEFAULT_MAX_WAITING,
    DEFAULT_MODEL, DEFAULT_TTFT_MS, EngineConfig, ModelSpec, ModelTask,
};
pub use error::ApiError;
pub use fault::{DEFAULT_DIE_AFTER_TOKENS, DEFAULT_SLOW_FACTOR, Fault, FaultError};
pub use prefix_cache::BLOCK_TOKENS;
pub use routes::MOCK_VERSION;
pub use server::{EngineHandle, MockEngine, serve};
pub use stats::EngineStats;
