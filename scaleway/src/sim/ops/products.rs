//! The catalog routes: `GET /products/servers` and `/products/servers/availability`.
//!
//! Products are serialised from typed structs straight to text, so prices keep their exact
//! decimal text (a `serde_json::Value` would hold them as `f64`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::money::MicroEuros;
use crate::sim::catalog::{CATALOG, CatalogEntry};
use crate::sim::world::World;

/// The product object of one commercial type.
#[derive(Serialize)]
pub(crate) struct ProductView {
    alt_names: Vec<String>,
    arch: &'static str,
    ncpus: u32,
    ram: u64,
    gpu: u32,
    gpu_info: Option<GpuInfoView>,
    hourly_price: MicroEuros,
    monthly_price: MicroEuros,
    baremetal: bool,
    end_of_service: bool,
    volumes_constraint: SizeRange,
    per_volume_constraint: PerVolume,
    block_bandwidth: u64,
}

#[derive(Serialize)]
struct GpuInfoView {
    gpu_manufacturer: &'static str,
    gpu_name: &'static str,
    gpu_memory: u64,
}

#[derive(Serialize, Clone, Copy)]
struct SizeRange {
    min_size: u64,
    max_size: u64,
}

#[derive(Serialize)]
struct PerVolume {
    l_ssd: SizeRange,
}

/// `{"servers": {type: product}}`
#[derive(Serialize)]
pub(crate) struct ProductsBody {
    servers: BTreeMap<&'static str, ProductView>,
}

/// `{"servers": {type: {"availability"}}, "total_count"}`
#[derive(Serialize)]
pub(crate) struct AvailabilityBody {
    servers: BTreeMap<&'static str, AvailabilityView>,
    total_count: usize,
}

#[derive(Serialize)]
struct AvailabilityView {
    availability: &'static str,
}

fn product(entry: &CatalogEntry) -> ProductView {
    let local = if entry.local_storage {
        SizeRange {
            min_size: 20_000_000_000,
            max_size: 400_000_000_000,
        }
    } else {
        SizeRange {
            min_size: 0,
            max_size: 0,
        }
    };
    ProductView {
        alt_names: Vec::new(),
        arch: "x86_64",
        ncpus: entry.ncpus,
        ram: entry.ram_bytes(),
        gpu: entry.gpus,
        gpu_info: entry.is_gpu().then_some(GpuInfoView {
            gpu_manufacturer: "NVIDIA",
            gpu_name: entry.gpu_name,
            gpu_memory: entry.gpu_memory_gib << 30,
        }),
        hourly_price: entry.hourly(),
        monthly_price: entry.monthly(),
        baremetal: false,
        end_of_service: false,
        volumes_constraint: local,
        per_volume_constraint: PerVolume { l_ssd: local },
        block_bandwidth: 2_147_483_648,
    }
}

/// Every commercial type, sorted by name.
pub(crate) fn entries() -> Vec<&'static CatalogEntry> {
    let mut entries: Vec<&CatalogEntry> = CATALOG.iter().collect();
    entries.sort_by_key(|e| e.commercial_type);
    entries
}

/// The body for one page of entries.
pub(crate) fn products_body(page: &[&'static CatalogEntry]) -> ProductsBody {
    ProductsBody {
        servers: page
            .iter()
            .map(|e| (e.commercial_type, product(e)))
            .collect(),
    }
}

/// The availability body for one page, `shortage` where an out-of-stock fault applies.
pub(crate) fn availability_body(
    world: &World,
    zone: &str,
    page: &[&'static CatalogEntry],
    total: usize,
) -> AvailabilityBody {
    AvailabilityBody {
        servers: page
            .iter()
            .map(|e| {
                let availability = if world.faults.is_out_of_stock(zone, e.commercial_type) {
                    "shortage"
                } else {
                    "available"
                };
                (e.commercial_type, AvailabilityView { availability })
            })
            .collect(),
        total_count: total,
    }
}
