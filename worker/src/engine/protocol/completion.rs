//! `/v1/completions` bodies.

use serde::{Deserialize, Serialize};

use super::{SamplingFields, StopSpec, StreamOptions, TextOrTokens, Usage};
use crate::engine::error::ApiError;
use crate::engine::text::FinishReason;

/// The request (fields the mock does not use are ignored).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CompletionRequest {
    /// Optional, as in vLLM: the first served model answers when absent.
    #[serde(default)]
    pub model: Option<String>,
    pub prompt: TextOrTokens,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub best_of: Option<u32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub stop: Option<StopSpec>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub echo: Option<bool>,
    #[serde(default)]
    pub logprobs: Option<u32>,
    #[serde(default)]
    pub suffix: Option<String>,
}

impl CompletionRequest {
    /// The shared sampling fields, after refusing the options the mock does not simulate.
    pub(crate) fn sampling(&self) -> Result<SamplingFields, ApiError> {
        let unsupported = |param: &str| {
            Err(ApiError::bad_request(
                format!("`{param}` is not supported by the mock engine"),
                Some(param),
            ))
        };
        if self.echo == Some(true) {
            return unsupported("echo");
        }
        if self.logprobs.is_some() {
            return unsupported("logprobs");
        }
        if self.suffix.is_some() {
            return unsupported("suffix");
        }
        if let Some(best_of) = self.best_of
            && best_of != 1
        {
            return unsupported("best_of");
        }
        Ok(SamplingFields {
            max_tokens: self.max_tokens,
            n: self.n,
            stream: self.stream,
            stream_options: self.stream_options.clone(),
            stop: self.stop.clone(),
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
        })
    }
}

/// The non-streaming response.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Completion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    pub usage: Usage,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub logprobs: Option<()>,
    pub finish_reason: Option<FinishReason>,
    pub stop_reason: Option<String>,
}

/// One streamed chunk.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CompletionChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<CompletionChoice>,
    /// Absent unless `include_usage`; then `null` on every chunk but the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}
