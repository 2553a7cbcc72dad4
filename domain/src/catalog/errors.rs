/// Why the GPU catalog refused a command. Each variant is a rule, asserted by variant in tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("zone {code} is already registered")]
    ZoneAlreadyRegistered { code: String },
    #[error("no such zone")]
    ZoneNotRegistered,
    #[error("instance type {code} is already registered")]
    TypeAlreadyRegistered { code: String },
    #[error("no such instance type")]
    TypeNotRegistered,
    #[error(
        "invalid zone code {value:?}: 3 to 32 lowercase letters, digits and dashes, like fr-par-2"
    )]
    InvalidZoneCode { value: String },
    #[error(
        "invalid instance type code {value:?}: 2 to 40 letters, digits and dashes, like L4-1-24G"
    )]
    InvalidTypeCode { value: String },
    #[error("display_name must not be empty")]
    EmptyDisplayName,
    #[error("display_name must be at most 200 characters")]
    DisplayNameTooLong,
    #[error("gpu_model must have 1 to 64 characters")]
    InvalidGpuModel,
    #[error("gpu_count must be between 1 and 64 (got {value})")]
    GpuCountOutOfRange { value: i64 },
    #[error("vram_per_gpu_gb must be between 1 and 1024 (got {value})")]
    VramOutOfRange { value: i64 },
    #[error("vcpus must be between 1 and 4096 (got {value})")]
    VcpusOutOfRange { value: i64 },
    #[error("ram_gb must be between 1 and 65536 (got {value})")]
    RamOutOfRange { value: i64 },
    #[error(
        "hourly_price_micro_eur must be between 1 and 1000000000000 (1 million EUR) (got {value})"
    )]
    PriceOutOfRange { value: i64 },
}

impl CatalogError {
    /// Stable machine-readable code, used as the problem type on the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ZoneAlreadyRegistered { .. } => "zone-already-registered",
            Self::ZoneNotRegistered => "zone-not-found",
            Self::TypeAlreadyRegistered { .. } => "instance-type-already-registered",
            Self::TypeNotRegistered => "instance-type-not-found",
            Self::InvalidZoneCode { .. } => "invalid-zone-code",
            Self::InvalidTypeCode { .. } => "invalid-instance-type-code",
            Self::EmptyDisplayName | Self::DisplayNameTooLong => "invalid-display-name",
            Self::InvalidGpuModel => "invalid-gpu-model",
            Self::GpuCountOutOfRange { .. } => "invalid-gpu-count",
            Self::VramOutOfRange { .. } => "invalid-vram",
            Self::VcpusOutOfRange { .. } => "invalid-vcpus",
            Self::RamOutOfRange { .. } => "invalid-ram",
            Self::PriceOutOfRange { .. } => "invalid-price",
        }
    }
}
