//! Configuration of one mock engine.
//!
//! [`EngineConfig`] is a `clap::Args` so it can be flattened into any command; each flag has an
//! `INFERPLANE_ENGINE_*` environment twin. Where vLLM has an equivalent flag the name is the
//! same (`--served-model-name`, `--max-model-len`, `--max-num-seqs`, `--seed`), so a bootstrap
//! script can start the mock with the arguments it would give vLLM.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::fault::{Fault, FaultError};

/// Model served when no name is configured.
pub const DEFAULT_MODEL: &str = "mock-llm";
/// Context window, in tokens.
pub const DEFAULT_MAX_MODEL_LEN: u32 = 4096;
/// Prefill time before the first token, in milliseconds.
pub const DEFAULT_TTFT_MS: u64 = 50;
/// Time between two tokens, in milliseconds.
pub const DEFAULT_ITL_MS: u64 = 10;
/// Sequences generating at once (vLLM's `--max-num-seqs`).
pub const DEFAULT_MAX_NUM_SEQS: u32 = 16;
/// Sequences allowed to wait for a slot before requests are refused with 503.
pub const DEFAULT_MAX_WAITING: u32 = 256;
/// Answer length when the client sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 16;
/// Length of embedding vectors.
pub const DEFAULT_EMBEDDING_DIM: usize = 1024;
/// Simulated KV-cache capacity, in tokens.
pub const DEFAULT_KV_CACHE_TOKENS: u64 = 65_536;

/// What a served model answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelTask {
    /// `/v1/chat/completions` and `/v1/completions`.
    Generate,
    /// `/v1/embeddings`.
    Embed,
}

/// A served model and its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: String,
    pub task: ModelTask,
}

/// Everything that shapes one mock engine.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct EngineConfig {
    /// Names of the served models (comma-separated or repeated). Each is a generation model
    /// unless also listed in --embedding-model.
    #[arg(
        long = "served-model-name",
        env = "INFERPLANE_ENGINE_SERVED_MODEL_NAMES",
        value_delimiter = ',',
        num_args = 1..,
        default_value = DEFAULT_MODEL
    )]
    pub served_model_names: Vec<String>,

    /// Models that answer /v1/embeddings instead of chat and completions. A name absent from
    /// --served-model-name is served in addition.
    #[arg(
        long = "embedding-model",
        env = "INFERPLANE_ENGINE_EMBEDDING_MODELS",
        value_delimiter = ',',
        num_args = 1..
    )]
    pub embedding_models: Vec<String>,

    /// Context window in tokens: prompt + max_tokens beyond it is a 400, as in vLLM.
    #[arg(long, env = "INFERPLANE_ENGINE_MAX_MODEL_LEN", default_value_t = DEFAULT_MAX_MODEL_LEN)]
    pub max_model_len: u32,

    /// Time to first token once a request is scheduled (the prefill), in milliseconds.
    #[arg(long, env = "INFERPLANE_ENGINE_TTFT_MS", default_value_t = DEFAULT_TTFT_MS)]
    pub ttft_ms: u64,

    /// Inter-token latency, in milliseconds.
    #[arg(long, env = "INFERPLANE_ENGINE_ITL_MS", default_value_t = DEFAULT_ITL_MS)]
    pub itl_ms: u64,

    /// Sequences generating at once per model; more wait in a queue
    /// (vllm:num_requests_waiting).
    #[arg(long, env = "INFERPLANE_ENGINE_MAX_NUM_SEQS", default_value_t = DEFAULT_MAX_NUM_SEQS)]
    pub max_num_seqs: u32,

    /// Sequences allowed to wait per model; beyond it requests are refused with 503.
    #[arg(long, env = "INFERPLANE_ENGINE_MAX_WAITING", default_value_t = DEFAULT_MAX_WAITING)]
    pub max_waiting: u32,

    /// Answer length (ending with finish_reason "stop", like an end-of-sequence token) when the
    /// client sets neither max_tokens nor max_completion_tokens.
    #[arg(
        long,
        env = "INFERPLANE_ENGINE_DEFAULT_MAX_TOKENS",
        default_value_t = DEFAULT_MAX_TOKENS
    )]
    pub default_max_tokens: u32,

    /// Length of the vectors returned by embedding models.
    #[arg(long, env = "INFERPLANE_ENGINE_EMBEDDING_DIM", default_value_t = DEFAULT_EMBEDDING_DIM)]
    pub embedding_dim: usize,

    /// Simulated KV-cache capacity in tokens (drives vllm:kv_cache_usage_perc and the size of
    /// the simulated prefix cache).
    #[arg(
        long,
        env = "INFERPLANE_ENGINE_KV_CACHE_TOKENS",
        default_value_t = DEFAULT_KV_CACHE_TOKENS
    )]
    pub kv_cache_tokens: u64,

    /// Seed mixed into every generated text and embedding.
    #[arg(long, env = "INFERPLANE_ENGINE_SEED", default_value_t = 0)]
    pub seed: u64,

    /// Fault at start: none, slow[:FACTOR], error_500, die_mid_stream[:TOKENS], dead,
    /// reject:RATIO.
    #[arg(long, env = "INFERPLANE_ENGINE_FAULT", default_value = "none")]
    pub fault: Fault,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            served_model_names: vec![DEFAULT_MODEL.to_owned()],
            embedding_models: Vec::new(),
            max_model_len: DEFAULT_MAX_MODEL_LEN,
            ttft_ms: DEFAULT_TTFT_MS,
            itl_ms: DEFAULT_ITL_MS,
            max_num_seqs: DEFAULT_MAX_NUM_SEQS,
            max_waiting: DEFAULT_MAX_WAITING,
            default_max_tokens: DEFAULT_MAX_TOKENS,
            embedding_dim: DEFAULT_EMBEDDING_DIM,
            kv_cache_tokens: DEFAULT_KV_CACHE_TOKENS,
            seed: 0,
            fault: Fault::None,
        }
    }
}

