//! `POST /servers`: validation of a creation request, then the stopped server with its volumes
//! (default root volume, new or existing block volumes, local SSDs) and flexible IPs.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Deserialize;

use super::{check_project, parse_body};
use crate::sim::catalog;
use crate::sim::config::Settings;
use crate::sim::error::{ArgumentError, SimError};
use crate::sim::world::{
    AttachedVolume, Attachment, SimServer, SimVolume, SrvState, VolStatus, World, new_id,
};

/// Size of the root volume when a creation names none (20 GB, like Scaleway's default).
const DEFAULT_ROOT_SIZE: u64 = 20_000_000_000;

#[derive(Deserialize)]
struct CreateServerBody {
    name: Option<String>,
    commercial_type: Option<String>,
    image: Option<String>,
    #[serde(default)]
    volumes: BTreeMap<String, VolumeBody>,
    dynamic_ip_required: Option<bool>,
    #[serde(default)]
    public_ips: Vec<String>,
    boot_type: Option<String>,
    project: Option<String>,
    organization: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    security_group: Option<String>,
}

#[derive(Deserialize)]
struct VolumeBody {
    id: Option<String>,
    name: Option<String>,
    size: Option<u64>,
    volume_type: Option<String>,
    base_snapshot: Option<String>,
}

fn arg(name: impl Into<String>, reason: &'static str, help: impl Into<String>) -> ArgumentError {
    ArgumentError {
        argument_name: name.into(),
        reason,
        help_message: help.into(),
    }
}

