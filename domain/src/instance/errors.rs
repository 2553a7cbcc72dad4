use super::{InstanceStatus, PhaseStatus, ReadinessCheck};

/// Why the instance aggregate refused a command. Each variant is a rule, asserted by variant
/// in tests; [`code`](Self::code) is the stable string the API and the processors match on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    #[error("{command} is not allowed while the instance is {status}")]
    IllegalTransition {
        command: &'static str,
        status: InstanceStatus,
    },
    #[error("no such instance")]
    NotFound,
    #[error("this instance was already requested")]
    AlreadyRequested,
    #[error("invalid zone code {value:?}: 3 to 32 lowercase letters, digits and dashes")]
    InvalidZone { value: String },
    #[error("invalid instance type code {value:?}: 2 to 40 letters, digits and dashes")]
    InvalidInstanceType { value: String },
    #[error(
        "an instance type needs at least one GPU with some VRAM (got {gpu_count} x {vram_per_gpu_gb} GB)"
    )]
    InvalidGpuSpec {
        gpu_count: u32,
        vram_per_gpu_gb: u32,
    },
    #[error("invalid model repository {value:?}: expected owner/name")]
    InvalidModelRepo { value: String },
    #[error("model {model_repo} is not active")]
    ModelInactive { model_repo: String },
    #[error(
        "the model needs {required_vram_gb} GB of VRAM; the instance type has {total_vram_gb} GB"
    )]
    IncompatibleModel {
        required_vram_gb: u32,
        total_vram_gb: u64,
    },
    #[error("instance type {instance_type} cannot be provisioned in zone {zone} now")]
    TypeNotAvailableInZone { instance_type: String, zone: String },
    #[error("data_volume_gb must be between 10 and 100000 (got {value})")]
    InvalidDataVolume { value: i64 },
    #[error("hourly_price_micro_eur must not be negative (got {value})")]
    InvalidPrice { value: i64 },
    #[error("attempts count from 1 (got {attempt})")]
    InvalidAttempt { attempt: u32 },
    #[error("invalid {field} {value:?}: 1 to 128 visible ASCII characters")]
    InvalidResourceId { field: &'static str, value: String },
    #[error("zone {zone} is not among the zones this request allows ({})", allowed.join(", "))]
    ZoneNotAllowed { zone: String, allowed: Vec<String> },
    #[error("the instance is in zone {current}, not {requested}")]
    ZoneMismatch { current: String, requested: String },
    #[error("server {server_id} already exists for this instance")]
    ServerAlreadyCreated { server_id: String },
    #[error("the instance's server is {recorded}, not {got}")]
    ServerMismatch { recorded: String, got: String },
    #[error("the instance has no live server")]
    NoServer,
    #[error("volume {volume_id} is not one of this instance's volumes")]
    UnknownVolume { volume_id: String },
    #[error("volume {volume_id} was deleted")]
    VolumeDeleted { volume_id: String },
    #[error("power-on attempt {attempt} was never requested")]
    PowerOnNotRequested { attempt: u32 },
    #[error("invalid public IP {value:?}")]
    InvalidIp { value: String },
    #[error("the server's public IP is {recorded}, not {got}")]
    IpMismatch { recorded: String, got: String },
    #[error("invalid SSH host key fingerprint: 1 to 256 visible ASCII characters")]
    InvalidHostKey,
    #[error("the SSH host key changed: pinned {pinned}, presented {presented}")]
    HostKeyChanged { pinned: String, presented: String },
    #[error("{name:?} is not an install phase")]
    InvalidPhase { name: String },
    #[error("install phase {name} has not started")]
    PhaseNotStarted { name: String },
    #[error("install phase {name} is already {}", recorded.as_str())]
    PhaseConflict { name: String, recorded: PhaseStatus },
    #[error("a log chunk may have at most 8192 bytes (got {bytes})")]
    ChunkTooLarge { bytes: usize },
    #[error("the install cannot complete: phase {name} failed")]
    InstallPhaseFailed { name: String },
    #[error("readiness check {} is not run while the instance is {status}", check.as_str())]
    CheckNotAllowed {
        check: ReadinessCheck,
        status: InstanceStatus,
    },
    #[error("the instance is not ready: the latest {} has not passed", check.as_str())]
    ReadinessIncomplete { check: ReadinessCheck },
    #[error("resources remain at the provider: server {server:?}, volumes {volumes:?}")]
    ResourcesRemain {
        server: Option<String>,
        volumes: Vec<String>,
    },
    #[error("cannot reinstall: the instance failed while {at_status}, before SSH was reached")]
    ReinstallNotPossible { at_status: InstanceStatus },
    #[error("invalid worker token hash: 64 lowercase hex characters (a SHA-256)")]
    InvalidTokenHash,
    #[error("install attempt {got} is not the current one ({current})")]
    StaleInstallAttempt { current: u32, got: u32 },
    #[error("a worker already registered for install attempt {attempt}")]
    WorkerAlreadyRegistered { attempt: u32 },
    #[error("the worker connected from {got}, but the instance's public IP is {recorded}")]
    WorkerAddressMismatch { recorded: String, got: String },
    #[error("no worker has registered for the current install attempt")]
    NoWorker,
    #[error("invalid model name {value:?}: 1 to 256 characters, at most 64 models")]
    InvalidModelName { value: String },
    #[error("the instance's worker is unhealthy: {reason}")]
    WorkerUnhealthy { reason: String },
}

