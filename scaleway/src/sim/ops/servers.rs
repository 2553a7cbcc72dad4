//! Server operations on the world: lists, actions, deletion, updates, volume attachment and
//! user data (creation is in `create_server`). Everything here is synchronous (under the world
//! lock); actions return the [`Transition`] that the lifecycle tasks then play out in time.

use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;

pub(crate) use super::create_server::create;
use super::parse_body;
use crate::sim::config::Settings;
use crate::sim::error::SimError;
use crate::sim::views::TaskView;
use crate::sim::world::{
    AttachedVolume, Attachment, SimServer, SrvState, VolStatus, World, detach_block, fmt_date,
    new_id,
};

/// Largest user data value accepted.
const MAX_USER_DATA: usize = 1 << 20;

/// A transition to play out after an action was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    PowerOn {
        fail_allocation: bool,
        from_in_place: bool,
    },
    PowerOff,
    StopInPlace,
    Reboot,
    Terminate,
}

/// The servers of `zone` matching the list filters, newest first (or oldest with
/// `order=creation_date_asc`).
pub(crate) fn list<'w>(
    world: &'w World,
    zone: &str,
    query: &crate::sim::paging::Query,
) -> Result<Vec<&'w SimServer>, SimError> {
    let tags = query.list("tags");
    let ids = query.list("servers");
    let state = match query.get("state") {
        None => None,
        Some(text) => Some(SrvState::parse(text).ok_or_else(|| {
            SimError::argument("state", "constraint", format!("unknown state {text:?}"))
        })?),
    };
    let name = query.get("name");
    let commercial_type = query.get("commercial_type");
    let project = query.get("project");
    let organization = query.get("organization");
    let ascending = match query.get("order") {
        None | Some("creation_date_desc") => false,
        Some("creation_date_asc") => true,
        Some(other) => {
            return Err(SimError::argument(
                "order",
                "constraint",
                format!("unknown order {other:?}"),
            ));
        }
    };
    let mut servers: Vec<&SimServer> = world
        .servers
        .values()
        .filter(|s| s.zone == zone)
        .filter(|s| tags.iter().all(|t| s.tags.contains(t)))
        .filter(|s| ids.is_empty() || ids.contains(&s.id))
        .filter(|s| state.is_none_or(|st| s.state == st))
        .filter(|s| name.is_none_or(|n| s.name.contains(n)))
        .filter(|s| commercial_type.is_none_or(|t| s.commercial_type == t))
        .filter(|s| project.is_none_or(|p| s.project == p))
        .filter(|s| organization.is_none_or(|o| s.organization == o))
        .collect();
    servers.sort_by_key(|s| (s.created, s.seq));
    if !ascending {
        servers.reverse();
    }
    Ok(servers)
}

/// `POST /servers/{id}/action`: accepts or refuses the action; on acceptance applies the first
/// step at once and returns the task, the transition and the generation it runs under.
pub(crate) fn action(
    settings: &Settings,
    world: &mut World,
    zone: &str,
    id: &str,
    body: &[u8],
) -> Result<(TaskView, Transition, u64), SimError> {
    let body: Value = parse_body(body)?;
    let action = body
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    *world.actions.entry(action.clone()).or_default() += 1;
    let server = world
        .server_in(zone, id)
        .ok_or_else(|| SimError::server_not_found(id))?;
    let state = server.state;
    if ![
        "poweron",
        "poweroff",
        "stop_in_place",
        "reboot",
        "terminate",
        "backup",
    ]
    .contains(&action.as_str())
    {
        return Err(SimError::argument(
            "action",
            "constraint",
            format!("unknown action {action:?}"),
        ));
    }
    if matches!(state, SrvState::Starting | SrvState::Stopping) {
        return Err(SimError::TransientState {
            resource: "instance_server",
            resource_id: id.to_string(),
            current_state: state.as_str().to_string(),
        });
    }
    if !state.allowed_actions().contains(&action.as_str()) {
        return Err(SimError::InvalidRequest(
            if action == "poweron" {
                "server should be stopped"
            } else {
                "server should be running"
            }
            .to_string(),
        ));
    }
    let commercial_type = server.commercial_type.clone();
    let dynamic_ip_required = server.dynamic_ip_required;
    let has_public_ip = world
        .ips
        .values()
        .any(|ip| ip.server.as_deref() == Some(id));

    let transition = match action.as_str() {
        "poweron" => {
            let from_in_place = state == SrvState::StoppedInPlace;
            if !from_in_place && world.faults.is_out_of_stock(zone, &commercial_type) {
                return Err(SimError::OutOfStock {
                    resource: commercial_type,
                });
            }
            if dynamic_ip_required && !has_public_ip {
                reserve_dynamic_ip(settings, world, zone, id)?;
            }
            let fail_allocation = !from_in_place && world.faults.take_allocation_failure();
            Transition::PowerOn {
                fail_allocation,
                from_in_place,
            }
        }
        "poweroff" => Transition::PowerOff,
        "stop_in_place" => Transition::StopInPlace,
        "reboot" => Transition::Reboot,
        "terminate" => Transition::Terminate,
        _ => {
            return Err(SimError::argument(
                "action",
                "constraint",
                format!("action {action:?} is not simulated"),
            ));
        }
    };
    let now = Utc::now();
    let Some(server) = world.server_in_mut(zone, id) else {
        return Err(SimError::server_not_found(id));
    };
    let (new_state, detail) = match transition {
        Transition::PowerOn {
            from_in_place: false,
            ..
        } => (SrvState::Starting, "allocating node"),
        Transition::PowerOn { .. } => (SrvState::Starting, "booting kernel"),
        Transition::PowerOff | Transition::StopInPlace => (SrvState::Stopping, "stopping"),
        Transition::Reboot => (SrvState::Starting, "rebooting"),
        Transition::Terminate => (SrvState::Stopping, "terminating"),
    };
    server.state = new_state;
    server.state_detail = detail.to_string();
    server.generation += 1;
    server.modified = now;
    let generation = server.generation;
    let task = TaskView {
        id: new_id(),
        description: format!("server_{action}"),
        status: "pending".to_string(),
        href_from: format!("/servers/{id}/action"),
        href_result: format!("/servers/{id}"),
        started_at: fmt_date(now),
        terminated_at: None,
        progress: 0,
        zone: zone.to_string(),
    };
    Ok((task, transition, generation))
}

