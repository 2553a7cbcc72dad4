use std::collections::BTreeMap;

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{Availability, Provider};

/// Facts about a zone, named in the past tense.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ZoneEvent {
    ZoneRegistered(ZoneRegistered),
    ZoneRenamed { display_name: String },
    ZoneActivated,
    ZoneDeactivated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneRegistered {
    pub provider: Provider,
    pub code: String,
    pub display_name: String,
    pub active: bool,
}

/// Facts about an instance type, named in the past tense. Names carry the aggregate's name
/// because event types share one global stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InstanceTypeEvent {
    InstanceTypeRegistered(InstanceTypeRegistered),
    InstanceTypeUpdated(InstanceTypeChanges),
    InstanceTypeAvailabilitySet {
        zone: String,
        availability: Availability,
    },
    InstanceTypeAvailabilityCleared {
        zone: String,
    },
    InstanceTypeActivated,
    InstanceTypeDeactivated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceTypeRegistered {
    pub provider: Provider,
    pub code: String,
    pub gpu_model: String,
    pub gpu_count: u32,
    pub vram_per_gpu_gb: u32,
    pub vcpus: u32,
    pub ram_gb: u32,
    pub hourly_price_micro_eur: i64,
    pub availability: BTreeMap<String, Availability>,
    pub active: bool,
}

/// The fields an update changed, with their new values; unchanged fields are absent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstanceTypeChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram_per_gpu_gb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_gb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_price_micro_eur: Option<i64>,
}

impl InstanceTypeChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl DomainEvent for ZoneEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ZoneRegistered(_) => "ZoneRegistered",
            Self::ZoneRenamed { .. } => "ZoneRenamed",
            Self::ZoneActivated => "ZoneActivated",
            Self::ZoneDeactivated => "ZoneDeactivated",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

impl DomainEvent for InstanceTypeEvent {
    fn event_type(&self) -> String {
        match self {
            Self::InstanceTypeRegistered(_) => "InstanceTypeRegistered",
            Self::InstanceTypeUpdated(_) => "InstanceTypeUpdated",
            Self::InstanceTypeAvailabilitySet { .. } => "InstanceTypeAvailabilitySet",
            Self::InstanceTypeAvailabilityCleared { .. } => "InstanceTypeAvailabilityCleared",
            Self::InstanceTypeActivated => "InstanceTypeActivated",
            Self::InstanceTypeDeactivated => "InstanceTypeDeactivated",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
