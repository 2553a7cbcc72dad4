//! Flexible IP operations (`/instance/v1/zones/{zone}/ips`).

use serde::Deserialize;
use serde_json::Value;

use super::{check_project, parse_body};
use crate::sim::config::Settings;
use crate::sim::error::SimError;
use crate::sim::world::{SimIp, World, new_id};

#[derive(Deserialize)]
struct CreateIpBody {
    project: Option<String>,
    organization: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(rename = "type")]
    ip_type: Option<String>,
    server: Option<String>,
}

fn not_found(id: &str) -> SimError {
    SimError::NotFound {
        resource: "ip",
        resource_id: id.to_string(),
    }
}

/// Creates a flexible IP from the pool (optionally attached to `server`); returns its id.
pub(crate) fn create(
    settings: &Settings,
    world: &mut World,
    zone: &str,
    body: &[u8],
) -> Result<String, SimError> {
    let req: CreateIpBody = parse_body(body)?;
    let owner = match (req.project.as_deref(), req.organization.as_deref()) {
        (Some(p), None) if !p.is_empty() => p.to_string(),
        (None, Some(o)) if !o.is_empty() => o.to_string(),
        _ => {
            return Err(SimError::argument(
                "project",
                "constraint",
                "exactly one of project and organization must be set",
            ));
        }
    };
    if req.ip_type.as_deref().is_some_and(|t| t != "routed_ipv4") {
        return Err(SimError::argument(
            "type",
            "constraint",
            "the simulator only offers routed_ipv4",
        ));
    }
    check_project(settings, &owner, "ip")?;
    if let Some(server) = &req.server
        && world.server_in(zone, server).is_none()
    {
        return Err(SimError::server_not_found(server));
    }
    let address = world
        .free_address(settings)
        .ok_or_else(|| SimError::QuotasExceeded {
            resource: "ip_pool".to_string(),
            quota: settings.pool.hosts().count() as u64,
            current: world.ips.len() as u64,
        })?;
    let id = new_id();
    let seq = world.next_seq();
    world.ips.insert(
        id.clone(),
        SimIp {
            id: id.clone(),
            zone: zone.to_string(),
            address,
            project: owner.clone(),
            organization: owner,
            dynamic: false,
            attached: req.server.is_some(),
            server: req.server,
            tags: req.tags,
            seq,
        },
    );
    Ok(id)
}

/// The flexible IP `id` of `zone` (dynamic IPs are not exposed through this API).
pub(crate) fn get<'w>(world: &'w World, zone: &str, id: &str) -> Result<&'w SimIp, SimError> {
    world
        .ips
        .get(id)
        .filter(|ip| ip.zone == zone && !ip.dynamic)
        .ok_or_else(|| not_found(id))
}

/// `PATCH /ips/{id}`: `{"server": id}` attaches (moving it if needed), `{"server": null}`
/// detaches; `tags` replaces the tags.
pub(crate) fn update(world: &mut World, zone: &str, id: &str, body: &[u8]) -> Result<(), SimError> {
    let patch: serde_json::Map<String, Value> = parse_body(body)?;
    get(world, zone, id)?;
    let server = match patch.get("server") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(server)) => {
            if world.server_in(zone, server).is_none() {
                return Err(SimError::server_not_found(server));
            }
            Some(Some(server.clone()))
        }
        Some(_) => {
            return Err(SimError::argument(
                "server",
                "format",
                "server must be a server id or null",
            ));
        }
    };
    let tags = match patch.get("tags") {
        None => None,
        Some(value) => Some(
            serde_json::from_value::<Vec<String>>(value.clone())
                .map_err(|e| SimError::argument("tags", "format", e.to_string()))?,
        ),
    };
    if let Some(ip) = world.ips.get_mut(id) {
        if let Some(server) = server {
            ip.attached = server.is_some();
            ip.server = server;
        }
        if let Some(tags) = tags {
            ip.tags = tags;
        }
    }
    Ok(())
}

/// Deletes a flexible IP (detaching it first if needed).
pub(crate) fn delete(world: &mut World, zone: &str, id: &str) -> Result<(), SimError> {
    get(world, zone, id)?;
    world.ips.remove(id);
    Ok(())
}
