//! The state of an instance, as its events left it, and how each event changes it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Failure, InstallProgress, InstanceEvent, InstanceRequested, InstanceStatus, PhaseRecord,
    PhaseStatus, ReadinessCheck, ReadinessRecord, VllmMode, progress,
};
use crate::catalog::Provider;

/// The reason recorded when the watchdog finds the server stopped.
pub(super) const STOPPED_AT_PROVIDER: &str = "the server was stopped at the provider";

/// Everything known about a requested instance. Public and serializable so that read models
/// and the auditor's replay show exactly what the aggregate decides on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    pub status: InstanceStatus,
    /// Percent, 0 to 100, derived from the events (see [`progress`]).
    pub progress: u8,
    pub model_id: Uuid,
    /// The model's Hugging Face repository id.
    pub model_repo: String,
    pub model_required_vram_gb: u32,
    /// The zone the instance is provisioned in now.
    pub zone: String,
    /// The zones the request allows, the requested one first, then the fallbacks in order.
    pub allowed_zones: Vec<String>,
    /// The instance type code.
    pub instance_type: String,
    pub gpu_count: u32,
    pub vram_per_gpu_gb: u32,
    /// The price at request time, integer micro-euros per hour.
    pub hourly_price_micro_eur: i64,
    pub data_volume_gb: u32,
    pub vllm_mode: VllmMode,
    pub provider: Provider,
    /// The server, once created (kept after deletion, marked deleted).
    pub server: Option<ServerRecord>,
    /// Every volume created for the instance, including orphans of earlier attempts.
    pub volumes: Vec<VolumeRecord>,
    pub public_ip: Option<String>,
    /// The highest power-on attempt requested.
    pub power_on_attempts: u32,
    /// The highest power-on attempt recorded as failed to allocate (0: none).
    #[serde(default)]
    pub allocation_failed_attempt: u32,
    /// The highest provisioning attempt started (zone fallbacks and retries).
    pub provisioning_attempts: u32,
    pub failure: Option<Failure>,
    pub install: InstallProgress,
    /// The latest outcome of each readiness check in the current attempt.
    pub readiness: Vec<ReadinessRecord>,
    /// The SSH host key fingerprint pinned at first contact (trust on first use).
    pub ssh_host_key: Option<String>,
    pub termination_requested: bool,
    pub terminate_reason: Option<String>,
    pub unavailable_reason: Option<String>,
    /// The worker agent registered for the current install attempt, if any.
    #[serde(default)]
    pub worker: Option<WorkerRecord>,
}

/// The worker agent of the current install attempt, as its registration and the meaningful
/// changes of its heartbeats recorded it (the gauges themselves are not events: see
/// `worker_telemetry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// The install attempt it registered for.
    pub attempt: u32,
    /// SHA-256 (hex) of its worker token.
    pub token_hash: String,
    pub agent_version: String,
    /// `None` until a heartbeat (or the watchdog) said.
    pub healthy: Option<bool>,
    /// Why it is (un)healthy, as last recorded.
    pub health_reason: Option<String>,
    /// The models its engine serves, sorted.
    pub models: Vec<String>,
}

/// The instance's server at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub server_id: String,
    pub zone: String,
    /// The provider's commercial type (`L4-1-24G`).
    pub commercial_type: String,
    pub deleted: bool,
    /// Found stopped by the watchdog; cleared when it runs again (started, or ready again).
    #[serde(default)]
    pub stopped: bool,
    /// The terminator asked the provider to power it off.
    #[serde(default)]
    pub power_off_requested: bool,
}

/// A data volume created for the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub volume_id: String,
    pub zone: String,
    pub size_gb: u32,
    pub attached: bool,
    pub deleted: bool,
}

impl InstanceState {
    /// The state right after the request.
    pub(super) fn requested(e: InstanceRequested) -> Self {
        Self {
            status: InstanceStatus::Requested,
            progress: progress::REQUESTED,
            model_id: e.model_id,
            model_repo: e.model_repo,
            model_required_vram_gb: e.model_required_vram_gb,
            zone: e.zone,
            allowed_zones: e.allowed_zones,
            instance_type: e.instance_type,
            gpu_count: e.gpu_count,
            vram_per_gpu_gb: e.vram_per_gpu_gb,
            hourly_price_micro_eur: e.hourly_price_micro_eur,
            data_volume_gb: e.data_volume_gb,
            vllm_mode: e.vllm_mode,
            provider: e.provider,
            server: None,
            volumes: Vec::new(),
            public_ip: None,
            power_on_attempts: 0,
            allocation_failed_attempt: 0,
            provisioning_attempts: 0,
            failure: None,
            install: InstallProgress::first(),
            readiness: Vec::new(),
            ssh_host_key: None,
            termination_requested: false,
            terminate_reason: None,
            unavailable_reason: None,
            worker: None,
        }
    }

