//! The model catalog: which open models the platform can serve, and what they need.

mod aggregate;
mod commands;
mod decide;
mod errors;
mod events;
pub mod seed;
mod sizing;

pub use aggregate::{Model, ModelState};
pub use commands::{ModelCommand, RegisterModel, UpdateModel};
pub use decide::decide;
pub use errors::ModelError;
pub use events::{ModelChanges, ModelEvent, ModelRegistered};
pub use sizing::recommended_data_volume_gb;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a model is served for; decides which `/v1` endpoints it answers later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelTask {
    /// Chat and text completions.
    #[default]
    Generate,
    /// Embeddings.
    Embed,
}

/// Identifier of a model aggregate.
///
/// Derived from the Hugging Face repository id (UUID v5 of its lowercase form), so registering
/// the same repository twice lands on the same aggregate and is refused by the aggregate itself,
/// with optimistic concurrency closing the race, instead of needing a uniqueness table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModelId(pub Uuid);

const MODEL_NAMESPACE: Uuid = Uuid::from_u128(0x6d0d_e1c4_7a1f_4c53_9f0e_3b8a_51a2_c0de);

impl ModelId {
    pub fn for_repo(hf_repo_id: &str) -> Self {
        Self(Uuid::new_v5(
            &MODEL_NAMESPACE,
            hf_repo_id.trim().to_ascii_lowercase().as_bytes(),
        ))
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Checks a Hugging Face repository id: `owner/name`, each part 1 to 96 characters of
/// letters, digits, `-`, `_` and `.`, not starting or ending with `-` or `.`.
pub fn validate_repo_id(value: &str) -> Result<(), ModelError> {
    let invalid = |reason: &str| ModelError::InvalidRepoId {
        value: value.chars().take(200).collect(),
        reason: reason.to_string(),
    };
    let mut parts = value.split('/');
    let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("expected the form owner/name"));
    };
    for part in [owner, name] {
        if part.is_empty() || part.len() > 96 {
            return Err(invalid("each part must have 1 to 96 characters"));
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "only letters, digits, '-', '_' and '.' are allowed",
            ));
        }
        if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
            return Err(invalid("a part may not start or end with '-' or '.'"));
        }
    }
    Ok(())
}
