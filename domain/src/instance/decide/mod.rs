//! The instance's rules: which events a command causes, or why it is refused.
//!
//! Every handler checks in the same order (see the module documentation of
//! [`instance`](super)): payload, fact already recorded (no event), contradiction, status,
//! other preconditions.

mod install;
mod lifecycle;
mod provisioning;
mod request;
mod worker;

use super::{
    Instance, InstanceCommand, InstanceError, InstanceEvent, InstanceState, InstanceStatus,
    ServerRecord,
};

type Decision = Result<Vec<InstanceEvent>, InstanceError>;

/// Free text carried by events (reasons, messages, details) is cut to this many characters,
/// so that a process manager relaying a long provider error is not refused for it.
const MAX_TEXT_CHARS: usize = 2000;

/// The events `command` causes on `instance`, or the rule it breaks. An empty list means the
/// command was a repetition of something already recorded.
pub fn decide(
    instance: &Instance,
    command: InstanceCommand,
) -> Result<Vec<InstanceEvent>, InstanceError> {
    use InstanceCommand as C;
    let (s, command) = match (&instance.state, command) {
        (Some(_), C::Request(_)) => return Err(InstanceError::AlreadyRequested),
        (None, C::Request(cmd)) => return request::request(cmd),
        (None, _) => return Err(InstanceError::NotFound),
        (Some(s), command) => (s, command),
    };
    let cx = Ctx {
        s,
        command: command.name(),
    };
    match command {
        // Answered above; kept so that this match stays exhaustive.
        C::Request(_) => Err(InstanceError::AlreadyRequested),
        C::StartProvisioning { zone, attempt } => {
            provisioning::start_provisioning(&cx, &zone, attempt)
        }
        C::ChangeZone { to, reason } => provisioning::change_zone(&cx, &to, &reason),
        C::RecordVolumeCreated {
            volume_id,
            zone,
            size_gb,
        } => provisioning::volume_created(&cx, &volume_id, &zone, size_gb),
        C::RecordServerCreated {
            server_id,
            zone,
            commercial_type,
        } => provisioning::server_created(&cx, &server_id, &zone, &commercial_type),
        C::RecordVolumeAttached { volume_id } => provisioning::volume_attached(&cx, &volume_id),
        C::RecordPowerOnRequested { attempt } => provisioning::power_on_requested(&cx, attempt),
        C::RecordAllocationFailed { attempt } => provisioning::allocation_failed(&cx, attempt),
        C::RecordServerRunning { public_ip } => provisioning::server_running(&cx, &public_ip),
        C::RecordSshAccessible {
            host_key_fingerprint,
        } => install::ssh_accessible(&cx, &host_key_fingerprint),
        C::RecordPhaseStarted { name } => install::phase_started(&cx, name),
        C::RecordPhaseLogged {
            name,
            stream,
            chunk,
        } => install::phase_logged(&cx, name, stream, chunk),
        C::RecordPhaseCompleted {
            name,
            duration_ms,
            exit_code,
        } => install::phase_completed(&cx, name, duration_ms, exit_code),
        C::RecordPhaseFailed {
            name,
            duration_ms,
            exit_code,
            message,
        } => install::phase_failed(&cx, name, duration_ms, exit_code, &message),
        C::RecordInstallCompleted => install::install_completed(&cx),
        C::RecordReadinessCheck {
            check,
            ok,
            duration_ms,
            detail,
        } => install::readiness_check(&cx, check, ok, duration_ms, &detail),
        C::MarkReady => install::mark_ready(&cx),
        C::Reinstall => install::reinstall(&cx),
        C::MarkUnavailable { reason } => lifecycle::mark_unavailable(&cx, &reason),
        C::RecordProviderServerStopped => lifecycle::provider_server_stopped(&cx),
        C::RecordProviderServerDeleted => lifecycle::provider_server_deleted(&cx),
        C::Fail { code, message } => lifecycle::fail(&cx, code, &message),
        C::Terminate { reason } => lifecycle::terminate(&cx, reason.as_deref()),
        C::RecordPowerOffRequested => lifecycle::power_off_requested(&cx),
        C::RecordServerDeleted { server_id } => lifecycle::server_deleted(&cx, &server_id),
        C::RecordVolumeDetached { volume_id } => lifecycle::volume_detached(&cx, &volume_id),
        C::RecordVolumeDeleted { volume_id } => lifecycle::volume_deleted(&cx, &volume_id),
        C::ConfirmTerminated => lifecycle::confirm_terminated(&cx),
        C::Drain => lifecycle::drain(&cx),
        C::Archive => lifecycle::archive(&cx),
        C::RegisterWorker {
            attempt,
            token_hash,
            agent_version,
            from_ip,
        } => worker::register(
            &cx,
            attempt,
            &token_hash,
            &agent_version,
            from_ip.as_deref(),
        ),
        C::RecordWorkerHealth { healthy, reason } => worker::health(&cx, healthy, &reason),
        C::RecordWorkerModels { models } => worker::models(&cx, models),
    }
}

/// A command being decided on an existing instance.
struct Ctx<'a> {
    s: &'a InstanceState,
    command: &'static str,
}

impl Ctx<'_> {
    /// Refuses the command unless the instance is in one of `allowed`.
    fn require(&self, allowed: &[InstanceStatus]) -> Result<(), InstanceError> {
        if allowed.contains(&self.s.status) {
            Ok(())
        } else {
            Err(InstanceError::IllegalTransition {
                command: self.command,
                status: self.s.status,
            })
        }
    }

    fn is(&self, status: InstanceStatus) -> bool {
        self.s.status == status
    }

    /// The server, which must exist and not be recorded deleted.
    fn live_server(&self) -> Result<&ServerRecord, InstanceError> {
        self.s.live_server().ok_or(InstanceError::NoServer)
    }
}

/// The statuses from which an instance is on its way to serving, or serving.
const ACTIVE: [InstanceStatus; 8] = [
    InstanceStatus::Requested,
    InstanceStatus::Provisioning,
    InstanceStatus::Booting,
    InstanceStatus::Installing,
    InstanceStatus::Starting,
    InstanceStatus::Ready,
    InstanceStatus::Unavailable,
    InstanceStatus::Draining,
];

/// Trimmed and cut to [`MAX_TEXT_CHARS`] characters.
fn bounded(text: &str) -> String {
    text.trim().chars().take(MAX_TEXT_CHARS).collect()
}

/// A provider resource id (server, volume) or code: 1 to 128 visible ASCII characters.
fn resource_id(field: &'static str, value: &str) -> Result<String, InstanceError> {
    let value = value.trim();
    if (1..=128).contains(&value.len()) && value.chars().all(|c| c.is_ascii_graphic()) {
        Ok(value.to_string())
    } else {
        Err(InstanceError::InvalidResourceId {
            field,
            value: value.chars().take(64).collect(),
        })
    }
}

/// A zone code, trimmed and checked as the catalog does.
fn zone_code(value: &str) -> Result<String, InstanceError> {
    let value = value.trim();
    crate::catalog::validate_zone_code(value).map_err(|_| InstanceError::InvalidZone {
        value: value.chars().take(64).collect(),
    })?;
    Ok(value.to_string())
}

/// Attempts count from 1.
fn attempt_number(attempt: u32) -> Result<u32, InstanceError> {
    if attempt == 0 {
        Err(InstanceError::InvalidAttempt { attempt })
    } else {
        Ok(attempt)
    }
}

/// Nothing new: the fact is already recorded.
fn nothing() -> Decision {
    Ok(Vec::new())
}
