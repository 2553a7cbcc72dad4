//! What chat and completions share: the token budget, the sequence key, and turning a
//! [`generate`] stream into either an SSE response or a single JSON answer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderValue, StatusCode, header};

use crate::engine::error::ApiError;
use crate::engine::hash::{combine, fnv1a};
use crate::engine::prompt::Prompt;
use crate::engine::protocol::{SSE_DONE, Usage};
use crate::engine::run::{GenEvent, Run, TokenOut, generate};
use crate::engine::state::Engine;
use crate::engine::text::{FinishReason, SequencePlan};

/// How many tokens a sequence may generate, and the finish reason when it uses them all.
///
/// A client-set `max_tokens` ends in `length`; without one the model answers
/// `default_max_tokens` tokens and ends in `stop`, like an end-of-sequence token, unless the
/// context window cuts it first. A prompt plus `max_tokens` beyond `max_model_len` is a 400 with
/// vLLM's wording.
pub(crate) fn token_budget(
    engine: &Engine,
    prompt_tokens: usize,
    max_tokens: Option<u32>,
) -> Result<(u32, FinishReason), ApiError> {
    let max_model_len = engine.config.max_model_len as usize;
    if prompt_tokens >= max_model_len {
        return Err(ApiError::bad_request(
            format!(
                "This model's maximum context length is {max_model_len} tokens. However, your request has {prompt_tokens} input tokens. Please reduce the length of the input messages."
            ),
            None,
        ));
    }
    let room = (max_model_len - prompt_tokens) as u32;
    match max_tokens {
        Some(requested) if requested > room => Err(ApiError::bad_request(
            format!(
                "This model's maximum context length is {max_model_len} tokens. However, you requested {} tokens ({prompt_tokens} in the messages, {requested} in the completion). Please reduce the length of the messages or completion.",
                prompt_tokens as u64 + u64::from(requested)
            ),
            Some("max_tokens"),
        )),
        Some(requested) => Ok((requested, FinishReason::Length)),
        None if engine.config.default_max_tokens <= room => {
            Ok((engine.config.default_max_tokens, FinishReason::Stop))
        }
        None => Ok((room, FinishReason::Length)),
    }
}

/// The key that seeds a sequence's text: engine seed, request seed, model and prompt.
pub(crate) fn sequence_key(
    engine: &Engine,
    request_seed: Option<i64>,
    model: &str,
    prompt: &Prompt,
) -> u64 {
    let mut key = combine(engine.config.seed, fnv1a(model.as_bytes()));
    if let Some(seed) = request_seed {
        key = combine(key, seed as u64);
    }
    combine(key, prompt.fingerprint())
}

/// Renders generation events as SSE chunks in one API's format.
pub(crate) trait ChunkFormat: Send + 'static {
    /// Sent right after the prefill (chat's role chunk).
    fn prefilled(&self) -> Option<Bytes>;
    /// The chunks of one generation step.
    fn tokens(&self, tokens: &[TokenOut]) -> Vec<Bytes>;
    /// The `include_usage` chunk.
    fn usage(&self, usage: Usage) -> Bytes;
}

/// A prepared generation: accepted by the scheduler, plans decided.
pub(crate) struct Job {
    pub run: Run,
    pub prompts: Vec<Prompt>,
    pub plans: Arc<Vec<SequencePlan>>,
}

impl Job {
    pub(crate) fn prompt_tokens(&self) -> u64 {
        self.prompts.iter().map(|p| p.len() as u64).sum()
    }

    pub(crate) fn completion_tokens(&self) -> u64 {
        self.plans.iter().map(|p| p.tokens() as u64).sum()
    }

    fn events(self) -> Pin<Box<dyn Stream<Item = GenEvent> + Send>> {
        Box::pin(generate(self.run, self.prompts, self.plans))
    }

    /// Streams the generation as SSE, token by token (nothing is buffered).
    pub(crate) fn into_sse(self, format: impl ChunkFormat, include_usage: bool) -> Response {
        let prompt_tokens = self.prompt_tokens();
        let completion_tokens = self.completion_tokens();
        let mut events = self.events();
        let body = async_stream::stream! {
            let mut cached_tokens = 0;
            while let Some(event) = events.next().await {
                match event {
                    GenEvent::Prefilled { cached_tokens: cached } => {
                        cached_tokens = cached;
                        if let Some(chunk) = format.prefilled() {
                            yield Ok(chunk);
                        }
                    }
                    GenEvent::Tokens(tokens) => {
                        for chunk in format.tokens(&tokens) {
                            yield Ok(chunk);
                        }
                    }
                    GenEvent::Finished => {
                        if include_usage {
                            yield Ok(format.usage(Usage::new(
                                prompt_tokens,
                                completion_tokens,
                                cached_tokens,
                            )));
                        }
                        yield Ok(Bytes::from_static(SSE_DONE));
                    }
                    GenEvent::Died => {
                        yield Err(io::Error::other("injected fault: die_mid_stream"));
                        return;
                    }
                }
            }
        };
        let mut response = Response::new(Body::from_stream(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        response
    }

    /// Runs the generation to its end. `Ok(cached_tokens)`, or `Err(response)` cutting the
    /// connection when a fault killed it.
    pub(crate) async fn run_to_end(self) -> Result<u64, Response> {
        let mut events = self.events();
        let mut cached_tokens = 0;
        while let Some(event) = events.next().await {
            match event {
                GenEvent::Prefilled {
                    cached_tokens: cached,
                } => cached_tokens = cached,
                GenEvent::Died => return Err(broken_response()),
                GenEvent::Tokens(_) | GenEvent::Finished => {}
            }
        }
        Ok(cached_tokens)
    }
}

/// A 200 whose body fails at once: the server drops the connection mid-response.
fn broken_response() -> Response {
    let body = futures::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::other("injected fault: die_mid_stream"))
    });
    (StatusCode::OK, Body::from_stream(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::EngineConfig;

    fn engine(max_model_len: u32, default_max_tokens: u32) -> Engine {
        Engine::new(EngineConfig {
            max_model_len,
            default_max_tokens,
            ..EngineConfig::default()
        })
    }

    #[test]
    fn budget_rules() {
        let engine = engine(100, 16);
        assert_eq!(
            token_budget(&engine, 10, Some(5)).ok(),
            Some((5, FinishReason::Length))
        );
        assert_eq!(
            token_budget(&engine, 10, None).ok(),
            Some((16, FinishReason::Stop))
        );
        assert_eq!(
            token_budget(&engine, 90, None).ok(),
            Some((10, FinishReason::Length))
        );
        assert!(token_budget(&engine, 10, Some(91)).is_err());
        assert!(token_budget(&engine, 100, Some(1)).is_err());
    }
}
