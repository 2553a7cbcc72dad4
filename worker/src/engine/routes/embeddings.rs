//! `POST /v1/embeddings`: each input is one sequence that only prefills.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use tokio::time::Instant;

use super::inference_prelude;
use crate::engine::config::ModelTask;
use crate::engine::embedding::{to_base64, vector};
use crate::engine::error::ApiError;
use crate::engine::hash::{combine, fnv1a};
use crate::engine::prompt::Prompt;
use crate::engine::protocol::embedding::{
    EmbeddingData, EmbeddingRequest, EmbeddingResponse, EmbeddingValue, EncodingFormat,
};
use crate::engine::protocol::{InputItem, Usage, parse_body};
use crate::engine::run::Run;
use crate::engine::state::{Engine, response_id, unix_now};
use crate::engine::text::FinishReason;

pub(super) async fn embeddings(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrival = Instant::now();
    match prepare(&engine, &headers, &body, arrival) {
        Ok(prepared) => prepared.respond(&engine).await,
        Err(error) => {
            engine.count_refusal(&error);
            error.into_response()
        }
    }
}

struct Prepared {
    run: Run,
    prompts: Vec<Prompt>,
    model: String,
    id: String,
    dimensions: usize,
    encoding: EncodingFormat,
}

fn prepare(
    engine: &Arc<Engine>,
    headers: &HeaderMap,
    body: &[u8],
    arrival: Instant,
) -> Result<Prepared, ApiError> {
    inference_prelude(engine)?;
    let request: EmbeddingRequest = parse_body(body)?;
    let model = engine.resolve_model(request.model.as_deref(), ModelTask::Embed, "Embeddings")?;
    let full_dim = engine.config.embedding_dim;
    let dimensions = match request.dimensions {
        None => full_dim,
        Some(asked) if (1..=full_dim).contains(&(asked as usize)) => asked as usize,
        Some(asked) => {
            return Err(ApiError::bad_request(
                format!("dimensions must be between 1 and {full_dim}, got {asked}"),
                Some("dimensions"),
            ));
        }
    };
    let items = request.input.items();
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "input must not be empty",
            Some("input"),
        ));
    }
    let max_model_len = engine.config.max_model_len as usize;
    let mut prompts = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let prompt = match item {
            InputItem::Text(text) => Prompt::from_text(text),
            InputItem::Tokens(ids) => Prompt::from_token_ids(ids),
        };
        if prompt.len() == 0 {
            return Err(ApiError::bad_request(
                format!("input {index} is empty"),
                Some("input"),
            ));
        }
        if prompt.len() > max_model_len {
            return Err(ApiError::bad_request(
                format!(
                    "This model's maximum context length is {max_model_len} tokens. However, input {index} has {} tokens.",
                    prompt.len()
                ),
                Some("input"),
            ));
        }
        prompts.push(prompt);
    }
    engine.refuse_by_fault()?;
    let sequences = u32::try_from(prompts.len()).unwrap_or(u32::MAX);
    let run = Run::reserve(engine, &model, sequences, arrival)?;
    Ok(Prepared {
        run,
        prompts,
        model: model.spec.name.clone(),
        id: response_id("embd-", headers),
        dimensions,
        encoding: request.encoding_format.unwrap_or_default(),
    })
}

impl Prepared {
    async fn respond(mut self, engine: &Engine) -> Response {
        if self.run.admit().await.is_err() {
            self.run.fail();
            return ApiError::Overloaded("the engine cannot schedule the request").into_response();
        }
        self.run.prefill(&self.prompts).await;
        let model_key = combine(engine.config.seed, fnv1a(self.model.as_bytes()));
        let data = self
            .prompts
            .iter()
            .enumerate()
            .map(|(index, prompt)| {
                let values = vector(combine(model_key, prompt.fingerprint()), self.dimensions);
                EmbeddingData {
                    index: index as u32,
                    object: "embedding",
                    embedding: match self.encoding {
                        EncodingFormat::Float => EmbeddingValue::Float(values),
                        EncodingFormat::Base64 => EmbeddingValue::Base64(to_base64(&values)),
                    },
                }
            })
            .collect();
        let prompt_tokens: u64 = self.prompts.iter().map(|p| p.len() as u64).sum();
        self.run
            .finish(std::iter::repeat_n(FinishReason::Stop, self.prompts.len()));
        Json(EmbeddingResponse {
            id: self.id,
            object: "list",
            created: unix_now(),
            model: self.model,
            data,
            usage: Usage {
                prompt_tokens,
                total_tokens: prompt_tokens,
                completion_tokens: 0,
                prompt_tokens_details: None,
            },
        })
        .into_response()
    }
}