impl InstanceError {
    /// Stable machine-readable code, used as the problem type on the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::IllegalTransition { .. } => "illegal-transition",
            Self::NotFound => "instance-not-found",
            Self::AlreadyRequested => "already-requested",
            Self::InvalidZone { .. } => "invalid-zone",
            Self::InvalidInstanceType { .. } => "invalid-instance-type",
            Self::InvalidGpuSpec { .. } => "invalid-gpu-spec",
            Self::InvalidModelRepo { .. } => "invalid-model-repo",
            Self::ModelInactive { .. } => "model-inactive",
            Self::IncompatibleModel { .. } => "incompatible-model",
            Self::TypeNotAvailableInZone { .. } => "type-not-available-in-zone",
            Self::InvalidDataVolume { .. } => "invalid-data-volume",
            Self::InvalidPrice { .. } => "invalid-price",
            Self::InvalidAttempt { .. } => "invalid-attempt",
            Self::InvalidResourceId { .. } => "invalid-resource-id",
            Self::ZoneNotAllowed { .. } => "zone-not-allowed",
            Self::ZoneMismatch { .. } => "zone-mismatch",
            Self::ServerAlreadyCreated { .. } => "server-already-created",
            Self::ServerMismatch { .. } => "server-mismatch",
            Self::NoServer => "no-server",
            Self::UnknownVolume { .. } => "unknown-volume",
            Self::VolumeDeleted { .. } => "volume-deleted",
            Self::PowerOnNotRequested { .. } => "power-on-not-requested",
            Self::InvalidIp { .. } => "invalid-ip",
            Self::IpMismatch { .. } => "ip-mismatch",
            Self::InvalidHostKey => "invalid-host-key",
            Self::HostKeyChanged { .. } => "host-key-changed",
            Self::InvalidPhase { .. } => "invalid-phase",
            Self::PhaseNotStarted { .. } => "phase-not-started",
            Self::PhaseConflict { .. } => "phase-conflict",
            Self::ChunkTooLarge { .. } => "chunk-too-large",
            Self::InstallPhaseFailed { .. } => "install-phase-failed",
            Self::CheckNotAllowed { .. } => "check-not-allowed",
            Self::ReadinessIncomplete { .. } => "readiness-incomplete",
            Self::ResourcesRemain { .. } => "resources-remain",
            Self::ReinstallNotPossible { .. } => "reinstall-not-possible",
            Self::InvalidTokenHash => "invalid-token-hash",
            Self::StaleInstallAttempt { .. } => "stale-install-attempt",
            Self::WorkerAlreadyRegistered { .. } => "worker-already-registered",
            Self::WorkerAddressMismatch { .. } => "worker-address-mismatch",
            Self::NoWorker => "no-worker",
            Self::InvalidModelName { .. } => "invalid-model-name",
            Self::WorkerUnhealthy { .. } => "worker-unhealthy",
        }
    }
}