    /// Whether anything may still exist (and cost money) at the provider: a server not
    /// recorded deleted, or a volume not recorded deleted.
    pub fn resources_left(&self) -> bool {
        self.server_id().is_some() || self.volumes.iter().any(|v| !v.deleted)
    }

    /// Ids of the volumes not recorded deleted.
    pub fn live_volume_ids(&self) -> Vec<String> {
        self.volumes
            .iter()
            .filter(|v| !v.deleted)
            .map(|v| v.volume_id.clone())
            .collect()
    }

    /// The id of the server, if one exists and is not recorded deleted.
    pub fn server_id(&self) -> Option<&str> {
        self.live_server().map(|s| s.server_id.as_str())
    }

    /// The server, if one exists and is not recorded deleted.
    pub fn live_server(&self) -> Option<&ServerRecord> {
        self.server.as_ref().filter(|s| !s.deleted)
    }

    /// The volume `volume_id`, deleted or not.
    pub fn volume(&self, volume_id: &str) -> Option<&VolumeRecord> {
        self.volumes.iter().find(|v| v.volume_id == volume_id)
    }

    /// The latest outcome of `check` in the current attempt.
    pub fn readiness_of(&self, check: ReadinessCheck) -> Option<&ReadinessRecord> {
        self.readiness.iter().find(|r| r.check == check)
    }

    /// Raises the progress to `value` while the instance is on its way (never in failed,
    /// terminating or terminal states, which keep the value they reached).
    fn advance(&mut self, value: u8) {
        if self.status.is_active() {
            self.progress = self.progress.max(value);
        }
    }

    fn volume_mut(&mut self, volume_id: &str) -> Option<&mut VolumeRecord> {
        self.volumes.iter_mut().find(|v| v.volume_id == volume_id)
    }

    fn server_mut(&mut self) -> Option<&mut ServerRecord> {
        self.server.as_mut()
    }

    fn record_readiness(&mut self, record: ReadinessRecord) {
        let ok = record.ok;
        let check = record.check;
        match self.readiness.iter_mut().find(|r| r.check == check) {
            Some(r) => *r = record,
            None => self.readiness.push(record),
        }
        if ok {
            self.advance(check.progress());
        }
    }

    /// Leaving service makes the last health check stale: coming back needs a new one.
    fn forget_health(&mut self) {
        self.readiness
            .retain(|r| r.check != ReadinessCheck::HealthCheck);
    }

    fn finish_phase(
        &mut self,
        name: &str,
        status: PhaseStatus,
        duration_ms: u64,
        exit: Option<i32>,
    ) {
        if let Some(p) = self.install.phase_mut(name) {
            p.status = status;
            p.duration_ms = Some(duration_ms);
            p.exit_code = exit;
        }
    }

