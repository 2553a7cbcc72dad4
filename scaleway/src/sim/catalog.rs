//! The simulator's commercial types: the GPU table of the reference (prices in EUR/h as exact
//! decimal text) plus a few CPU types. Every type is offered in every configured zone.
//!
//! vCPU/RAM follow the project's seed catalog (L4 8 vCPU / 48 GiB per GPU, L40S 8 / 96, H100
//! PCIe 24 / 240, H100 SXM 16 / 120, RENDER-S 10 / 42). The CPU types' prices are illustrative.
//! Types with local storage accept `l_ssd` volumes; the others (L4, L40S, H100) only Block
//! Storage, like the real ones.

use crate::money::MicroEuros;

const GIB: u64 = 1 << 30;

/// One commercial type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Commercial type name.
    pub commercial_type: &'static str,
    /// vCPUs.
    pub ncpus: u32,
    /// RAM in GiB.
    pub ram_gib: u64,
    /// Number of GPUs.
    pub gpus: u32,
    /// GPU model (`L4`, `H100`, ...), empty for CPU types.
    pub gpu_name: &'static str,
    /// Memory per GPU in GiB.
    pub gpu_memory_gib: u64,
    /// Hourly price, exact decimal text in EUR.
    pub hourly_price: &'static str,
    /// Whether `l_ssd` volumes are offered.
    pub local_storage: bool,
}

impl CatalogEntry {
    /// RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.ram_gib * GIB
    }

    /// Hourly price.
    pub fn hourly(&self) -> MicroEuros {
        MicroEuros::from_decimal_str(self.hourly_price).unwrap_or(MicroEuros::ZERO)
    }

    /// Monthly price (730 hours).
    pub fn monthly(&self) -> MicroEuros {
        self.hourly().checked_mul(730).unwrap_or(MicroEuros::ZERO)
    }

    /// True for GPU types (counted by the GPU server quota).
    pub fn is_gpu(&self) -> bool {
        self.gpus > 0
    }
}

macro_rules! entry {
    ($t:literal, $cpu:literal, $ram:literal, $gpus:literal, $gpu:literal, $vram:literal, $price:literal, $local:literal) => {
        CatalogEntry {
            commercial_type: $t,
            ncpus: $cpu,
            ram_gib: $ram,
            gpus: $gpus,
            gpu_name: $gpu,
            gpu_memory_gib: $vram,
            hourly_price: $price,
            local_storage: $local,
        }
    };
}

/// Every commercial type the simulator knows.
#[rustfmt::skip]
pub const CATALOG: &[CatalogEntry] = &[
    entry!("L4-1-24G", 8, 48, 1, "L4", 24, "0.75", false),
    entry!("L4-2-24G", 16, 96, 2, "L4", 24, "1.50", false),
    entry!("L4-4-24G", 32, 192, 4, "L4", 24, "3.00", false),
    entry!("L4-8-24G", 64, 384, 8, "L4", 24, "6.00", false),
    entry!("L40S-1-48G", 8, 96, 1, "L40S", 48, "1.40", false),
    entry!("L40S-2-48G", 16, 192, 2, "L40S", 48, "2.80", false),
    entry!("L40S-4-48G", 32, 384, 4, "L40S", 48, "5.60", false),
    entry!("L40S-8-48G", 64, 768, 8, "L40S", 48, "11.20", false),
    entry!("H100-1-80G", 24, 240, 1, "H100", 80, "2.73", false),
    entry!("H100-2-80G", 48, 480, 2, "H100", 80, "5.46", false),
    entry!("H100-SXM-2-80G", 32, 240, 2, "H100-SXM", 80, "6.02", false),
    entry!("H100-SXM-4-80G", 64, 480, 4, "H100-SXM", 80, "11.61", false),
    entry!("H100-SXM-8-80G", 128, 960, 8, "H100-SXM", 80, "23.03", false),
    entry!("RENDER-S", 10, 42, 1, "P100", 16, "1.2426", true),
    entry!("DEV1-S", 2, 2, 0, "", 0, "0.0088", true),
    entry!("DEV1-M", 3, 4, 0, "", 0, "0.0198", true),
    entry!("GP1-XS", 4, 16, 0, "", 0, "0.0914", true),
];

/// Looks a commercial type up.
pub fn find(commercial_type: &str) -> Option<&'static CatalogEntry> {
    CATALOG
        .iter()
        .find(|e| e.commercial_type == commercial_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_exactly() {
        for entry in CATALOG {
            assert!(
                MicroEuros::from_decimal_str(entry.hourly_price).is_ok(),
                "{}",
                entry.commercial_type
            );
        }
        assert_eq!(
            find("RENDER-S").map(|e| e.hourly()),
            Some(MicroEuros(1_242_600))
        );
        assert_eq!(
            find("H100-SXM-8-80G").map(|e| e.hourly()),
            Some(MicroEuros(23_030_000))
        );
        assert_eq!(
            find("L4-1-24G").map(|e| e.monthly()),
            Some(MicroEuros(547_500_000))
        );
        assert!(find("L5-1-24G").is_none());
    }
}