/// `POST /servers`: validates, then creates a stopped server. Returns its id.
pub(crate) fn create(
    settings: &Settings,
    world: &mut World,
    zone: &str,
    body: &[u8],
) -> Result<String, SimError> {
    let req: CreateServerBody = parse_body(body)?;
    let mut errors = Vec::new();

    let name = req.name.clone().unwrap_or_default();
    if name.trim().is_empty() {
        errors.push(arg("name", "required", "name is required"));
    }
    let entry = match req.commercial_type.as_deref() {
        None | Some("") => {
            errors.push(arg(
                "commercial_type",
                "required",
                "commercial_type is required",
            ));
            None
        }
        Some(t) => {
            let found = catalog::find(t);
            if found.is_none() {
                errors.push(arg(
                    "commercial_type",
                    "constraint",
                    format!("unknown commercial type {t:?} in zone {zone}"),
                ));
            }
            found
        }
    };
    let owner = match (req.project.as_deref(), req.organization.as_deref()) {
        (Some(p), None) if !p.is_empty() => Some((p.to_string(), p.to_string())),
        (None, Some(o)) if !o.is_empty() => Some((o.to_string(), o.to_string())),
        _ => {
            errors.push(arg(
                "project",
                "constraint",
                "exactly one of project and organization must be set",
            ));
            None
        }
    };
    let has_boot_volume = req
        .volumes
        .get("0")
        .is_some_and(|v| v.id.is_some() || v.base_snapshot.is_some());
    if req.image.as_deref().is_none_or(str::is_empty) && !has_boot_volume {
        errors.push(arg(
            "image",
            "required",
            "an image (or a root volume from a snapshot) is required",
        ));
    }
    let boot_type = req.boot_type.clone().unwrap_or_else(|| "local".to_string());
    if !matches!(boot_type.as_str(), "local" | "bootscript" | "rescue") {
        errors.push(arg(
            "boot_type",
            "constraint",
            "boot_type must be local, bootscript or rescue",
        ));
    }
    let mut indexes = BTreeMap::new();
    for (key, volume) in &req.volumes {
        let Ok(index) = key.parse::<u32>() else {
            errors.push(arg(
                format!("volumes.{key}"),
                "format",
                "volume keys are indexes",
            ));
            continue;
        };
        indexes.insert(index, volume);
        if volume.id.is_some() {
            continue;
        }
        match volume.volume_type.as_deref() {
            Some("l_ssd") => {
                if entry.is_some_and(|e| !e.local_storage) {
                    errors.push(arg(
                        format!("volumes.{key}.volume_type"),
                        "constraint",
                        format!(
                            "{} has no local storage: use sbs_volume",
                            req.commercial_type.as_deref().unwrap_or_default()
                        ),
                    ));
                }
            }
            Some("sbs_volume") => {}
            other => errors.push(arg(
                format!("volumes.{key}.volume_type"),
                "constraint",
                format!("volume_type must be l_ssd or sbs_volume, got {other:?}"),
            )),
        }
        if volume.size.is_none_or(|s| s < 1_000_000_000) && volume.base_snapshot.is_none() {
            errors.push(arg(
                format!("volumes.{key}.size"),
                "constraint",
                "size must be at least 1 GB (in bytes)",
            ));
        }
    }
    for ip_id in &req.public_ips {
        match world.ips.get(ip_id) {
            Some(ip) if ip.zone == zone && ip.server.is_none() && !ip.dynamic => {}
            _ => errors.push(arg(
                "public_ips",
                "constraint",
                format!("{ip_id} is not a detached flexible IP of {zone}"),
            )),
        }
    }
    // Existing volumes must be available in this zone.
    for (index, volume) in &indexes {
        if let Some(id) = &volume.id {
            match world.volumes.get(id) {
                Some(v) if v.zone == zone && v.status == VolStatus::Available => {}
                Some(v) if v.zone == zone => errors.push(arg(
                    format!("volumes.{index}.id"),
                    "constraint",
                    format!("volume {id} is {}", v.status.as_str()),
                )),
                _ => errors.push(arg(
                    format!("volumes.{index}.id"),
                    "constraint",
                    format!("volume {id} not found in {zone}"),
                )),
            }
        }
    }
    let (Some(entry), Some((project, organization)), true) = (entry, owner, errors.is_empty())
    else {
        return Err(SimError::InvalidArguments(errors));
    };
    check_project(settings, &project, "instance_server")?;

    if world.faults.is_out_of_stock(zone, entry.commercial_type) {
        return Err(SimError::OutOfStock {
            resource: entry.commercial_type.to_string(),
        });
    }
    if entry.is_gpu() {
        let quota = u64::from(
            world
                .faults
                .quota_gpu_servers_per_zone
                .unwrap_or(settings.gpu_quota_per_zone),
        );
        let current = world
            .servers
            .values()
            .filter(|s| s.zone == zone)
            .filter(|s| catalog::find(&s.commercial_type).is_some_and(|e| e.is_gpu()))
            .count() as u64;
        if current >= quota {
            return Err(SimError::QuotasExceeded {
                resource: "instances_gpu_servers".to_string(),
                quota,
                current,
            });
        }
    }

    let now = Utc::now();
    let id = new_id();
    let mut volumes = BTreeMap::new();
    let default_root = VolumeBody {
        id: None,
        name: None,
        size: Some(DEFAULT_ROOT_SIZE),
        volume_type: None,
        base_snapshot: None,
    };
    if indexes.is_empty() {
        indexes.insert(0, &default_root);
    }
    for (index, volume) in indexes {
        let attached = if let Some(existing) = &volume.id {
            if let Some(v) = world.volumes.get_mut(existing) {
                v.status = VolStatus::InUse;
                v.attachment = Some(Attachment {
                    server_id: id.clone(),
                    reference_id: new_id(),
                    since: now,
                });
                v.updated = now;
            }
            AttachedVolume::Block {
                id: existing.clone(),
            }
        } else {
            let size = volume.size.unwrap_or(DEFAULT_ROOT_SIZE);
            let local = match volume.volume_type.as_deref() {
                Some(t) => t == "l_ssd",
                None => entry.local_storage,
            };
            let volume_name = volume
                .name
                .clone()
                .unwrap_or_else(|| format!("{name}-vol-{index}"));
            if local {
                AttachedVolume::Local {
                    id: new_id(),
                    name: volume_name,
                    size,
                }
            } else {
                let volume_id = new_id();
                let seq = world.next_seq();
                world.volumes.insert(
                    volume_id.clone(),
                    SimVolume {
                        id: volume_id.clone(),
                        zone: zone.to_string(),
                        name: volume_name,
                        project_id: project.clone(),
                        size,
                        perf_iops: 5000,
                        status: VolStatus::InUse,
                        tags: Vec::new(),
                        created: now,
                        updated: now,
                        attachment: Some(Attachment {
                            server_id: id.clone(),
                            reference_id: new_id(),
                            since: now,
                        }),
                        last_detached_at: None,
                        seq,
                    },
                );
                AttachedVolume::Block { id: volume_id }
            }
        };
        volumes.insert(index, attached);
    }
    for ip_id in &req.public_ips {
        if let Some(ip) = world.ips.get_mut(ip_id) {
            ip.server = Some(id.clone());
            ip.attached = true;
        }
    }
    let image = req.image.filter(|i| !i.is_empty()).map(|label| {
        let image_id = if uuid::Uuid::parse_str(&label).is_ok() {
            label.clone()
        } else {
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, label.as_bytes()).to_string()
        };
        (image_id, label)
    });
    let security_group = req.security_group.unwrap_or_else(|| {
        uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("sg/{zone}/{project}").as_bytes(),
        )
        .to_string()
    });
    let seq = world.next_seq();
    world.servers.insert(
        id.clone(),
        SimServer {
            id: id.clone(),
            zone: zone.to_string(),
            name,
            project,
            organization,
            commercial_type: entry.commercial_type.to_string(),
            state: SrvState::Stopped,
            state_detail: String::new(),
            tags: req.tags,
            image,
            volumes,
            dynamic_ip_required: req.dynamic_ip_required.unwrap_or(true),
            boot_type,
            security_group,
            created: now,
            modified: now,
            seq,
            generation: 0,
            user_data: BTreeMap::new(),
        },
    );
    Ok(id)
}
