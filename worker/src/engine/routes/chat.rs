//! `POST /v1/chat/completions`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use tokio::time::Instant;

use super::generation::{ChunkFormat, Job, sequence_key, token_budget};
use super::inference_prelude;
use crate::engine::config::ModelTask;
use crate::engine::error::ApiError;
use crate::engine::prompt::{ChatTurn, Prompt};
use crate::engine::protocol::chat::{
    AssistantMessage, ChatChoice, ChatChunk, ChatChunkChoice, ChatCompletion,
    ChatCompletionRequest, Delta,
};
use crate::engine::protocol::{Usage, parse_body, sse_event};
use crate::engine::run::{Run, TokenOut};
use crate::engine::state::{Engine, response_id, unix_now};
use crate::engine::text::SequencePlan;

pub(super) async fn chat_completions(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrival = Instant::now();
    match prepare(&engine, &headers, &body, arrival) {
        Ok(prepared) => prepared.respond().await,
        Err(error) => {
            engine.count_refusal(&error);
            error.into_response()
        }
    }
}

struct Prepared {
    job: Job,
    format: ChatFormat,
    stream: bool,
    include_usage: bool,
}

fn prepare(
    engine: &Arc<Engine>,
    headers: &HeaderMap,
    body: &[u8],
    arrival: Instant,
) -> Result<Prepared, ApiError> {
    inference_prelude(engine)?;
    let request: ChatCompletionRequest = parse_body(body)?;
    let model = engine.resolve_model(
        request.model.as_deref(),
        ModelTask::Generate,
        "Chat Completions",
    )?;
    let params = request.sampling()?.validate()?;
    let texts = request
        .messages
        .iter()
        .enumerate()
        .map(|(index, message)| message.text(index))
        .collect::<Result<Vec<_>, _>>()?;
    let turns: Vec<ChatTurn<'_>> = request
        .messages
        .iter()
        .zip(&texts)
        .map(|(message, text)| ChatTurn {
            role: &message.role,
            text,
        })
        .collect();
    let prompt = Prompt::from_chat(&turns);
    let (budget, finish_at_budget) = token_budget(engine, prompt.len(), params.max_tokens)?;
    let key = sequence_key(engine, params.seed, &model.spec.name, &prompt);
    let plan = SequencePlan::new(key, budget, finish_at_budget, &params.stops);
    engine.refuse_by_fault()?;
    let run = Run::reserve(engine, &model, 1, arrival)?;
    Ok(Prepared {
        job: Job {
            run,
            prompts: vec![prompt],
            plans: Arc::new(vec![plan]),
        },
        format: ChatFormat {
            id: response_id("chatcmpl-", headers),
            created: unix_now(),
            model: model.spec.name.clone(),
            include_usage: params.include_usage,
        },
        stream: params.stream,
        include_usage: params.include_usage,
    })
}

impl Prepared {
    async fn respond(self) -> Response {
        if self.stream {
            return self.job.into_sse(self.format, self.include_usage);
        }
        let prompt_tokens = self.job.prompt_tokens();
        let completion_tokens = self.job.completion_tokens();
        let plans = self.job.plans.clone();
        let cached_tokens = match self.job.run_to_end().await {
            Ok(cached) => cached,
            Err(broken) => return broken,
        };
        let format = self.format;
        let choices = plans
            .iter()
            .enumerate()
            .map(|(index, plan)| ChatChoice {
                index: index as u32,
                message: AssistantMessage {
                    role: "assistant",
                    content: plan.text(),
                    refusal: None,
                    tool_calls: Vec::new(),
                    reasoning_content: None,
                },
                logprobs: None,
                finish_reason: plan.finish,
                stop_reason: plan.stop_reason.clone(),
            })
            .collect();
        Json(ChatCompletion {
            id: format.id,
            object: "chat.completion",
            created: format.created,
            model: format.model,
            choices,
            usage: Usage::new(prompt_tokens, completion_tokens, cached_tokens),
            system_fingerprint: None,
            prompt_logprobs: None,
        })
        .into_response()
    }
}

/// Chat chunks: a role chunk, one content chunk per token (the last carrying
/// `finish_reason`), then the optional usage chunk.
struct ChatFormat {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl ChatFormat {
    fn chunk(&self, choices: Vec<ChatChunkChoice>) -> Bytes {
        sse_event(&ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage: self.include_usage.then_some(None),
        })
    }
}

impl ChunkFormat for ChatFormat {
    fn prefilled(&self) -> Option<Bytes> {
        Some(self.chunk(vec![ChatChunkChoice {
            index: 0,
            delta: Delta {
                role: Some("assistant"),
                content: Some(String::new()),
            },
            logprobs: None,
            finish_reason: None,
            stop_reason: None,
        }]))
    }

    fn tokens(&self, tokens: &[TokenOut]) -> Vec<Bytes> {
        tokens
            .iter()
            .map(|token| {
                let (finish_reason, stop_reason) = match &token.finish {
                    Some((reason, stop)) => (Some(*reason), stop.clone()),
                    None => (None, None),
                };
                self.chunk(vec![ChatChunkChoice {
                    index: token.sequence,
                    delta: Delta {
                        role: None,
                        content: Some(token.text.clone()),
                    },
                    logprobs: None,
                    finish_reason,
                    stop_reason,
                }])
            })
            .collect()
    }

    fn usage(&self, usage: Usage) -> Bytes {
        sse_event(&ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: Vec::new(),
            usage: Some(Some(usage)),
        })
    }
}
