//! Accepting a new instance from the catalog facts the API looked up.

use super::{Decision, zone_code};
use crate::catalog::{Provider, validate_type_code};
use crate::instance::{InstanceError, InstanceEvent, InstanceRequested, RequestInstance};
use crate::model::validate_repo_id;

/// The data volume sizes a request may ask for, in GB (as for models).
const DATA_VOLUME_GB: std::ops::RangeInclusive<u32> = 10..=100_000;

pub(super) fn request(cmd: RequestInstance) -> Decision {
    let zone = zone_code(&cmd.zone)?;
    let mut allowed_zones = vec![zone.clone()];
    for z in &cmd.allowed_zones {
        let z = zone_code(z)?;
        if !allowed_zones.contains(&z) {
            allowed_zones.push(z);
        }
    }
    let instance_type = cmd.instance_type.trim().to_ascii_uppercase();
    validate_type_code(&instance_type).map_err(|_| InstanceError::InvalidInstanceType {
        value: instance_type.chars().take(64).collect(),
    })?;
    let model_repo = cmd.model_repo.trim().to_string();
    validate_repo_id(&model_repo).map_err(|_| InstanceError::InvalidModelRepo {
        value: model_repo.chars().take(200).collect(),
    })?;
    if cmd.gpu_count == 0 || cmd.vram_per_gpu_gb == 0 {
        return Err(InstanceError::InvalidGpuSpec {
            gpu_count: cmd.gpu_count,
            vram_per_gpu_gb: cmd.vram_per_gpu_gb,
        });
    }
    if !cmd.model_active {
        return Err(InstanceError::ModelInactive { model_repo });
    }
    let total_vram_gb = u64::from(cmd.gpu_count) * u64::from(cmd.vram_per_gpu_gb);
    if total_vram_gb < u64::from(cmd.model_required_vram_gb) {
        return Err(InstanceError::IncompatibleModel {
            required_vram_gb: cmd.model_required_vram_gb,
            total_vram_gb,
        });
    }
    if !cmd.type_available_in_zone {
        return Err(InstanceError::TypeNotAvailableInZone {
            instance_type,
            zone,
        });
    }
    let data_volume_gb = u32::try_from(cmd.data_volume_gb)
        .ok()
        .filter(|v| DATA_VOLUME_GB.contains(v))
        .ok_or(InstanceError::InvalidDataVolume {
            value: cmd.data_volume_gb,
        })?;
    if cmd.hourly_price_micro_eur < 0 {
        return Err(InstanceError::InvalidPrice {
            value: cmd.hourly_price_micro_eur,
        });
    }
    Ok(vec![InstanceEvent::InstanceRequested(InstanceRequested {
        model_id: cmd.model_id,
        model_repo,
        model_required_vram_gb: cmd.model_required_vram_gb,
        zone,
        allowed_zones,
        instance_type,
        gpu_count: cmd.gpu_count,
        vram_per_gpu_gb: cmd.vram_per_gpu_gb,
        hourly_price_micro_eur: cmd.hourly_price_micro_eur,
        data_volume_gb,
        vllm_mode: cmd.vllm_mode,
        provider: Provider::Scaleway,
    })])
}
