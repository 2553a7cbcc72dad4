//! `/v1/chat/completions` bodies.

use serde::{Deserialize, Serialize};

use super::{SamplingFields, StopSpec, StreamOptions, Usage};
use crate::engine::error::ApiError;
use crate::engine::text::FinishReason;

/// The request (fields the mock does not use are ignored).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatCompletionRequest {
    /// Optional, as in vLLM: the first served model answers when absent.
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub n: Option<u32>,
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
    pub logprobs: Option<bool>,
}

impl ChatCompletionRequest {
    /// The shared sampling fields; `max_completion_tokens` wins over the deprecated
    /// `max_tokens`, as in OpenAI's API.
    pub(crate) fn sampling(&self) -> Result<SamplingFields, ApiError> {
        if self.logprobs == Some(true) {
            return Err(ApiError::bad_request(
                "logprobs are not supported by the mock engine",
                Some("logprobs"),
            ));
        }
        if self.messages.is_empty() {
            return Err(ApiError::bad_request(
                "messages must contain at least one message",
                Some("messages"),
            ));
        }
        Ok(SamplingFields {
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
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

/// One message.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
}

/// A message's content: text, or a list of parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

impl ChatMessage {
    /// The text of the message; only text parts are accepted (the mock is a text-only model).
    pub(crate) fn text(&self, index: usize) -> Result<String, ApiError> {
        match &self.content {
            None => Ok(String::new()),
            Some(MessageContent::Text(text)) => Ok(text.clone()),
            Some(MessageContent::Parts(parts)) => {
                let mut texts = Vec::with_capacity(parts.len());
                for (part_index, part) in parts.iter().enumerate() {
                    match (part.kind.as_str(), &part.text) {
                        ("text", Some(text)) => texts.push(text.as_str()),
                        _ => {
                            return Err(ApiError::bad_request(
                                format!(
                                    "content part of type `{}` is not supported: the mock engine is a text-only model",
                                    part.kind
                                ),
                                Some(&format!("messages[{index}].content[{part_index}]")),
                            ));
                        }
                    }
                }
                Ok(texts.join("\n"))
            }
        }
    }
}

/// The non-streaming response.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
    pub system_fingerprint: Option<String>,
    pub prompt_logprobs: Option<()>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<()>,
    pub finish_reason: FinishReason,
    pub stop_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AssistantMessage {
    pub role: &'static str,
    pub content: String,
    pub refusal: Option<String>,
    pub tool_calls: Vec<()>,
    pub reasoning_content: Option<String>,
}

/// One streamed chunk.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChatChunkChoice>,
    /// Absent unless `include_usage`; then `null` on every chunk but the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub logprobs: Option<()>,
    pub finish_reason: Option<FinishReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}