/// A configuration the engine refuses to start with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("at least one served model name is required")]
    NoModel,
    #[error("model names must not be empty")]
    EmptyModelName,
    #[error("model `{0}` is listed twice")]
    DuplicateModel(String),
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange {
        field: &'static str,
        min: u64,
        max: u64,
        value: u64,
    },
    #[error(transparent)]
    Fault(#[from] FaultError),
}

fn check_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            min,
            max,
            value,
        })
    }
}

impl EngineConfig {
    /// A configuration serving `names` as generation models, with default settings otherwise.
    pub fn with_models<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            served_model_names: names.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Checks the settings; [`serve`](super::serve) refuses a configuration that fails this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let models = self.models();
        if models.is_empty() {
            return Err(ConfigError::NoModel);
        }
        let mut seen = HashSet::new();
        for name in &self.served_model_names {
            if name.trim().is_empty() {
                return Err(ConfigError::EmptyModelName);
            }
            if !seen.insert(name.as_str()) {
                return Err(ConfigError::DuplicateModel(name.clone()));
            }
        }
        let mut seen_embed = HashSet::new();
        for name in &self.embedding_models {
            if name.trim().is_empty() {
                return Err(ConfigError::EmptyModelName);
            }
            if !seen_embed.insert(name.as_str()) {
                return Err(ConfigError::DuplicateModel(name.clone()));
            }
        }
        check_range("max_model_len", self.max_model_len.into(), 1, 1 << 20)?;
        // Tokio semaphores hold at most `usize::MAX >> 3` permits; far below that is plenty.
        check_range("max_num_seqs", self.max_num_seqs.into(), 1, 1 << 20)?;
        check_range("max_waiting", self.max_waiting.into(), 0, 1 << 24)?;
        check_range(
            "default_max_tokens",
            self.default_max_tokens.into(),
            1,
            1 << 24,
        )?;
        check_range("embedding_dim", self.embedding_dim as u64, 1, 1 << 16)?;
        check_range("kv_cache_tokens", self.kv_cache_tokens, 1, 1 << 40)?;
        check_range("ttft_ms", self.ttft_ms, 0, 3_600_000)?;
        check_range("itl_ms", self.itl_ms, 0, 3_600_000)?;
        self.fault.validate()?;
        Ok(())
    }

    /// The served models, in order: the served names first, then embedding-only names.
    pub fn models(&self) -> Vec<ModelSpec> {
        let task_of = |name: &str| {
            if self.embedding_models.iter().any(|e| e == name) {
                ModelTask::Embed
            } else {
                ModelTask::Generate
            }
        };
        let mut specs: Vec<ModelSpec> = self
            .served_model_names
            .iter()
            .map(|name| ModelSpec {
                name: name.clone(),
                task: task_of(name),
            })
            .collect();
        for name in &self.embedding_models {
            if !self.served_model_names.contains(name) {
                specs.push(ModelSpec {
                    name: name.clone(),
                    task: ModelTask::Embed,
                });
            }
        }
        specs
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        engine: EngineConfig,
    }

    #[test]
    fn clap_defaults_match_default() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["engine"])?;
        assert_eq!(cli.engine, EngineConfig::default());
        Ok(())
    }

    #[test]
    fn flags_parse_lists_and_faults() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from([
            "engine",
            "--served-model-name",
            "llama,qwen",
            "--embedding-model",
            "bge",
            "--fault",
            "slow:3",
            "--max-num-seqs",
            "2",
        ])?;
        let models = cli.engine.models();
        assert_eq!(
            models,
            vec![
                ModelSpec {
                    name: "llama".into(),
                    task: ModelTask::Generate
                },
                ModelSpec {
                    name: "qwen".into(),
                    task: ModelTask::Generate
                },
                ModelSpec {
                    name: "bge".into(),
                    task: ModelTask::Embed
                },
            ]
        );
        assert_eq!(cli.engine.fault, Fault::Slow { factor: 3.0 });
        assert_eq!(cli.engine.max_num_seqs, 2);
        assert!(Cli::try_parse_from(["engine", "--fault", "explode"]).is_err());
        Ok(())
    }

    #[test]
    fn embedding_flag_turns_a_served_name_into_an_embedding_model() {
        let config = EngineConfig {
            served_model_names: vec!["bge".into()],
            embedding_models: vec!["bge".into()],
            ..EngineConfig::default()
        };
        assert_eq!(
            config.models(),
            vec![ModelSpec {
                name: "bge".into(),
                task: ModelTask::Embed
            }]
        );
    }

    #[test]
    fn validation_refuses_nonsense() {
        assert_eq!(EngineConfig::default().validate(), Ok(()));
        let dup = EngineConfig::with_models(["a", "a"]);
        assert_eq!(dup.validate(), Err(ConfigError::DuplicateModel("a".into())));
        let none = EngineConfig::with_models(Vec::<String>::new());
        assert_eq!(none.validate(), Err(ConfigError::NoModel));
        let zero = EngineConfig {
            max_num_seqs: 0,
            ..EngineConfig::default()
        };
        assert!(matches!(
            zero.validate(),
            Err(ConfigError::OutOfRange {
                field: "max_num_seqs",
                ..
            })
        ));
    }
}
