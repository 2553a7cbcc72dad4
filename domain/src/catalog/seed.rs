//! The seed GPU catalog, loaded by `inferplane catalog seed`: Scaleway's zones and GPU types.
//!
//! This is a realistic seed, not live data. Prices are the EUR/h of the reference table
//! (`reference/scaleway-api.md`). vCPU and RAM: RENDER-S and the L4 range are from that table;
//! L40S, H100 and H100-SXM are Scaleway's published figures as we know them (8 vCPU / 96 GB per
//! L40S, 24 vCPU / 240 GB per H100 PCIe, 16 vCPU / 120 GB per H100 SXM). Availability is a
//! plausible picture: L4 and L40S in fr-par-2 and nl-ams-1 (L40S scarce in Amsterdam), H100
//! only in fr-par-2 (the SXM boxes scarce, the 8-GPU one in shortage), the old P100 RENDER-S
//! only in fr-par-1. Operators correct all of it through the API; a later processor will
//! refresh availability from `GET /products/servers/availability`.

use std::collections::BTreeMap;

use super::{Availability, Provider, RegisterInstanceType, RegisterZone};

/// Registration commands for the seed zones.
pub fn seed_zones() -> Vec<RegisterZone> {
    [
        ("fr-par-1", "Paris 1"),
        ("fr-par-2", "Paris 2"),
        ("nl-ams-1", "Amsterdam 1"),
    ]
    .into_iter()
    .map(|(code, name)| RegisterZone {
        provider: Provider::Scaleway,
        code: code.to_string(),
        display_name: name.to_string(),
        active: true,
    })
    .collect()
}

struct Seed {
    code: &'static str,
    gpu: &'static str,
    count: i64,
    vram: i64,
    vcpus: i64,
    ram: i64,
    micro_eur: i64,
    zones: &'static [(&'static str, Availability)],
}

const A: Availability = Availability::Available;
const S: Availability = Availability::Scarce;
const X: Availability = Availability::Shortage;
const PAR2_AMS: &[(&str, Availability)] = &[("fr-par-2", A), ("nl-ams-1", A)];
const L40S_ZONES: &[(&str, Availability)] = &[("fr-par-2", A), ("nl-ams-1", S)];

#[rustfmt::skip]
const SEEDS: &[Seed] = &[
    Seed { code: "L4-1-24G", gpu: "L4", count: 1, vram: 24, vcpus: 8, ram: 48, micro_eur: 750_000, zones: PAR2_AMS },
    Seed { code: "L4-2-24G", gpu: "L4", count: 2, vram: 24, vcpus: 16, ram: 96, micro_eur: 1_500_000, zones: PAR2_AMS },
    Seed { code: "L4-4-24G", gpu: "L4", count: 4, vram: 24, vcpus: 32, ram: 192, micro_eur: 3_000_000, zones: PAR2_AMS },
    Seed { code: "L4-8-24G", gpu: "L4", count: 8, vram: 24, vcpus: 64, ram: 384, micro_eur: 6_000_000, zones: PAR2_AMS },
    Seed { code: "L40S-1-48G", gpu: "L40S", count: 1, vram: 48, vcpus: 8, ram: 96, micro_eur: 1_400_000, zones: L40S_ZONES },
    Seed { code: "L40S-2-48G", gpu: "L40S", count: 2, vram: 48, vcpus: 16, ram: 192, micro_eur: 2_800_000, zones: L40S_ZONES },
    Seed { code: "L40S-4-48G", gpu: "L40S", count: 4, vram: 48, vcpus: 32, ram: 384, micro_eur: 5_600_000, zones: L40S_ZONES },
    Seed { code: "L40S-8-48G", gpu: "L40S", count: 8, vram: 48, vcpus: 64, ram: 768, micro_eur: 11_200_000, zones: L40S_ZONES },
    Seed { code: "H100-1-80G", gpu: "H100", count: 1, vram: 80, vcpus: 24, ram: 240, micro_eur: 2_730_000, zones: &[("fr-par-2", A)] },
    Seed { code: "H100-2-80G", gpu: "H100", count: 2, vram: 80, vcpus: 48, ram: 480, micro_eur: 5_460_000, zones: &[("fr-par-2", S)] },
    Seed { code: "H100-SXM-2-80G", gpu: "H100 SXM", count: 2, vram: 80, vcpus: 32, ram: 240, micro_eur: 6_020_000, zones: &[("fr-par-2", S)] },
    Seed { code: "H100-SXM-4-80G", gpu: "H100 SXM", count: 4, vram: 80, vcpus: 64, ram: 480, micro_eur: 11_610_000, zones: &[("fr-par-2", S)] },
    Seed { code: "H100-SXM-8-80G", gpu: "H100 SXM", count: 8, vram: 80, vcpus: 128, ram: 960, micro_eur: 23_030_000, zones: &[("fr-par-2", X)] },
    Seed { code: "RENDER-S", gpu: "P100", count: 1, vram: 16, vcpus: 10, ram: 42, micro_eur: 1_242_600, zones: &[("fr-par-1", A)] },
];

/// Registration commands for the seed instance types, each with its seed availability.
pub fn seed_instance_types() -> Vec<RegisterInstanceType> {
    SEEDS
        .iter()
        .map(|s| RegisterInstanceType {
            provider: Provider::Scaleway,
            code: s.code.to_string(),
            gpu_model: s.gpu.to_string(),
            gpu_count: s.count,
            vram_per_gpu_gb: s.vram,
            vcpus: s.vcpus,
            ram_gb: s.ram,
            hourly_price_micro_eur: s.micro_eur,
            availability: s
                .zones
                .iter()
                .map(|(z, a)| (z.to_string(), *a))
                .collect::<BTreeMap<_, _>>(),
            active: true,
        })
        .collect()
}