    /// Applies an event other than `InstanceRequested` (which creates the state).
    pub(super) fn apply(&mut self, event: InstanceEvent) {
        use InstanceEvent as E;
        use InstanceStatus as S;
        match event {
            E::InstanceRequested(_) => {}
            E::ProvisioningStarted { attempt, .. } => {
                self.status = S::Provisioning;
                self.provisioning_attempts = self.provisioning_attempts.max(attempt);
            }
            E::ZoneChanged { to, .. } => self.zone = to,
            E::VolumeCreated {
                volume_id,
                zone,
                size_gb,
            } => self.volumes.push(VolumeRecord {
                volume_id,
                zone,
                size_gb,
                attached: false,
                deleted: false,
            }),
            E::ServerCreated {
                server_id,
                zone,
                commercial_type,
            } => {
                self.zone.clone_from(&zone);
                self.server = Some(ServerRecord {
                    server_id,
                    zone,
                    commercial_type,
                    deleted: false,
                    stopped: false,
                    power_off_requested: false,
                });
                self.advance(progress::SERVER_CREATED);
            }
            E::VolumeAttached { volume_id } => {
                if let Some(v) = self.volume_mut(&volume_id) {
                    v.attached = true;
                }
                self.advance(progress::VOLUME_ATTACHED);
            }
            E::PowerOnRequested { attempt } => {
                self.power_on_attempts = self.power_on_attempts.max(attempt);
                self.advance(progress::POWER_ON_REQUESTED);
            }
            E::ServerAllocationFailed { attempt } => {
                self.allocation_failed_attempt = self.allocation_failed_attempt.max(attempt);
            }
            E::ServerStarted { public_ip } => {
                self.public_ip = Some(public_ip);
                if let Some(s) = self.server_mut() {
                    s.stopped = false;
                }
                self.status = S::Booting;
                self.advance(progress::SERVER_STARTED);
            }
            E::SshHostKeyTrusted { fingerprint } => self.ssh_host_key = Some(fingerprint),
            E::SshAccessible => {
                self.status = S::Installing;
                self.advance(progress::SSH_ACCESSIBLE);
            }
            E::PhaseStarted { name } => self.install.phases.push(PhaseRecord {
                name,
                status: PhaseStatus::Running,
                duration_ms: None,
                exit_code: None,
                log_bytes: 0,
            }),
            E::PhaseLogged { name, chunk, .. } => {
                if let Some(p) = self.install.phase_mut(&name) {
                    p.log_bytes = p.log_bytes.saturating_add(chunk.len() as u64);
                }
            }
            E::PhaseCompleted {
                name,
                duration_ms,
                exit_code,
            } => self.finish_phase(&name, PhaseStatus::Completed, duration_ms, Some(exit_code)),
            E::PhaseFailed {
                name,
                duration_ms,
                exit_code,
                ..
            } => self.finish_phase(&name, PhaseStatus::Failed, duration_ms, exit_code),
            E::InstallCompleted => {
                self.install.completed = true;
                self.status = S::Starting;
                self.advance(progress::INSTALLED);
            }
            E::ReadinessCheckPassed {
                check,
                duration_ms,
                detail,
            } => self.record_readiness(ReadinessRecord {
                check,
                ok: true,
                duration_ms,
                detail,
            }),
            E::ReadinessCheckFailed {
                check,
                duration_ms,
                detail,
            } => self.record_readiness(ReadinessRecord {
                check,
                ok: false,
                duration_ms,
                detail,
            }),
            E::InstanceReady => {
                self.status = S::Ready;
                self.unavailable_reason = None;
                if let Some(s) = self.server_mut() {
                    s.stopped = false;
                }
                self.advance(progress::READY);
            }
            E::InstanceUnavailable { reason } => {
                self.status = S::Unavailable;
                self.unavailable_reason = Some(reason);
                self.forget_health();
            }
            E::ProviderServerStopped => {
                self.status = S::Unavailable;
                self.unavailable_reason = Some(STOPPED_AT_PROVIDER.to_string());
                if let Some(s) = self.server_mut() {
                    s.stopped = true;
                }
                self.forget_health();
            }
            E::ProviderServerDeleted { .. } | E::ServerDeleted { .. } => {
                if let Some(s) = self.server_mut() {
                    s.deleted = true;
                }
            }
            E::InstanceFailed {
                code,
                message,
                at_status,
            } => {
                self.status = S::Failed;
                self.failure = Some(Failure {
                    code,
                    message,
                    at_status,
                });
            }
            E::TerminationRequested { reason, .. } => {
                self.status = S::Terminating;
                self.termination_requested = true;
                self.terminate_reason = reason;
            }
            E::PowerOffRequested { .. } => {
                if let Some(s) = self.server_mut() {
                    s.power_off_requested = true;
                }
            }
            E::VolumeDetached { volume_id } => {
                if let Some(v) = self.volume_mut(&volume_id) {
                    v.attached = false;
                }
            }
            E::VolumeDeleted { volume_id } => {
                if let Some(v) = self.volume_mut(&volume_id) {
                    v.attached = false;
                    v.deleted = true;
                }
            }
            E::InstanceTerminated => self.status = S::Terminated,
            E::ReinstallRequested { attempt } => {
                self.status = S::Booting;
                self.progress = progress::SERVER_STARTED;
                self.install = InstallProgress {
                    attempt,
                    phases: Vec::new(),
                    completed: false,
                };
                self.readiness.clear();
                self.failure = None;
                self.unavailable_reason = None;
                // The new attempt gets a new agent, which registers again.
                self.worker = None;
            }
            E::DrainStarted => self.status = S::Draining,
            E::InstanceArchived => self.status = S::Archived,
            E::WorkerRegistered {
                attempt,
                token_hash,
                agent_version,
            } => {
                self.worker = Some(WorkerRecord {
                    attempt,
                    token_hash,
                    agent_version,
                    healthy: None,
                    health_reason: None,
                    models: Vec::new(),
                });
            }
            E::WorkerHealthChanged { healthy, reason } => {
                if let Some(w) = self.worker.as_mut() {
                    w.healthy = Some(healthy);
                    w.health_reason = Some(reason);
                }
            }
            E::WorkerModelsChanged { models } => {
                if let Some(w) = self.worker.as_mut() {
                    w.models = models;
                }
            }
        }
    }
}
