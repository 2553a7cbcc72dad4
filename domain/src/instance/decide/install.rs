//! From `booting` to `ready`: SSH, the install phases, the readiness checks; and reinstalls.

use super::{Ctx, Decision, bounded, nothing};
use crate::instance::{
    InstanceError, InstanceEvent, InstanceStatus as S, LogStream, MAX_LOG_CHUNK_BYTES, PhaseStatus,
    ReadinessCheck, is_install_phase,
};

/// Trust on first use: the first fingerprint is pinned, any other one is refused forever.
pub(super) fn ssh_accessible(cx: &Ctx<'_>, fingerprint: &str) -> Decision {
    let fingerprint = fingerprint.trim();
    if !(1..=256).contains(&fingerprint.len()) || !fingerprint.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(InstanceError::InvalidHostKey);
    }
    match &cx.s.ssh_host_key {
        Some(pinned) if pinned != fingerprint => {
            return Err(InstanceError::HostKeyChanged {
                pinned: pinned.clone(),
                presented: fingerprint.to_string(),
            });
        }
        Some(_) if !cx.is(S::Booting) => return nothing(),
        _ => {}
    }
    cx.require(&[S::Booting])?;
    let mut events = Vec::with_capacity(2);
    if cx.s.ssh_host_key.is_none() {
        events.push(InstanceEvent::SshHostKeyTrusted {
            fingerprint: fingerprint.to_string(),
        });
    }
    events.push(InstanceEvent::SshAccessible);
    Ok(events)
}

fn phase_name(name: String) -> Result<String, InstanceError> {
    if is_install_phase(&name) {
        Ok(name)
    } else {
        Err(InstanceError::InvalidPhase {
            name: name.chars().take(64).collect(),
        })
    }
}

pub(super) fn phase_started(cx: &Ctx<'_>, name: String) -> Decision {
    let name = phase_name(name)?;
    if cx.s.install.phase(&name).is_some() {
        return nothing();
    }
    cx.require(&[S::Installing])?;
    Ok(vec![InstanceEvent::PhaseStarted { name }])
}

/// Not idempotent: the same bytes twice are two chunks of output (see [`InstanceCommand`]).
///
/// [`InstanceCommand`]: crate::instance::InstanceCommand
pub(super) fn phase_logged(
    cx: &Ctx<'_>,
    name: String,
    stream: LogStream,
    chunk: String,
) -> Decision {
    let name = phase_name(name)?;
    if chunk.len() > MAX_LOG_CHUNK_BYTES {
        return Err(InstanceError::ChunkTooLarge { bytes: chunk.len() });
    }
    cx.require(&[S::Installing])?;
    if cx.s.install.phase(&name).is_none() {
        return Err(InstanceError::PhaseNotStarted { name });
    }
    if chunk.is_empty() {
        return nothing();
    }
    Ok(vec![InstanceEvent::PhaseLogged {
        name,
        stream,
        chunk,
    }])
}

/// The fact is recorded when the phase already has `same`; it contradicts the record when the
/// phase finished the other way.
fn finish_check(
    cx: &Ctx<'_>,
    name: &str,
    same: PhaseStatus,
) -> Result<Option<Decision>, InstanceError> {
    match cx.s.install.phase(name).map(|p| p.status) {
        Some(status) if status == same => Ok(Some(nothing())),
        Some(status @ (PhaseStatus::Completed | PhaseStatus::Failed)) => {
            Err(InstanceError::PhaseConflict {
                name: name.to_string(),
                recorded: status,
            })
        }
        Some(PhaseStatus::Running) => {
            cx.require(&[S::Installing])?;
            Ok(None)
        }
        None => {
            cx.require(&[S::Installing])?;
            Err(InstanceError::PhaseNotStarted {
                name: name.to_string(),
            })
        }
    }
}