/// Reserves a dynamic IP for a server being powered on (shown once it runs).
fn reserve_dynamic_ip(
    settings: &Settings,
    world: &mut World,
    zone: &str,
    server_id: &str,
) -> Result<(), SimError> {
    let address = world
        .free_address(settings)
        .ok_or_else(|| SimError::QuotasExceeded {
            resource: "ip_pool".to_string(),
            quota: settings.pool.hosts().count() as u64,
            current: world.ips.len() as u64,
        })?;
    let (project, organization) = world
        .servers
        .get(server_id)
        .map(|s| (s.project.clone(), s.organization.clone()))
        .unwrap_or_default();
    let ip_id = new_id();
    let seq = world.next_seq();
    world.ips.insert(
        ip_id.clone(),
        crate::sim::world::SimIp {
            id: ip_id,
            zone: zone.to_string(),
            address,
            project,
            organization,
            dynamic: true,
            server: Some(server_id.to_string()),
            attached: false,
            tags: Vec::new(),
            seq,
        },
    );
    Ok(())
}

/// `DELETE /servers/{id}`: only a stopped server can be deleted.
pub(crate) fn delete(world: &mut World, zone: &str, id: &str) -> Result<(), SimError> {
    let server = world
        .server_in(zone, id)
        .ok_or_else(|| SimError::server_not_found(id))?;
    match server.state {
        SrvState::Stopped => {}
        SrvState::Starting | SrvState::Stopping => {
            return Err(SimError::TransientState {
                resource: "instance_server",
                resource_id: id.to_string(),
                current_state: server.state.as_str().to_string(),
            });
        }
        SrvState::Running | SrvState::StoppedInPlace => {
            return Err(SimError::InvalidRequest(
                "server should be stopped".to_string(),
            ));
        }
    }
    world.remove_server(id);
    Ok(())
}

/// `PATCH /servers/{id}`: name, tags, dynamic_ip_required.
pub(crate) fn update(world: &mut World, zone: &str, id: &str, body: &[u8]) -> Result<(), SimError> {
    #[derive(Deserialize)]
    struct Patch {
        name: Option<String>,
        tags: Option<Vec<String>>,
        dynamic_ip_required: Option<bool>,
    }
    let patch: Patch = parse_body(body)?;
    if patch.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(SimError::argument(
            "name",
            "constraint",
            "name must not be empty",
        ));
    }
    let server = world
        .server_in_mut(zone, id)
        .ok_or_else(|| SimError::server_not_found(id))?;
    if let Some(name) = patch.name {
        server.name = name;
    }
    if let Some(tags) = patch.tags {
        server.tags = tags;
    }
    if let Some(dynamic) = patch.dynamic_ip_required {
        server.dynamic_ip_required = dynamic;
    }
    server.modified = Utc::now();
    Ok(())
}

