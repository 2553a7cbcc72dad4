//! Leaving service: unavailability, provider surprises, failure, draining, termination,
//! cleanup and archival.

use super::{ACTIVE, Ctx, Decision, bounded, nothing, resource_id};
use crate::instance::{FailureCode, InstanceError, InstanceEvent, InstanceStatus as S};

pub(super) fn mark_unavailable(cx: &Ctx<'_>, reason: &str) -> Decision {
    if cx.is(S::Unavailable) {
        return nothing();
    }
    cx.require(&[S::Ready])?;
    Ok(vec![InstanceEvent::InstanceUnavailable {
        reason: bounded(reason),
    }])
}

pub(super) fn provider_server_stopped(cx: &Ctx<'_>) -> Decision {
    if cx.s.live_server().is_some_and(|s| s.stopped) {
        return nothing();
    }
    cx.require(&[
        S::Booting,
        S::Installing,
        S::Starting,
        S::Ready,
        S::Unavailable,
    ])?;
    cx.live_server()?;
    Ok(vec![InstanceEvent::ProviderServerStopped])
}

/// The server vanished at the provider: an instance on its way or serving fails; one being
/// terminated (or already failed) just has one resource less to delete.
pub(super) fn provider_server_deleted(cx: &Ctx<'_>) -> Decision {
    if cx.s.server.as_ref().is_some_and(|s| s.deleted) {
        return nothing();
    }
    cx.require(&[
        S::Provisioning,
        S::Booting,
        S::Installing,
        S::Starting,
        S::Ready,
        S::Unavailable,
        S::Draining,
        S::Terminating,
        S::Failed,
    ])?;
    let server_id = cx.live_server()?.server_id.clone();
    let mut events = vec![InstanceEvent::ProviderServerDeleted {
        server_id: server_id.clone(),
    }];
    if cx.s.status.is_active() {
        events.push(InstanceEvent::InstanceFailed {
            code: FailureCode::ProviderServerDeleted,
            message: format!("server {server_id} was deleted at the provider"),
            at_status: cx.s.status,
        });
    }
    Ok(events)
}

/// The first failure wins: the same code again is a repetition, another one is refused.
pub(super) fn fail(cx: &Ctx<'_>, code: FailureCode, message: &str) -> Decision {
    if cx.is(S::Failed) && cx.s.failure.as_ref().is_some_and(|f| f.code == code) {
        return nothing();
    }
    cx.require(&ACTIVE)?;
    Ok(vec![InstanceEvent::InstanceFailed {
        code,
        message: bounded(message),
        at_status: cx.s.status,
    }])
}

/// Everything but terminating, terminated and archived: a failed instance may still hold
/// resources, so it can be terminated too.
const TERMINABLE: [S; 9] = [
    S::Requested,
    S::Provisioning,
    S::Booting,
    S::Installing,
    S::Starting,
    S::Ready,
    S::Unavailable,
    S::Draining,
    S::Failed,
];

pub(super) fn terminate(cx: &Ctx<'_>, reason: Option<&str>) -> Decision {
    if cx.is(S::Terminating) || cx.is(S::Terminated) {
        return nothing();
    }
    cx.require(&TERMINABLE)?;
    Ok(vec![InstanceEvent::TerminationRequested {
        reason: reason.map(bounded).filter(|r| !r.is_empty()),
        from_status: cx.s.status,
    }])
}

const CLEANUP: [S; 2] = [S::Terminating, S::Failed];

pub(super) fn power_off_requested(cx: &Ctx<'_>) -> Decision {
    if cx
        .s
        .server
        .as_ref()
        .is_some_and(|s| s.power_off_requested || s.deleted)
    {
        return nothing();
    }
    cx.require(&CLEANUP)?;
    let server_id = cx.live_server()?.server_id.clone();
    Ok(vec![InstanceEvent::PowerOffRequested { server_id }])
}

pub(super) fn server_deleted(cx: &Ctx<'_>, server_id: &str) -> Decision {
    let server_id = resource_id("server_id", server_id)?;
    match &cx.s.server {
        Some(s) if s.server_id != server_id => {
            return Err(InstanceError::ServerMismatch {
                recorded: s.server_id.clone(),
                got: server_id,
            });
        }
        Some(s) if s.deleted => return nothing(),
        _ => {}
    }
    cx.require(&CLEANUP)?;
    if cx.s.server.is_none() {
        return Err(InstanceError::NoServer);
    }
    Ok(vec![InstanceEvent::ServerDeleted { server_id }])
}

pub(super) fn volume_detached(cx: &Ctx<'_>, volume_id: &str) -> Decision {
    let volume_id = resource_id("volume_id", volume_id)?;
    if cx
        .s
        .volume(&volume_id)
        .is_some_and(|v| !v.attached || v.deleted)
    {
        return nothing();
    }
    cx.require(&CLEANUP)?;
    if cx.s.volume(&volume_id).is_none() {
        return Err(InstanceError::UnknownVolume { volume_id });
    }
    Ok(vec![InstanceEvent::VolumeDetached { volume_id }])
}

/// Also accepted while provisioning: an orphan volume of a failed attempt is deleted before
/// the retry.
pub(super) fn volume_deleted(cx: &Ctx<'_>, volume_id: &str) -> Decision {
    let volume_id = resource_id("volume_id", volume_id)?;
    if cx.s.volume(&volume_id).is_some_and(|v| v.deleted) {
        return nothing();
    }
    cx.require(&[S::Provisioning, S::Terminating, S::Failed])?;
    if cx.s.volume(&volume_id).is_none() {
        return Err(InstanceError::UnknownVolume { volume_id });
    }
    Ok(vec![InstanceEvent::VolumeDeleted { volume_id }])
}

fn nothing_left(cx: &Ctx<'_>) -> Result<(), InstanceError> {
    if cx.s.resources_left() {
        Err(InstanceError::ResourcesRemain {
            server: cx.s.server_id().map(str::to_string),
            volumes: cx.s.live_volume_ids(),
        })
    } else {
        Ok(())
    }
}

pub(super) fn confirm_terminated(cx: &Ctx<'_>) -> Decision {
    if cx.is(S::Terminated) {
        return nothing();
    }
    cx.require(&[S::Terminating])?;
    nothing_left(cx)?;
    Ok(vec![InstanceEvent::InstanceTerminated])
}

pub(super) fn drain(cx: &Ctx<'_>) -> Decision {
    if cx.is(S::Draining) {
        return nothing();
    }
    cx.require(&[S::Ready])?;
    Ok(vec![InstanceEvent::DrainStarted])
}

pub(super) fn archive(cx: &Ctx<'_>) -> Decision {
    if cx.is(S::Archived) {
        return nothing();
    }
    cx.require(&[S::Terminated, S::Failed])?;
    nothing_left(cx)?;
    Ok(vec![InstanceEvent::InstanceArchived])
}
