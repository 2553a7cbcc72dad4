/// Why the catalog refused a command. Each variant is a rule, asserted by variant in tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("a model with Hugging Face repository id {hf_repo_id} is already registered")]
    AlreadyRegistered { hf_repo_id: String },
    #[error("no such model")]
    NotRegistered,
    #[error("invalid Hugging Face repository id {value:?}: {reason}")]
    InvalidRepoId { value: String, reason: String },
    #[error("display_name must not be empty")]
    EmptyDisplayName,
    #[error("display_name must be at most 200 characters")]
    DisplayNameTooLong,
    #[error("parameter_count must be greater than zero (got {value})")]
    NonPositiveParameterCount { value: i64 },
    #[error("required_vram_gb must be greater than zero (got {value})")]
    NonPositiveVram { value: i64 },
    #[error("required_vram_gb must be at most 100000 (got {value})")]
    VramTooLarge { value: i64 },
    #[error("context_length must be greater than zero (got {value})")]
    NonPositiveContextLength { value: i64 },
    #[error("context_length must be at most 16777216 (got {value})")]
    ContextLengthTooLarge { value: i64 },
    #[error("data_volume_gb must be between 10 and 100000 (got {value})")]
    DataVolumeOutOfRange { value: i64 },
}

impl ModelError {
    /// Stable machine-readable code, used as the problem type on the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyRegistered { .. } => "model-already-registered",
            Self::NotRegistered => "model-not-found",
            Self::InvalidRepoId { .. } => "invalid-repo-id",
            Self::EmptyDisplayName | Self::DisplayNameTooLong => "invalid-display-name",
            Self::NonPositiveParameterCount { .. } => "invalid-parameter-count",
            Self::NonPositiveVram { .. } | Self::VramTooLarge { .. } => "invalid-vram",
            Self::NonPositiveContextLength { .. } | Self::ContextLengthTooLarge { .. } => {
                "invalid-context-length"
            }
            Self::DataVolumeOutOfRange { .. } => "invalid-data-volume",
        }
    }
}
