use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Availability, Provider};

/// Commands on a zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ZoneCommand {
    Register(RegisterZone),
    Update(UpdateZone),
    Activate,
    Deactivate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterZone {
    pub provider: Provider,
    pub code: String,
    pub display_name: String,
    pub active: bool,
}

/// A partial update: absent fields keep their value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateZone {
    pub display_name: Option<String>,
}

/// Commands on an instance type. Numbers are signed so that a zero or negative value is a
/// domain rejection with a typed error, not a parse failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InstanceTypeCommand {
    Register(RegisterInstanceType),
    Update(UpdateInstanceType),
    /// Records what the provider says about the type in `zone`; `None` forgets it (the type
    /// is then not offered there at all).
    SetAvailability {
        zone: String,
        availability: Option<Availability>,
    },
    Activate,
    Deactivate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterInstanceType {
    pub provider: Provider,
    pub code: String,
    pub gpu_model: String,
    pub gpu_count: i64,
    pub vram_per_gpu_gb: i64,
    pub vcpus: i64,
    pub ram_gb: i64,
    /// Integer micro-euros per hour: 0.75 EUR/h is 750000. Never a float.
    pub hourly_price_micro_eur: i64,
    /// Availability per zone code at registration.
    pub availability: BTreeMap<String, Availability>,
    pub active: bool,
}

/// A partial update of the specification or the price: absent fields keep their value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateInstanceType {
    pub gpu_model: Option<String>,
    pub gpu_count: Option<i64>,
    pub vram_per_gpu_gb: Option<i64>,
    pub vcpus: Option<i64>,
    pub ram_gb: Option<i64>,
    pub hourly_price_micro_eur: Option<i64>,
}