pub(super) fn phase_completed(
    cx: &Ctx<'_>,
    name: String,
    duration_ms: u64,
    exit_code: i32,
) -> Decision {
    let name = phase_name(name)?;
    if let Some(done) = finish_check(cx, &name, PhaseStatus::Completed)? {
        return done;
    }
    Ok(vec![InstanceEvent::PhaseCompleted {
        name,
        duration_ms,
        exit_code,
    }])
}

pub(super) fn phase_failed(
    cx: &Ctx<'_>,
    name: String,
    duration_ms: u64,
    exit_code: Option<i32>,
    message: &str,
) -> Decision {
    let name = phase_name(name)?;
    if let Some(done) = finish_check(cx, &name, PhaseStatus::Failed)? {
        return done;
    }
    Ok(vec![InstanceEvent::PhaseFailed {
        name,
        duration_ms,
        exit_code,
        message: bounded(message),
    }])
}

pub(super) fn install_completed(cx: &Ctx<'_>) -> Decision {
    if cx.s.install.completed {
        return nothing();
    }
    cx.require(&[S::Installing])?;
    if let Some(p) =
        cx.s.install
            .phases
            .iter()
            .find(|p| p.status == PhaseStatus::Failed)
    {
        return Err(InstanceError::InstallPhaseFailed {
            name: p.name.clone(),
        });
    }
    Ok(vec![InstanceEvent::InstallCompleted])
}

/// Only a change of outcome is recorded: a check that passes (or fails) as it did last time
/// adds nothing, so periodic health checks do not flood the stream.
pub(super) fn readiness_check(
    cx: &Ctx<'_>,
    check: ReadinessCheck,
    ok: bool,
    duration_ms: u64,
    detail: &str,
) -> Decision {
    if cx.s.readiness_of(check).is_some_and(|r| r.ok == ok) {
        return nothing();
    }
    cx.require(&[S::Starting, S::Ready, S::Unavailable])?;
    if !cx.is(S::Starting) && check != ReadinessCheck::HealthCheck {
        return Err(InstanceError::CheckNotAllowed {
            check,
            status: cx.s.status,
        });
    }
    let detail = bounded(detail);
    Ok(vec![if ok {
        InstanceEvent::ReadinessCheckPassed {
            check,
            duration_ms,
            detail,
        }
    } else {
        InstanceEvent::ReadinessCheckFailed {
            check,
            duration_ms,
            detail,
        }
    }])
}

/// Ready means: the latest health check passed, no check's latest outcome is a failure, and
/// the worker agent, if one registered, is not recorded unhealthy.
pub(super) fn mark_ready(cx: &Ctx<'_>) -> Decision {
    if cx.is(S::Ready) {
        return nothing();
    }
    cx.require(&[S::Starting, S::Unavailable])?;
    if let Some(w) = &cx.s.worker
        && w.healthy == Some(false)
    {
        return Err(InstanceError::WorkerUnhealthy {
            reason: w.health_reason.clone().unwrap_or_default(),
        });
    }
    for check in ReadinessCheck::ALL {
        let passed = match cx.s.readiness_of(check) {
            Some(r) => r.ok,
            None => check != ReadinessCheck::HealthCheck,
        };
        if !passed {
            return Err(InstanceError::ReadinessIncomplete { check });
        }
    }
    Ok(vec![InstanceEvent::InstanceReady])
}

/// Back to `booting` on the same server: the bootstrap processor reconnects over SSH (the host
/// key stays pinned) and runs a new install attempt.
pub(super) fn reinstall(cx: &Ctx<'_>) -> Decision {
    cx.require(&[S::Ready, S::Unavailable, S::Failed])?;
    cx.live_server()?;
    if cx.is(S::Failed) {
        let at_status = cx.s.failure.as_ref().map_or(S::Failed, |f| f.at_status);
        if !at_status.is_after_ssh() {
            return Err(InstanceError::ReinstallNotPossible { at_status });
        }
    }
    Ok(vec![InstanceEvent::ReinstallRequested {
        attempt: cx.s.install.attempt.saturating_add(1),
    }])
}
