use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{FailureCode, LogStream, ReadinessCheck, VllmMode};

/// Commands on an instance. `Request` comes from the API, operator actions (`Terminate`,
/// `Reinstall`, `Drain`, `Archive`) from the API too; the `Record…`, `Mark…` and `Fail`
/// commands come from the process managers and report an outcome they observed.
///
/// Every outcome command is idempotent: sending the same fact again yields no event.
/// `RecordPhaseLogged` is the exception: a log chunk is a stream, not a fact about the
/// instance, and the same bytes twice are legitimately two chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InstanceCommand {
    Request(RequestInstance),
    /// Begins provisioning (from `requested`), or a retry with a higher attempt number (in
    /// `provisioning`). Attempts count from 1; an attempt already recorded is a no-op.
    StartProvisioning {
        zone: String,
        attempt: u32,
    },
    /// Moves the request to another of its allowed zones, before any server exists.
    ChangeZone {
        to: String,
        reason: String,
    },
    RecordVolumeCreated {
        volume_id: String,
        zone: String,
        size_gb: u32,
    },
    RecordServerCreated {
        server_id: String,
        zone: String,
        commercial_type: String,
    },
    RecordVolumeAttached {
        volume_id: String,
    },
    RecordPowerOnRequested {
        attempt: u32,
    },
    /// The provider could not allocate the GPU for power-on attempt `attempt`: the server fell
    /// back to stopped.
    RecordAllocationFailed {
        attempt: u32,
    },
    RecordServerRunning {
        public_ip: String,
    },
    /// SSH answered, presenting this host key fingerprint (`SHA256:…`).
    RecordSshAccessible {
        host_key_fingerprint: String,
    },
    RecordPhaseStarted {
        name: String,
    },
    RecordPhaseLogged {
        name: String,
        stream: LogStream,
        chunk: String,
    },
    RecordPhaseCompleted {
        name: String,
        duration_ms: u64,
        exit_code: i32,
    },
    RecordPhaseFailed {
        name: String,
        duration_ms: u64,
        exit_code: Option<i32>,
        message: String,
    },
    RecordInstallCompleted,
    RecordReadinessCheck {
        check: ReadinessCheck,
        ok: bool,
        duration_ms: u64,
        detail: String,
    },
    MarkReady,
    MarkUnavailable {
        reason: String,
    },
    /// The watchdog found the server stopped although nobody asked for it.
    RecordProviderServerStopped,
    /// The watchdog or the reconciler found the server gone at the provider.
    RecordProviderServerDeleted,
    Fail {
        code: FailureCode,
        message: String,
    },
    Terminate {
        reason: Option<String>,
    },
    RecordPowerOffRequested,
    RecordServerDeleted {
        server_id: String,
    },
    RecordVolumeDetached {
        volume_id: String,
    },
    RecordVolumeDeleted {
        volume_id: String,
    },
    ConfirmTerminated,
    Reinstall,
    Drain,
    Archive,
    /// A worker agent registered for install attempt `attempt`, presenting a valid bootstrap
    /// token (checked by the API, which derives it). `from_ip` is the address the agent
    /// connected from, or `None` when the operator disabled the address check.
    RegisterWorker {
        attempt: u32,
        /// SHA-256 (hex) of the worker token issued to the agent; the token itself is never
        /// recorded.
        token_hash: String,
        agent_version: String,
        from_ip: Option<String>,
    },
    /// The worker's health as its heartbeats (or their absence) show it.
    RecordWorkerHealth {
        healthy: bool,
        reason: String,
    },
    /// The models the worker's engine serves, as its heartbeats list them.
    RecordWorkerModels {
        models: Vec<String>,
    },
}

impl InstanceCommand {
    /// The command's name as serialized (`record_server_created`), for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Request(_) => "request",
            Self::StartProvisioning { .. } => "start_provisioning",
            Self::ChangeZone { .. } => "change_zone",
            Self::RecordVolumeCreated { .. } => "record_volume_created",
            Self::RecordServerCreated { .. } => "record_server_created",
            Self::RecordVolumeAttached { .. } => "record_volume_attached",
            Self::RecordPowerOnRequested { .. } => "record_power_on_requested",
            Self::RecordAllocationFailed { .. } => "record_allocation_failed",
            Self::RecordServerRunning { .. } => "record_server_running",
            Self::RecordSshAccessible { .. } => "record_ssh_accessible",
            Self::RecordPhaseStarted { .. } => "record_phase_started",
            Self::RecordPhaseLogged { .. } => "record_phase_logged",
            Self::RecordPhaseCompleted { .. } => "record_phase_completed",
            Self::RecordPhaseFailed { .. } => "record_phase_failed",
            Self::RecordInstallCompleted => "record_install_completed",
            Self::RecordReadinessCheck { .. } => "record_readiness_check",
            Self::MarkReady => "mark_ready",
            Self::MarkUnavailable { .. } => "mark_unavailable",
            Self::RecordProviderServerStopped => "record_provider_server_stopped",
            Self::RecordProviderServerDeleted => "record_provider_server_deleted",
            Self::Fail { .. } => "fail",
            Self::Terminate { .. } => "terminate",
            Self::RecordPowerOffRequested => "record_power_off_requested",
            Self::RecordServerDeleted { .. } => "record_server_deleted",
            Self::RecordVolumeDetached { .. } => "record_volume_detached",
            Self::RecordVolumeDeleted { .. } => "record_volume_deleted",
            Self::ConfirmTerminated => "confirm_terminated",
            Self::Reinstall => "reinstall",
            Self::Drain => "drain",
            Self::Archive => "archive",
            Self::RegisterWorker { .. } => "register_worker",
            Self::RecordWorkerHealth { .. } => "record_worker_health",
            Self::RecordWorkerModels { .. } => "record_worker_models",
        }
    }
}

/// A new instance. The API looks the model and the instance type up in the catalog and passes
/// what it found as facts; the aggregate decides whether they allow the request. The provider
/// is Scaleway, the only one the catalog knows; it is recorded in `InstanceRequested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestInstance {
    pub model_id: Uuid,
    /// The model's Hugging Face repository id (`owner/name`).
    pub model_repo: String,
    pub model_required_vram_gb: u32,
    pub model_active: bool,
    /// The requested zone code (`fr-par-2`).
    pub zone: String,
    /// Zones the instance may fall back to, in order of preference; empty means only `zone`.
    /// The requested zone always comes first, whether listed or not.
    #[serde(default)]
    pub allowed_zones: Vec<String>,
    /// The instance type code (`L4-1-24G`).
    pub instance_type: String,
    pub gpu_count: u32,
    pub vram_per_gpu_gb: u32,
    /// Whether the catalog says the type can be provisioned in `zone` now.
    pub type_available_in_zone: bool,
    pub hourly_price_micro_eur: i64,
    /// Signed so that a zero or negative size is a typed refusal, not a parse failure.
    pub data_volume_gb: i64,
    #[serde(default)]
    pub vllm_mode: VllmMode,
}
