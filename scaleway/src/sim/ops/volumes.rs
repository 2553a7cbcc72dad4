//! Block Storage volume operations (`/block/v1alpha1/zones/{zone}/volumes`).

use chrono::Utc;
use serde::Deserialize;

use super::{check_project, parse_body};
use crate::sim::config::Settings;
use crate::sim::error::{ArgumentError, SimError};
use crate::sim::paging::Query;
use crate::sim::world::{SimVolume, VolStatus, World, new_id};

/// Smallest and largest volume, in bytes.
const MIN_SIZE: u64 = 1_000_000_000;
const MAX_SIZE: u64 = 10_000_000_000_000;

#[derive(Deserialize)]
struct CreateVolumeBody {
    name: Option<String>,
    project_id: Option<String>,
    from_empty: Option<FromEmpty>,
    from_snapshot: Option<serde_json::Value>,
    perf_iops: Option<u32>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct FromEmpty {
    size: Option<u64>,
}

fn not_found(id: &str) -> SimError {
    SimError::NotFound {
        resource: "volume",
        resource_id: id.to_string(),
    }
}

/// Creates an empty volume in `creating` status; returns its id.
pub(crate) fn create(
    settings: &Settings,
    world: &mut World,
    zone: &str,
    body: &[u8],
) -> Result<String, SimError> {
    let req: CreateVolumeBody = parse_body(body)?;
    let mut errors = Vec::new();
    let project_id = req.project_id.clone().filter(|p| !p.is_empty());
    if project_id.is_none() {
        errors.push(ArgumentError {
            argument_name: "project_id".to_string(),
            reason: "required",
            help_message: "project_id is required".to_string(),
        });
    }
    if req.from_snapshot.is_some() {
        errors.push(ArgumentError {
            argument_name: "from_snapshot".to_string(),
            reason: "constraint",
            help_message: "the simulator only creates empty volumes (from_empty)".to_string(),
        });
    }
    let size = req.from_empty.as_ref().and_then(|f| f.size);
    match size {
        None => errors.push(ArgumentError {
            argument_name: "from_empty.size".to_string(),
            reason: "required",
            help_message: "from_empty.size (bytes) is required".to_string(),
        }),
        Some(s) if !(MIN_SIZE..=MAX_SIZE).contains(&s) => errors.push(ArgumentError {
            argument_name: "from_empty.size".to_string(),
            reason: "constraint",
            help_message: format!("size must be between {MIN_SIZE} and {MAX_SIZE} bytes"),
        }),
        Some(_) => {}
    }
    let perf_iops = req.perf_iops.unwrap_or(5000);
    if perf_iops != 5000 && perf_iops != 15000 {
        errors.push(ArgumentError {
            argument_name: "perf_iops".to_string(),
            reason: "constraint",
            help_message: "perf_iops must be 5000 or 15000".to_string(),
        });
    }
    let (Some(project_id), Some(size), true) = (project_id, size, errors.is_empty()) else {
        return Err(SimError::InvalidArguments(errors));
    };
    check_project(settings, &project_id, "volume")?;
    let now = Utc::now();
    let id = new_id();
    let seq = world.next_seq();
    let name = req
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("vol-{}", &id[..8]));
    world.volumes.insert(
        id.clone(),
        SimVolume {
            id: id.clone(),
            zone: zone.to_string(),
            name,
            project_id,
            size,
            perf_iops,
            status: VolStatus::Creating,
            tags: req.tags,
            created: now,
            updated: now,
            attachment: None,
            last_detached_at: None,
            seq,
        },
    );
    Ok(id)
}

/// The volume `id` of `zone`.
pub(crate) fn get<'w>(world: &'w World, zone: &str, id: &str) -> Result<&'w SimVolume, SimError> {
    world
        .volumes
        .get(id)
        .filter(|v| v.zone == zone)
        .ok_or_else(|| not_found(id))
}

/// Volumes of `zone` matching `tags` (all), `project_id`, `name` (substring), oldest first.
pub(crate) fn list<'w>(world: &'w World, zone: &str, query: &Query) -> Vec<&'w SimVolume> {
    let tags = query.list("tags");
    let project = query.get("project_id");
    let name = query.get("name");
    let mut volumes: Vec<&SimVolume> = world
        .volumes
        .values()
        .filter(|v| v.zone == zone)
        .filter(|v| tags.iter().all(|t| v.tags.contains(t)))
        .filter(|v| project.is_none_or(|p| v.project_id == p))
        .filter(|v| name.is_none_or(|n| v.name.contains(n)))
        .collect();
    volumes.sort_by_key(|v| (v.created, v.seq));
    volumes
}

/// Deletes a volume: refused while attached (412) or still being created (409).
pub(crate) fn delete(world: &mut World, zone: &str, id: &str) -> Result<(), SimError> {
    let volume = get(world, zone, id)?;
    match volume.status {
        VolStatus::Available => {
            world.volumes.remove(id);
            Ok(())
        }
        VolStatus::InUse => Err(SimError::PreconditionFailed {
            precondition: "resource_still_in_use",
            help_message: format!(
                "volume is attached to server {}: detach it first",
                volume
                    .attachment
                    .as_ref()
                    .map(|a| a.server_id.as_str())
                    .unwrap_or("?")
            ),
        }),
        VolStatus::Creating => Err(SimError::TransientState {
            resource: "volume",
            resource_id: id.to_string(),
            current_state: "creating".to_string(),
        }),
    }
}

/// The step after creation: `creating` -> `available`.
pub(crate) fn finish_creation(world: &mut World, id: &str) {
    if let Some(volume) = world.volumes.get_mut(id)
        && volume.status == VolStatus::Creating
    {
        volume.status = VolStatus::Available;
        volume.updated = Utc::now();
    }
}
