//! `POST /v1/completions`. A list of prompts is a batch: one choice per prompt, generated in
//! lockstep, each prompt counting as one sequence for the scheduler and the metrics.

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
use crate::engine::prompt::Prompt;
use crate::engine::protocol::completion::{
    Completion, CompletionChoice, CompletionChunk, CompletionRequest,
};
use crate::engine::protocol::{InputItem, Usage, parse_body, sse_event};
use crate::engine::run::{Run, TokenOut};
use crate::engine::state::{Engine, response_id, unix_now};
use crate::engine::text::SequencePlan;

pub(super) async fn completions(
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
    format: CompletionFormat,
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
    let request: CompletionRequest = parse_body(body)?;
    let model =
        engine.resolve_model(request.model.as_deref(), ModelTask::Generate, "Completions")?;
    let params = request.sampling()?.validate()?;
    let items = request.prompt.items();
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "prompt must not be empty",
            Some("prompt"),
        ));
    }
    let mut prompts = Vec::with_capacity(items.len());
    let mut plans = Vec::with_capacity(items.len());
    for item in items {
        let prompt = match item {
            InputItem::Text(text) => Prompt::from_text(text),
            InputItem::Tokens(ids) => Prompt::from_token_ids(ids),
        };
        if prompt.len() == 0 {
            return Err(ApiError::bad_request(
                "Prompt cannot be empty",
                Some("prompt"),
            ));
        }
        let (budget, finish_at_budget) = token_budget(engine, prompt.len(), params.max_tokens)?;
        let key = sequence_key(engine, params.seed, &model.spec.name, &prompt);
        plans.push(SequencePlan::new(
            key,
            budget,
            finish_at_budget,
            &params.stops,
        ));
        prompts.push(prompt);
    }
    engine.refuse_by_fault()?;
    let sequences = u32::try_from(prompts.len()).unwrap_or(u32::MAX);
    let run = Run::reserve(engine, &model, sequences, arrival)?;
    Ok(Prepared {
        job: Job {
            run,
            prompts,
            plans: Arc::new(plans),
        },
        format: CompletionFormat {
            id: response_id("cmpl-", headers),
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
            .map(|(index, plan)| CompletionChoice {
                index: index as u32,
                text: plan.text(),
                logprobs: None,
                finish_reason: Some(plan.finish),
                stop_reason: plan.stop_reason.clone(),
            })
            .collect();
        Json(Completion {
            id: format.id,
            object: "text_completion",
            created: format.created,
            model: format.model,
            choices,
            usage: Usage::new(prompt_tokens, completion_tokens, cached_tokens),
            system_fingerprint: None,
        })
        .into_response()
    }
}

/// Completion chunks: one per token and choice (the last carrying `finish_reason`), then the
/// optional usage chunk.
struct CompletionFormat {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl ChunkFormat for CompletionFormat {
    fn prefilled(&self) -> Option<Bytes> {
        None
    }

    fn tokens(&self, tokens: &[TokenOut]) -> Vec<Bytes> {
        tokens
            .iter()
            .map(|token| {
                let (finish_reason, stop_reason) = match &token.finish {
                    Some((reason, stop)) => (Some(*reason), stop.clone()),
                    None => (None, None),
                };
                sse_event(&CompletionChunk {
                    id: &self.id,
                    object: "text_completion",
                    created: self.created,
                    model: &self.model,
                    choices: vec![CompletionChoice {
                        index: token.sequence,
                        text: token.text.clone(),
                        logprobs: None,
                        finish_reason,
                        stop_reason,
                    }],
                    usage: self.include_usage.then_some(None),
                })
            })
            .collect()
    }

    fn usage(&self, usage: Usage) -> Bytes {
        sse_event(&CompletionChunk {
            id: &self.id,
            object: "text_completion",
            created: self.created,
            model: &self.model,
            choices: Vec::new(),
            usage: Some(Some(usage)),
        })
    }
}
