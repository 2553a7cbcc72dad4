//! The HTTP routes of the mock engine, the same paths as vLLM's OpenAI-compatible server plus
//! `/_mock/*` controls for tests.
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /v1/models` | served models (vLLM `ModelCard`s) |
//! | `POST /v1/chat/completions` | chat, streaming or not |
//! | `POST /v1/completions` | text completions, streaming or not, batches of prompts |
//! | `POST /v1/embeddings` | unit-norm vectors, float or base64 |
//! | `GET /health` | 200, 503 under the `dead` fault |
//! | `GET /version` | `{"version": ...}` |
//! | `GET /metrics` | Prometheus text with vLLM's metric names |
//! | `GET /_mock/stats` | [`EngineStats`](super::EngineStats) |
//! | `GET`/`POST /_mock/faults` | read / set the [`Fault`](super::Fault) |

mod chat;
mod completions;
mod embeddings;
mod generation;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use super::error::ApiError;
use super::fault::Fault;
use super::state::Engine;
use super::stats::StatsCounters;

pub use ops::MOCK_VERSION;

/// Largest request body: room for big embedding batches and long prompts.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The router of one engine.
pub(crate) fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/v1/models", get(ops::list_models))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/health", get(ops::health))
        .route("/version", get(ops::version))
        .route("/metrics", get(ops::prometheus))
        .route("/_mock/stats", get(ops::stats))
        .route("/_mock/faults", get(ops::get_fault).post(ops::set_fault))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(engine)
}

/// Counts an inference request and refuses it when the engine is dead.
fn inference_prelude(engine: &Engine) -> Result<(), ApiError> {
    StatsCounters::bump(&engine.stats.requests);
    if engine.fault() == Fault::Dead {
        return Err(ApiError::Dead);
    }
    Ok(())
}
