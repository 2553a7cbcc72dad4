use super::{
    CatalogError, InstanceType, InstanceTypeChanges, InstanceTypeCommand, InstanceTypeEvent,
    InstanceTypeRegistered, RegisterInstanceType, UpdateInstanceType, Zone, ZoneCommand, ZoneEvent,
    ZoneRegistered, validate_type_code, validate_zone_code,
};

/// The rules of a zone. As for models, a command that would change nothing succeeds with no
/// event, so retrying it is harmless.
pub fn decide_zone(zone: &Zone, command: ZoneCommand) -> Result<Vec<ZoneEvent>, CatalogError> {
    match (&zone.state, command) {
        (Some(s), ZoneCommand::Register(_)) => Err(CatalogError::ZoneAlreadyRegistered {
            code: s.code.clone(),
        }),
        (None, ZoneCommand::Register(cmd)) => {
            let code = cmd.code.trim().to_string();
            validate_zone_code(&code)?;
            Ok(vec![ZoneEvent::ZoneRegistered(ZoneRegistered {
                provider: cmd.provider,
                code,
                display_name: display_name(&cmd.display_name)?,
                active: cmd.active,
            })])
        }
        (None, _) => Err(CatalogError::ZoneNotRegistered),
        (Some(s), ZoneCommand::Update(cmd)) => match cmd.display_name {
            Some(v) => {
                let v = display_name(&v)?;
                Ok(if v == s.display_name {
                    vec![]
                } else {
                    vec![ZoneEvent::ZoneRenamed { display_name: v }]
                })
            }
            None => Ok(vec![]),
        },
        (Some(s), ZoneCommand::Activate) => Ok(toggle(!s.active, ZoneEvent::ZoneActivated)),
        (Some(s), ZoneCommand::Deactivate) => Ok(toggle(s.active, ZoneEvent::ZoneDeactivated)),
    }
}

/// The rules of an instance type.
pub fn decide_instance_type(
    it: &InstanceType,
    command: InstanceTypeCommand,
) -> Result<Vec<InstanceTypeEvent>, CatalogError> {
    use InstanceTypeCommand as C;
    use InstanceTypeEvent as E;
    match (&it.state, command) {
        (Some(s), C::Register(_)) => Err(CatalogError::TypeAlreadyRegistered {
            code: s.code.clone(),
        }),
        (None, C::Register(cmd)) => register_type(cmd).map(|e| vec![e]),
        (None, _) => Err(CatalogError::TypeNotRegistered),
        (Some(s), C::Update(cmd)) => {
            let c = update_type(cmd)?;
            // Keep only what differs from the current state.
            let changes = InstanceTypeChanges {
                gpu_model: c.gpu_model.filter(|v| *v != s.gpu_model),
                gpu_count: c.gpu_count.filter(|v| *v != s.gpu_count),
                vram_per_gpu_gb: c.vram_per_gpu_gb.filter(|v| *v != s.vram_per_gpu_gb),
                vcpus: c.vcpus.filter(|v| *v != s.vcpus),
                ram_gb: c.ram_gb.filter(|v| *v != s.ram_gb),
                hourly_price_micro_eur: c
                    .hourly_price_micro_eur
                    .filter(|v| *v != s.hourly_price_micro_eur),
            };
            Ok(if changes.is_empty() {
                vec![]
            } else {
                vec![E::InstanceTypeUpdated(changes)]
            })
        }
        (Some(s), C::SetAvailability { zone, availability }) => {
            let zone = zone.trim().to_string();
            validate_zone_code(&zone)?;
            let current = s.availability.get(&zone).copied();
            Ok(match availability {
                a if a == current => vec![],
                Some(availability) => vec![E::InstanceTypeAvailabilitySet { zone, availability }],
                None => vec![E::InstanceTypeAvailabilityCleared { zone }],
            })
        }
        (Some(s), C::Activate) => Ok(toggle(!s.active, E::InstanceTypeActivated)),
        (Some(s), C::Deactivate) => Ok(toggle(s.active, E::InstanceTypeDeactivated)),
    }
}

fn toggle<E>(changes: bool, event: E) -> Vec<E> {
    if changes { vec![event] } else { vec![] }
}

fn register_type(cmd: RegisterInstanceType) -> Result<InstanceTypeEvent, CatalogError> {
    let code = cmd.code.trim().to_ascii_uppercase();
    validate_type_code(&code)?;
    for zone in cmd.availability.keys() {
        validate_zone_code(zone)?;
    }
    Ok(InstanceTypeEvent::InstanceTypeRegistered(
        InstanceTypeRegistered {
            provider: cmd.provider,
            code,
            gpu_model: gpu_model(&cmd.gpu_model)?,
            gpu_count: in_range(cmd.gpu_count, 64, |value| {
                CatalogError::GpuCountOutOfRange { value }
            })?,
            vram_per_gpu_gb: in_range(cmd.vram_per_gpu_gb, 1024, |value| {
                CatalogError::VramOutOfRange { value }
            })?,
            vcpus: in_range(cmd.vcpus, 4096, |value| CatalogError::VcpusOutOfRange {
                value,
            })?,
            ram_gb: in_range(cmd.ram_gb, 65_536, |value| CatalogError::RamOutOfRange {
                value,
            })?,
            hourly_price_micro_eur: price(cmd.hourly_price_micro_eur)?,
            availability: cmd.availability,
            active: cmd.active,
        },
    ))
}

/// Validates every given field; the whole update is refused if one is invalid.
fn update_type(cmd: UpdateInstanceType) -> Result<InstanceTypeChanges, CatalogError> {
    Ok(InstanceTypeChanges {
        gpu_model: cmd.gpu_model.as_deref().map(gpu_model).transpose()?,
        gpu_count: cmd
            .gpu_count
            .map(|v| in_range(v, 64, |value| CatalogError::GpuCountOutOfRange { value }))
            .transpose()?,
        vram_per_gpu_gb: cmd
            .vram_per_gpu_gb
            .map(|v| in_range(v, 1024, |value| CatalogError::VramOutOfRange { value }))
            .transpose()?,
        vcpus: cmd
            .vcpus
            .map(|v| in_range(v, 4096, |value| CatalogError::VcpusOutOfRange { value }))
            .transpose()?,
        ram_gb: cmd
            .ram_gb
            .map(|v| in_range(v, 65_536, |value| CatalogError::RamOutOfRange { value }))
            .transpose()?,
        hourly_price_micro_eur: cmd.hourly_price_micro_eur.map(price).transpose()?,
    })
}

fn in_range(
    value: i64,
    max: u32,
    error: impl FnOnce(i64) -> CatalogError,
) -> Result<u32, CatalogError> {
    u32::try_from(value)
        .ok()
        .filter(|v| (1..=max).contains(v))
        .ok_or_else(|| error(value))
}

fn price(value: i64) -> Result<i64, CatalogError> {
    if (1..=1_000_000_000_000).contains(&value) {
        Ok(value)
    } else {
        Err(CatalogError::PriceOutOfRange { value })
    }
}

fn gpu_model(value: &str) -> Result<String, CatalogError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > 64 {
        return Err(CatalogError::InvalidGpuModel);
    }
    Ok(v.to_string())
}

fn display_name(value: &str) -> Result<String, CatalogError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(CatalogError::EmptyDisplayName);
    }
    if v.chars().count() > 200 {
        return Err(CatalogError::DisplayNameTooLong);
    }
    Ok(v.to_string())
}
