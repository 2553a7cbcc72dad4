//! What the agent and the control plane say to each other (`/api/workers/*`), shared by both
//! sides so that they cannot drift apart.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/workers/register`: the agent proves it runs on the instance's VM with the
/// one-time bootstrap token the bootstrap put in its environment. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub instance_id: Uuid,
    pub bootstrap_token: String,
    /// The agent's version, recorded with the registration.
    #[serde(default)]
    pub agent_version: String,
}

/// The answer to a registration: the worker token, shown once. Later calls send it as
/// `Authorization: Bearer <worker_token>`. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub instance_id: Uuid,
    pub worker_token: String,
    /// The install attempt the registration is for.
    pub install_attempt: u32,
    /// Heartbeats older than this make the worker stale, in milliseconds.
    pub stale_after_ms: u64,
}

impl std::fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("instance_id", &self.instance_id)
            .field("bootstrap_token", &"<redacted>")
            .field("agent_version", &self.agent_version)
            .finish()
    }
}

impl std::fmt::Debug for RegisterResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterResponse")
            .field("instance_id", &self.instance_id)
            .field("worker_token", &"<redacted>")
            .field("install_attempt", &self.install_attempt)
            .field("stale_after_ms", &self.stale_after_ms)
            .finish()
    }
}

/// What the agent says about its engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    /// The engine answers but does not list the expected model yet.
    Starting,
    /// The engine lists the expected model.
    Ready,
    /// The engine does not answer.
    EngineDown,
}

impl WorkerStatus {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::EngineDown => "engine_down",
        }
    }
}

/// `POST /api/workers/heartbeat`, every heartbeat interval. Unknown fields are accepted (a newer
/// agent may report more than this control plane knows); wrong types are not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub instance_id: Uuid,
    pub status: WorkerStatus,
    #[serde(default)]
    pub agent_version: String,
    /// Models the engine lists on `/v1/models`.
    #[serde(default)]
    pub models: Vec<String>,
    /// `vllm:num_requests_waiting`, summed over the engine's models.
    #[serde(default)]
    pub waiting: u32,
    /// `vllm:num_requests_running`, summed over the engine's models.
    #[serde(default)]
    pub running: u32,
    /// `vllm:kv_cache_usage_perc` (or its older name `vllm:gpu_cache_usage_perc`), 0 to 1.
    #[serde(default)]
    pub kv_cache_usage: Option<f64>,
    #[serde(default)]
    pub gpus: Vec<GpuStats>,
    #[serde(default)]
    pub system: SystemStats,
}

/// One GPU as `nvidia-smi` reports it. Fields the driver reports as `[N/A]` are absent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GpuStats {
    pub index: u32,
    pub utilization_pct: Option<f64>,
    pub memory_used_mib: Option<f64>,
    pub memory_total_mib: Option<f64>,
    pub temperature_c: Option<f64>,
    pub power_w: Option<f64>,
}

/// The VM's load, memory and data disk. Absent values could not be read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SystemStats {
    pub cpus: Option<u32>,
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    /// The filesystem measured (the agent's state dir).
    pub disk_path: Option<String>,
    pub disk_total_bytes: Option<u64>,
    pub disk_available_bytes: Option<u64>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The instance's status as the control plane last recorded it.
    pub instance_status: String,
    /// Heartbeats older than this make the worker stale, in milliseconds.
    pub stale_after_ms: u64,
}

/// Problem `code` of a heartbeat whose token the control plane does not know (any more): the
/// agent registers again.
pub const UNKNOWN_WORKER_TOKEN: &str = "unknown-worker-token";

/// Prefix of worker tokens (`wk_` + 64 hex characters), so that a leaked one is recognisable.
pub const WORKER_TOKEN_PREFIX: &str = "wk_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show_in_debug_output() {
        let req = RegisterRequest {
            instance_id: Uuid::nil(),
            bootstrap_token: "bootstrap-secret".into(),
            agent_version: "1".into(),
        };
        let resp = RegisterResponse {
            instance_id: Uuid::nil(),
            worker_token: "wk_secret".into(),
            install_attempt: 1,
            stale_after_ms: 1,
        };
        assert!(!format!("{req:?}").contains("bootstrap-secret"));
        assert!(!format!("{resp:?}").contains("wk_secret"));
    }

    #[test]
    fn a_minimal_heartbeat_parses_and_statuses_use_their_wire_names() {
        let hb: Heartbeat = serde_json::from_value(serde_json::json!({
            "instance_id": Uuid::nil(), "status": "engine_down", "future_field": 1
        }))
        .unwrap();
        assert_eq!(hb.status, WorkerStatus::EngineDown);
        assert_eq!(hb.status.as_str(), "engine_down");
        assert!(hb.models.is_empty() && hb.gpus.is_empty());
        assert_eq!(hb.system, SystemStats::default());
    }
}