/// `POST /servers/{id}/attach-volume` with a block volume.
pub(crate) fn attach_volume(
    world: &mut World,
    zone: &str,
    id: &str,
    body: &[u8],
) -> Result<(), SimError> {
    #[derive(Deserialize)]
    struct Attach {
        volume_id: Option<String>,
        volume_type: Option<String>,
    }
    let req: Attach = parse_body(body)?;
    let volume_id = req
        .volume_id
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SimError::argument("volume_id", "required", "volume_id is required"))?;
    if req
        .volume_type
        .as_deref()
        .is_some_and(|t| t != "sbs_volume")
    {
        return Err(SimError::argument(
            "volume_type",
            "constraint",
            "only sbs_volume volumes can be attached in the simulator",
        ));
    }
    let server = world
        .server_in(zone, id)
        .ok_or_else(|| SimError::server_not_found(id))?;
    if matches!(server.state, SrvState::Starting | SrvState::Stopping) {
        return Err(SimError::TransientState {
            resource: "instance_server",
            resource_id: id.to_string(),
            current_state: server.state.as_str().to_string(),
        });
    }
    let index = (0..).find(|i| !server.volumes.contains_key(i)).unwrap_or(0);
    let volume = world
        .volumes
        .get_mut(&volume_id)
        .filter(|v| v.zone == zone)
        .ok_or_else(|| SimError::NotFound {
            resource: "volume",
            resource_id: volume_id.clone(),
        })?;
    match volume.status {
        VolStatus::Available => {}
        VolStatus::Creating => {
            return Err(SimError::TransientState {
                resource: "volume",
                resource_id: volume_id,
                current_state: "creating".to_string(),
            });
        }
        VolStatus::InUse => {
            return Err(SimError::InvalidRequest(
                "volume is already attached to a server".to_string(),
            ));
        }
    }
    let now = Utc::now();
    volume.status = VolStatus::InUse;
    volume.attachment = Some(Attachment {
        server_id: id.to_string(),
        reference_id: new_id(),
        since: now,
    });
    volume.updated = now;
    if let Some(server) = world.server_in_mut(zone, id) {
        server
            .volumes
            .insert(index, AttachedVolume::Block { id: volume_id });
        server.modified = now;
    }
    Ok(())
}

/// `POST /servers/{id}/detach-volume`.
pub(crate) fn detach_volume(
    world: &mut World,
    zone: &str,
    id: &str,
    body: &[u8],
) -> Result<(), SimError> {
    #[derive(Deserialize)]
    struct Detach {
        volume_id: Option<String>,
    }
    let req: Detach = parse_body(body)?;
    let volume_id = req
        .volume_id
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SimError::argument("volume_id", "required", "volume_id is required"))?;
    let server = world
        .server_in_mut(zone, id)
        .ok_or_else(|| SimError::server_not_found(id))?;
    let index = server
        .volumes
        .iter()
        .find(|(_, v)| v.id() == volume_id)
        .map(|(i, v)| (*i, matches!(v, AttachedVolume::Local { .. })));
    match index {
        None => Err(SimError::InvalidRequest(format!(
            "volume {volume_id} is not attached to this server"
        ))),
        Some((_, true)) => Err(SimError::InvalidRequest(
            "local volumes cannot be detached in the simulator".to_string(),
        )),
        Some((index, false)) => {
            let now = Utc::now();
            server.volumes.remove(&index);
            server.modified = now;
            if let Some(volume) = world.volumes.get_mut(&volume_id) {
                detach_block(volume, now);
            }
            Ok(())
        }
    }
}

fn check_key(key: &str) -> Result<(), SimError> {
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(SimError::argument(
            "key",
            "format",
            "user data keys are made of letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

/// `PATCH /servers/{id}/user_data/{key}`.
pub(crate) fn set_user_data(
    world: &mut World,
    zone: &str,
    id: &str,
    key: &str,
    body: &[u8],
) -> Result<(), SimError> {
    check_key(key)?;
    if body.len() > MAX_USER_DATA {
        return Err(SimError::argument(
            "user_data",
            "constraint",
            "user data is limited to 1 MiB",
        ));
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| SimError::argument("user_data", "format", "user data must be UTF-8 text"))?;
    let server = world
        .server_in_mut(zone, id)
        .ok_or_else(|| SimError::server_not_found(id))?;
    server.user_data.insert(key.to_string(), text);
    Ok(())
}

/// `GET /servers/{id}/user_data/{key}`.
pub(crate) fn get_user_data(
    world: &World,
    zone: &str,
    id: &str,
    key: &str,
) -> Result<String, SimError> {
    let server = world
        .server_in(zone, id)
        .ok_or_else(|| SimError::server_not_found(id))?;
    server
        .user_data
        .get(key)
        .cloned()
        .ok_or_else(|| SimError::NotFound {
            resource: "user_data",
            resource_id: key.to_string(),
        })
}

/// `DELETE /servers/{id}/user_data/{key}`.
pub(crate) fn delete_user_data(
    world: &mut World,
    zone: &str,
    id: &str,
    key: &str,
) -> Result<(), SimError> {
    let server = world
        .server_in_mut(zone, id)
        .ok_or_else(|| SimError::server_not_found(id))?;
    server
        .user_data
        .remove(key)
        .map(|_| ())
        .ok_or_else(|| SimError::NotFound {
            resource: "user_data",
            resource_id: key.to_string(),
        })
}
