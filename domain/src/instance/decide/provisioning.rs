//! From `requested` to `booting`: the zone, the volumes, the server and its power-on.

use std::net::IpAddr;

use super::{Ctx, Decision, attempt_number, bounded, nothing, resource_id, zone_code};
use crate::instance::{InstanceError, InstanceEvent, InstanceStatus as S};

pub(super) fn start_provisioning(cx: &Ctx<'_>, zone: &str, attempt: u32) -> Decision {
    let attempt = attempt_number(attempt)?;
    let zone = zone_code(zone)?;
    if attempt <= cx.s.provisioning_attempts {
        return nothing();
    }
    cx.require(&[S::Requested, S::Provisioning])?;
    if zone != cx.s.zone {
        return Err(InstanceError::ZoneMismatch {
            current: cx.s.zone.clone(),
            requested: zone,
        });
    }
    // A retry creates a new server; with one alive it would be a second GPU VM.
    if let Some(server_id) = cx.s.server_id() {
        return Err(InstanceError::ServerAlreadyCreated {
            server_id: server_id.to_string(),
        });
    }
    Ok(vec![InstanceEvent::ProvisioningStarted { zone, attempt }])
}

pub(super) fn change_zone(cx: &Ctx<'_>, to: &str, reason: &str) -> Decision {
    let to = zone_code(to)?;
    if to == cx.s.zone {
        return nothing();
    }
    cx.require(&[S::Requested, S::Provisioning])?;
    if let Some(server_id) = cx.s.server_id() {
        return Err(InstanceError::ServerAlreadyCreated {
            server_id: server_id.to_string(),
        });
    }
    if !cx.s.allowed_zones.contains(&to) {
        return Err(InstanceError::ZoneNotAllowed {
            zone: to,
            allowed: cx.s.allowed_zones.clone(),
        });
    }
    Ok(vec![InstanceEvent::ZoneChanged {
        from: cx.s.zone.clone(),
        to,
        reason: bounded(reason),
    }])
}

/// Accepted in `terminating` and `failed` too: a create call racing the termination left a
/// volume that cleanup must find.
pub(super) fn volume_created(cx: &Ctx<'_>, volume_id: &str, zone: &str, size_gb: u32) -> Decision {
    let volume_id = resource_id("volume_id", volume_id)?;
    let zone = zone_code(zone)?;
    if cx.s.volume(&volume_id).is_some() {
        return nothing();
    }
    cx.require(&[S::Provisioning, S::Terminating, S::Failed])?;
    Ok(vec![InstanceEvent::VolumeCreated {
        volume_id,
        zone,
        size_gb,
    }])
}

/// Accepted in `terminating` and `failed` too, for the same reason as volumes. A second live
/// server is refused: the caller deletes the one it just created.
pub(super) fn server_created(
    cx: &Ctx<'_>,
    server_id: &str,
    zone: &str,
    commercial_type: &str,
) -> Decision {
    let server_id = resource_id("server_id", server_id)?;
    let zone = zone_code(zone)?;
    let commercial_type = resource_id("commercial_type", commercial_type)?;
    if cx
        .s
        .server
        .as_ref()
        .is_some_and(|s| s.server_id == server_id)
    {
        return nothing();
    }
    if let Some(recorded) = cx.s.server_id() {
        return Err(InstanceError::ServerMismatch {
            recorded: recorded.to_string(),
            got: server_id,
        });
    }
    cx.require(&[S::Provisioning, S::Terminating, S::Failed])?;
    Ok(vec![InstanceEvent::ServerCreated {
        server_id,
        zone,
        commercial_type,
    }])
}

pub(super) fn volume_attached(cx: &Ctx<'_>, volume_id: &str) -> Decision {
    let volume_id = resource_id("volume_id", volume_id)?;
    match cx.s.volume(&volume_id) {
        Some(v) if v.deleted => return Err(InstanceError::VolumeDeleted { volume_id }),
        Some(v) if v.attached => return nothing(),
        _ => {}
    }
    cx.require(&[S::Provisioning])?;
    if cx.s.volume(&volume_id).is_none() {
        return Err(InstanceError::UnknownVolume { volume_id });
    }
    Ok(vec![InstanceEvent::VolumeAttached { volume_id }])
}

pub(super) fn power_on_requested(cx: &Ctx<'_>, attempt: u32) -> Decision {
    let attempt = attempt_number(attempt)?;
    if attempt <= cx.s.power_on_attempts {
        return nothing();
    }
    cx.require(&[S::Provisioning])?;
    cx.live_server()?;
    Ok(vec![InstanceEvent::PowerOnRequested { attempt }])
}

pub(super) fn allocation_failed(cx: &Ctx<'_>, attempt: u32) -> Decision {
    let attempt = attempt_number(attempt)?;
    if attempt <= cx.s.allocation_failed_attempt {
        return nothing();
    }
    cx.require(&[S::Provisioning])?;
    cx.live_server()?;
    if attempt > cx.s.power_on_attempts {
        return Err(InstanceError::PowerOnNotRequested { attempt });
    }
    Ok(vec![InstanceEvent::ServerAllocationFailed { attempt }])
}

pub(super) fn server_running(cx: &Ctx<'_>, public_ip: &str) -> Decision {
    let public_ip = public_ip
        .trim()
        .parse::<IpAddr>()
        .map_err(|_| InstanceError::InvalidIp {
            value: public_ip.chars().take(64).collect(),
        })?
        .to_string();
    match &cx.s.public_ip {
        Some(recorded) if *recorded == public_ip => return nothing(),
        Some(recorded) => {
            return Err(InstanceError::IpMismatch {
                recorded: recorded.clone(),
                got: public_ip,
            });
        }
        None => {}
    }
    cx.require(&[S::Provisioning])?;
    cx.live_server()?;
    Ok(vec![InstanceEvent::ServerStarted { public_ip }])
}
