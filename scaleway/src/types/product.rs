//! The server catalog: `GET /products/servers` and `/products/servers/availability`.

use serde::{Deserialize, Serialize};

use super::string_enum;
use crate::money::MicroEuros;

/// One commercial type of `GET /products/servers` (the map key becomes `commercial_type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerProduct {
    /// Commercial type, e.g. `L4-1-24G` (the key of the `servers` map).
    #[serde(default)]
    pub commercial_type: String,
    /// Price per hour, exact.
    pub hourly_price: MicroEuros,
    /// Price per month, exact, when given.
    #[serde(default)]
    pub monthly_price: Option<MicroEuros>,
    /// vCPUs.
    #[serde(default)]
    pub ncpus: u32,
    /// RAM in bytes.
    #[serde(default)]
    pub ram: u64,
    /// Number of GPUs (0 for CPU types).
    #[serde(default)]
    pub gpu: u32,
    /// GPU description, for GPU types.
    #[serde(default)]
    pub gpu_info: Option<GpuInfo>,
    /// CPU architecture (`x86_64`).
    #[serde(default)]
    pub arch: Option<String>,
    /// True when Scaleway no longer sells the type.
    #[serde(default)]
    pub end_of_service: bool,
}

/// GPU description of a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// `NVIDIA`.
    #[serde(default)]
    pub gpu_manufacturer: String,
    /// `L4`, `H100`, ...
    #[serde(default)]
    pub gpu_name: String,
    /// Memory per GPU in bytes.
    #[serde(default)]
    pub gpu_memory: u64,
}

/// Stock level of a commercial type in a zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Availability {
    /// In stock.
    Available,
    /// Few left.
    Scarce,
    /// Out of stock: creation or power-on will fail with `out_of_stock`.
    Shortage,
    /// A value this client does not know.
    Unknown(String),
}

string_enum!(Availability {
    Available => "available",
    Scarce => "scarce",
    Shortage => "shortage",
});
