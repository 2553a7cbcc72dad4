//! The vocabulary of installing and starting vLLM on an instance: the SSH bootstrap phases and
//! the readiness checks, and how the instance records them.

use serde::{Deserialize, Serialize};

use super::progress;

/// The bootstrap script's phases, in the order it announces them (`::phase::NAME`).
pub const INSTALL_PHASES: [&str; 10] = [
    "start",
    "mount_data_volume",
    "docker_install",
    "docker_start",
    "nvidia_toolkit",
    "agent_install",
    "docker_pull",
    "vllm_start",
    "agent_start",
    "done",
];

/// Whether `name` is one of [`INSTALL_PHASES`].
pub fn is_install_phase(name: &str) -> bool {
    INSTALL_PHASES.contains(&name)
}

/// The largest log chunk one `RecordPhaseLogged` may carry, in bytes (UTF-8). Bigger output is
/// sent in several chunks, so no single event grows without bound.
pub const MAX_LOG_CHUNK_BYTES: usize = 8192;

/// Which output stream of the bootstrap script a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// Where an install phase is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    Running,
    Completed,
    Failed,
}

impl PhaseStatus {
    /// The stored and shown name (`running`, `completed`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// One phase of the current install attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub name: String,
    pub status: PhaseStatus,
    /// Set when the phase finished.
    pub duration_ms: Option<u64>,
    /// The script's exit status when the phase finished (absent when it was killed or timed
    /// out without one).
    pub exit_code: Option<i32>,
    /// Bytes of output recorded for the phase, both streams together. The chunks themselves
    /// live in the `PhaseLogged` events, not in the state.
    pub log_bytes: u64,
}

/// The install attempts of an instance and the phases of the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallProgress {
    /// 1 for the first install, plus one per reinstall.
    pub attempt: u32,
    /// The phases of the current attempt, in the order they started.
    pub phases: Vec<PhaseRecord>,
    /// Whether the current attempt completed (`InstallCompleted`).
    #[serde(default)]
    pub completed: bool,
}

impl InstallProgress {
    /// The first attempt, nothing run yet.
    pub fn first() -> Self {
        Self {
            attempt: 1,
            phases: Vec::new(),
            completed: false,
        }
    }

    /// The record of phase `name` in the current attempt.
    pub fn phase(&self, name: &str) -> Option<&PhaseRecord> {
        self.phases.iter().find(|p| p.name == name)
    }

    pub(super) fn phase_mut(&mut self, name: &str) -> Option<&mut PhaseRecord> {
        self.phases.iter_mut().find(|p| p.name == name)
    }
}

/// A readiness check run against vLLM once installed, in the order they are expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessCheck {
    /// vLLM answers HTTP.
    VllmHttpOk,
    /// `/v1/models` lists the expected model.
    ModelLoaded,
    /// One tiny completion went through.
    VllmWarmup,
    /// The periodic health check, also run once ready.
    HealthCheck,
}

impl ReadinessCheck {
    /// Every check, in the order they are run.
    pub const ALL: [Self; 4] = [
        Self::VllmHttpOk,
        Self::ModelLoaded,
        Self::VllmWarmup,
        Self::HealthCheck,
    ];

    /// The predecessor's action name, shown in timelines (`WORKER_VLLM_HTTP_OK`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VllmHttpOk => "WORKER_VLLM_HTTP_OK",
            Self::ModelLoaded => "WORKER_MODEL_LOADED",
            Self::VllmWarmup => "WORKER_VLLM_WARMUP",
            Self::HealthCheck => "HEALTH_CHECK",
        }
    }

    /// The progress reached when this check passes.
    pub fn progress(self) -> u8 {
        match self {
            Self::VllmHttpOk => progress::VLLM_HTTP_OK,
            Self::ModelLoaded => progress::MODEL_LOADED,
            Self::VllmWarmup => progress::WARMED_UP,
            Self::HealthCheck => progress::HEALTH_CHECKED,
        }
    }
}

/// The latest outcome of one readiness check in the current attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessRecord {
    pub check: ReadinessCheck,
    pub ok: bool,
    pub duration_ms: u64,
    pub detail: String,
}
