//! The OpenAI/vLLM wire format: request bodies the engine accepts and response bodies it
//! sends. Requests ignore unknown fields (vLLM only warns about them); responses carry the
//! fields vLLM sends, so clients written against vLLM parse them unchanged.

pub(crate) mod chat;
pub(crate) mod completion;
pub(crate) mod embedding;
pub(crate) mod models;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// Parses a JSON request body; errors name the offending field in `param`.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(format!("Invalid JSON in request body: {inner}"), None);
        }
        let param = (path != "." && path != "?").then_some(path);
        let message = match &param {
            Some(path) => format!("Invalid request body at `{path}`: {inner}"),
            None => format!("Invalid request body: {inner}"),
        };
        ApiError::BadRequest { message, param }
    })?;
    deserializer
        .end()
        .map_err(|err| ApiError::bad_request(format!("Invalid request body: {err}"), None))?;
    Ok(parsed)
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum StopSpec {
    One(String),
    Many(Vec<String>),
}

impl StopSpec {
    /// The non-empty stop strings.
    pub(crate) fn into_strings(self) -> Vec<String> {
        let all = match self {
            Self::One(stop) => vec![stop],
            Self::Many(stops) => stops,
        };
        all.into_iter().filter(|stop| !stop.is_empty()).collect()
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// A prompt or embedding input: text, texts, token ids, or lists of token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum TextOrTokens {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

/// One element of a [`TextOrTokens`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum InputItem<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
}

impl TextOrTokens {
    /// The individual inputs, in order.
    pub(crate) fn items(&self) -> Vec<InputItem<'_>> {
        match self {
            Self::Text(text) => vec![InputItem::Text(text)],
            Self::Texts(texts) => texts.iter().map(|t| InputItem::Text(t)).collect(),
            Self::Tokens(tokens) => vec![InputItem::Tokens(tokens)],
            Self::TokenLists(lists) => lists.iter().map(|l| InputItem::Tokens(l)).collect(),
        }
    }
}

/// Sampling fields shared by chat and completions, before validation.
#[derive(Debug, Clone, Default)]
pub(crate) struct SamplingFields {
    pub max_tokens: Option<u32>,
    pub n: Option<u32>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub stop: Option<StopSpec>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<i64>,
}

/// Validated generation parameters.
#[derive(Debug, Clone)]
pub(crate) struct GenerationParams {
    /// `max_tokens` as asked by the client (`None`: the model answers at its natural length).
    pub max_tokens: Option<u32>,
    pub stops: Vec<String>,
    pub seed: Option<i64>,
    pub stream: bool,
    pub include_usage: bool,
}

impl SamplingFields {
    /// Checks the fields the way vLLM does.
    pub(crate) fn validate(self) -> Result<GenerationParams, ApiError> {
        if let Some(n) = self.n
            && n != 1
        {
            return Err(ApiError::bad_request(
                format!("n must be 1 on the mock engine, got {n}"),
                Some("n"),
            ));
        }
        if self.max_tokens == Some(0) {
            return Err(ApiError::bad_request(
                "max_tokens must be at least 1, got 0.",
                Some("max_tokens"),
            ));
        }
        if let Some(temperature) = self.temperature
            && !(temperature.is_finite() && temperature >= 0.0)
        {
            return Err(ApiError::bad_request(
                format!("temperature must be non-negative, got {temperature}."),
                Some("temperature"),
            ));
        }
        if let Some(top_p) = self.top_p
            && !(top_p > 0.0 && top_p <= 1.0)
        {
            return Err(ApiError::bad_request(
                format!("top_p must be in (0, 1], got {top_p}."),
                Some("top_p"),
            ));
        }
        let stream = self.stream.unwrap_or(false);
        if self.stream_options.is_some() && !stream {
            return Err(ApiError::bad_request(
                "Stream options can only be defined when `stream=True`.",
                Some("stream_options"),
            ));
        }
        Ok(GenerationParams {
            max_tokens: self.max_tokens,
            stops: self.stop.map(StopSpec::into_strings).unwrap_or_default(),
            seed: self.seed,
            stream,
            include_usage: self
                .stream_options
                .and_then(|options| options.include_usage)
                .unwrap_or(false),
        })
    }
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct PromptTokensDetails {
    pub cached_tokens: u64,
}

/// `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
    pub completion_tokens: u64,
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

impl Usage {
    pub(crate) fn new(prompt_tokens: u64, completion_tokens: u64, cached_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            completion_tokens,
            prompt_tokens_details: Some(PromptTokensDetails { cached_tokens }),
        }
    }
}

/// An SSE event carrying `payload` as JSON.
pub(crate) fn sse_event<T: Serialize>(payload: &T) -> bytes::Bytes {
    // Serialising these plain structs cannot fail; an empty object keeps the stream well-formed
    // should it ever.
    let json = serde_json::to_vec(payload).unwrap_or_else(|_| b"{}".to_vec());
    let mut event = Vec::with_capacity(json.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(&json);
    event.extend_from_slice(b"\n\n");
    event.into()
}

/// The last SSE event of a stream.
pub(crate) const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[allow(dead_code)]
        max_tokens: u32,
    }

    #[test]
    fn parse_errors_name_the_field() {
        let err = parse_body::<Probe>(br#"{"max_tokens": "many"}"#).err();
        assert!(
            matches!(err, Some(ApiError::BadRequest { param: Some(p), .. }) if p == "max_tokens")
        );
        let err = parse_body::<Probe>(b"{not json").err();
        assert!(matches!(
            err,
            Some(ApiError::BadRequest { param: None, .. })
        ));
        assert!(parse_body::<Probe>(br#"{"max_tokens": 1} trailing"#).is_err());
    }

    #[test]
    fn sampling_validation_mirrors_vllm() {
        let ok = SamplingFields {
            stop: Some(StopSpec::Many(vec!["".into(), "x".into()])),
            ..SamplingFields::default()
        };
        let params = ok.validate().ok();
        assert_eq!(params.map(|p| p.stops), Some(vec!["x".to_owned()]));
        for bad in [
            SamplingFields {
                n: Some(2),
                ..SamplingFields::default()
            },
            SamplingFields {
                temperature: Some(-1.0),
                ..SamplingFields::default()
            },
            SamplingFields {
                top_p: Some(0.0),
                ..SamplingFields::default()
            },
            SamplingFields {
                max_tokens: Some(0),
                ..SamplingFields::default()
            },
            SamplingFields {
                stream_options: Some(StreamOptions::default()),
                ..SamplingFields::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }
}
