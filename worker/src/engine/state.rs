//! The shared state of one engine: its models (each with a scheduler, metrics and prefix cache),
//! the fault in force and the request counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use super::config::{EngineConfig, ModelSpec, ModelTask};
use super::error::ApiError;
use super::fault::Fault;
use super::hash::{combine, splitmix64, unit_interval};
use super::metrics::ModelMetrics;
use super::prefix_cache::PrefixCache;
use super::scheduler::Scheduler;
use super::stats::{EngineStats, StatsCounters};

/// One served model.
#[derive(Debug)]
pub(crate) struct ModelRuntime {
    pub spec: ModelSpec,
    pub scheduler: Arc<Scheduler>,
    pub metrics: ModelMetrics,
    pub prefix_cache: Mutex<PrefixCache>,
}

/// Everything handlers share.
#[derive(Debug)]
pub(crate) struct Engine {
    pub config: EngineConfig,
    pub models: Vec<Arc<ModelRuntime>>,
    pub stats: StatsCounters,
    /// Unix seconds at start: `created` of the model cards.
    pub started_at: u64,
    fault: Mutex<Fault>,
    reject_draws: AtomicU64,
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl Engine {
    /// Builds the state of a validated configuration.
    pub(crate) fn new(config: EngineConfig) -> Self {
        let models = config
            .models()
            .into_iter()
            .map(|spec| {
                Arc::new(ModelRuntime {
                    spec,
                    scheduler: Scheduler::new(
                        config.max_num_seqs,
                        config.max_waiting,
                        config.kv_cache_tokens,
                    ),
                    metrics: ModelMetrics::default(),
                    prefix_cache: Mutex::new(PrefixCache::new(config.kv_cache_tokens)),
                })
            })
            .collect();
        Self {
            fault: Mutex::new(config.fault),
            config,
            models,
            stats: StatsCounters::default(),
            started_at: unix_now(),
            reject_draws: AtomicU64::new(0),
        }
    }

    pub(crate) fn fault(&self) -> Fault {
        *self
            .fault
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn set_fault(&self, fault: Fault) {
        *self
            .fault
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fault;
    }

    pub(crate) fn stats(&self) -> EngineStats {
        let (running, waiting) = self.models.iter().fold((0, 0), |(r, w), model| {
            (r + model.scheduler.running(), w + model.scheduler.waiting())
        });
        self.stats.snapshot(running, waiting, self.fault())
    }

    /// The model a request names, checked against the endpoint's task. Without a name, the
    /// first model serving the task answers (vLLM uses its first served name).
    pub(crate) fn resolve_model(
        &self,
        requested: Option<&str>,
        task: ModelTask,
        api: &'static str,
    ) -> Result<Arc<ModelRuntime>, ApiError> {
        let model = match requested {
            Some(name) => self
                .models
                .iter()
                .find(|model| model.spec.name == name)
                .ok_or_else(|| ApiError::ModelNotFound(name.to_owned()))?,
            None => self
                .models
                .iter()
                .find(|model| model.spec.task == task)
                .ok_or(ApiError::UnsupportedTask(api))?,
        };
        if model.spec.task != task {
            return Err(ApiError::UnsupportedTask(api));
        }
        Ok(model.clone())
    }

    /// Applies the request-refusing faults (`error_500`, `reject`) to an inference request.
    pub(crate) fn refuse_by_fault(&self) -> Result<(), ApiError> {
        match self.fault() {
            Fault::Error500 => Err(ApiError::InjectedFailure),
            Fault::Reject { ratio } => {
                let draw = self.reject_draws.fetch_add(1, Ordering::Relaxed);
                let sample = unit_interval(splitmix64(combine(self.config.seed, draw)));
                if sample < ratio {
                    Err(ApiError::Overloaded("request rejected (injected fault)"))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a refused inference request by its status.
    pub(crate) fn count_refusal(&self, error: &ApiError) {
        let counter = match error {
            ApiError::InjectedFailure => &self.stats.failed,
            ApiError::Overloaded(_) | ApiError::Dead => &self.stats.rejected,
            _ => &self.stats.invalid,
        };
        StatsCounters::bump(counter);
    }
}

/// A response id: `prefix` + the client's `X-Request-Id` when given (as vLLM does), else a
/// random UUID.
pub(crate) fn response_id(prefix: &str, headers: &HeaderMap) -> String {
    let supplied = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty() && value.len() <= 128);
    match supplied {
        Some(id) => format!("{prefix}{id}"),
        None => format!("{prefix}{}", uuid::Uuid::new_v4().simple()),
    }
}
