//! The GPU catalog: providers, their zones, and the instance types a model can be served on.
//!
//! Two aggregates, [`Zone`] and [`InstanceType`], each narrow: a zone knows nothing of the
//! types offered in it, and a type only records, per zone code, what the provider says about
//! its availability. Whether a zone code names a registered zone is a fact the caller looks up
//! before sending the command (the API does), as for any fact from outside an aggregate.

mod aggregate;
mod commands;
mod compat;
mod decide;
mod errors;
mod events;
pub mod seed;

pub use aggregate::{InstanceType, InstanceTypeState, Zone, ZoneState};
pub use commands::{
    InstanceTypeCommand, RegisterInstanceType, RegisterZone, UpdateInstanceType, UpdateZone,
    ZoneCommand,
};
pub use compat::{fits, format_micro_eur};
pub use decide::{decide_instance_type, decide_zone};
pub use errors::CatalogError;
pub use events::{
    InstanceTypeChanges, InstanceTypeEvent, InstanceTypeRegistered, ZoneEvent, ZoneRegistered,
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A cloud provider whose GPU machines the platform rents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    #[default]
    Scaleway,
}

impl Provider {
    /// The provider's name as stored and shown (`scaleway`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scaleway => "scaleway",
        }
    }
}

/// What the provider says about an instance type in a zone, in Scaleway's own words
/// (`GET /products/servers/availability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Available,
    Scarce,
    Shortage,
}

impl Availability {
    /// The stored and shown name (`available`, `scarce`, `shortage`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Scarce => "scarce",
            Self::Shortage => "shortage",
        }
    }

    /// Whether a new instance can reasonably be asked for: scarce types may still be granted.
    pub fn can_provision(self) -> bool {
        matches!(self, Self::Available | Self::Scarce)
    }
}

const ZONE_NAMESPACE: Uuid = Uuid::from_u128(0x2f4b_9a61_0c3e_4d7a_8b15_6e2c_70a1_5a0e);
const TYPE_NAMESPACE: Uuid = Uuid::from_u128(0x8c57_13d2_4e9b_4a06_a3f1_d94e_22b7_7c1f);

/// Identifier of a zone aggregate: UUID v5 of `"{provider}:{code}"`, so registering the same
/// zone twice lands on the same aggregate and is refused by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ZoneId(pub Uuid);

impl ZoneId {
    pub fn new(provider: Provider, code: &str) -> Self {
        let key = format!("{}:{}", provider.as_str(), code.trim());
        Self(Uuid::new_v5(&ZONE_NAMESPACE, key.as_bytes()))
    }
}

/// Identifier of an instance type aggregate: UUID v5 of `"{provider}:{CODE}"` (codes are
/// upper case, as Scaleway spells them, whatever case the caller used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceTypeId(pub Uuid);

impl InstanceTypeId {
    pub fn new(provider: Provider, code: &str) -> Self {
        let key = format!("{}:{}", provider.as_str(), code.trim().to_ascii_uppercase());
        Self(Uuid::new_v5(&TYPE_NAMESPACE, key.as_bytes()))
    }
}

/// Checks a zone code such as `fr-par-2`: 3 to 32 lowercase letters, digits and dashes, not
/// starting or ending with a dash.
pub fn validate_zone_code(value: &str) -> Result<(), CatalogError> {
    let ok = (3..=32).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    ok.then_some(())
        .ok_or_else(|| CatalogError::InvalidZoneCode {
            value: value.chars().take(64).collect(),
        })
}

/// Checks an instance type code such as `L4-1-24G` (already upper-cased): 2 to 40 letters,
/// digits and dashes, not starting or ending with a dash.
pub fn validate_type_code(value: &str) -> Result<(), CatalogError> {
    let ok = (2..=40).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    ok.then_some(())
        .ok_or_else(|| CatalogError::InvalidTypeCode {
            value: value.chars().take(64).collect(),
        })
}
