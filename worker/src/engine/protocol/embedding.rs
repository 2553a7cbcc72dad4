//! `/v1/embeddings` bodies.

use serde::{Deserialize, Serialize};

use super::{TextOrTokens, Usage};

/// `encoding_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

/// The request.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EmbeddingRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub input: TextOrTokens,
    #[serde(default)]
    pub encoding_format: Option<EncodingFormat>,
    /// Matryoshka-style truncation: at most the configured dimension.
    #[serde(default)]
    pub dimensions: Option<u32>,
}

/// One vector, as floats or as base64 of little-endian `f32`s.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum EmbeddingValue {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct EmbeddingData {
    pub index: u32,
    pub object: &'static str,
    pub embedding: EmbeddingValue,
}

/// The response.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EmbeddingResponse {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub data: Vec<EmbeddingData>,
    pub usage: Usage,
}
