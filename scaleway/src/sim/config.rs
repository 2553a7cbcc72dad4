//! [`SimConfig`]: the simulator's settings, as `clap` arguments with `INFERPLANE_SIM_*` twins.
//!
//! | flag | env | default |
//! |---|---|---|
//! | `--sim-secret-key` | `INFERPLANE_SIM_SECRET_KEY` | unset: any non-empty `X-Auth-Token` is accepted |
//! | `--sim-secret-key-file` | `INFERPLANE_SIM_SECRET_KEY_FILE` | unset |
//! | `--sim-project-id` | `INFERPLANE_SIM_PROJECT_ID` | unset: any project is accepted |
//! | `--sim-zones` | `INFERPLANE_SIM_ZONES` | `fr-par-1,fr-par-2,nl-ams-1` |
//! | `--sim-step-ms` | `INFERPLANE_SIM_STEP_MS` | `200` (duration of each `state_detail` step) |
//! | `--sim-ip-pool` | `INFERPLANE_SIM_IP_POOL` | `127.<100-250>.<0-255>.0/24`, drawn at random so that parallel simulators do not collide |
//! | `--sim-gpu-quota-per-zone` | `INFERPLANE_SIM_GPU_QUOTA_PER_ZONE` | `1000` |
//! | `--sim-faults` | `INFERPLANE_SIM_FAULTS` | none (JSON document of [`super::Faults`]) |
//!
//! The listen address is not part of this struct: [`super::serve`] takes a bound listener.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::faults::{Faults, parse_faults};
use crate::secret::SecretKey;

/// Default zones.
pub const DEFAULT_ZONES: &[&str] = &["fr-par-1", "fr-par-2", "nl-ams-1"];
/// Default duration of one state step, in milliseconds.
pub const DEFAULT_STEP_MS: u64 = 200;
/// Default GPU server quota per zone.
pub const DEFAULT_GPU_QUOTA_PER_ZONE: u32 = 1000;

/// Settings of the Scaleway simulator.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SimConfig {
    /// Secret key expected in X-Auth-Token (any other token gets 401). Unset: any non-empty
    /// token is accepted.
    #[arg(
        long = "sim-secret-key",
        env = "INFERPLANE_SIM_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<SecretKey>,

    /// File holding the expected secret key (alternative to --sim-secret-key).
    #[arg(
        long = "sim-secret-key-file",
        env = "INFERPLANE_SIM_SECRET_KEY_FILE",
        conflicts_with = "secret_key"
    )]
    pub secret_key_file: Option<PathBuf>,

    /// Project id the simulator owns; creations naming another project get 403. Unset: any.
    #[arg(long = "sim-project-id", env = "INFERPLANE_SIM_PROJECT_ID")]
    pub project_id: Option<String>,

    /// Zones served (comma-separated); other zones get 400 invalid_arguments.
    #[arg(
        long = "sim-zones",
        env = "INFERPLANE_SIM_ZONES",
        value_delimiter = ',',
        default_value = "fr-par-1,fr-par-2,nl-ams-1"
    )]
    pub zones: Vec<String>,

    /// Duration of each state step (allocating node, provisioning node, ...), in milliseconds.
    #[arg(long = "sim-step-ms", env = "INFERPLANE_SIM_STEP_MS", default_value_t = DEFAULT_STEP_MS)]
    pub step_ms: u64,

    /// IPv4 block (CIDR, /8 to /30) for VM public addresses. Default: a random /24 in 127/8.
    #[arg(long = "sim-ip-pool", env = "INFERPLANE_SIM_IP_POOL")]
    pub ip_pool: Option<IpPool>,

    /// Maximum number of GPU servers per zone (403 quotas_exceeded beyond).
    #[arg(
        long = "sim-gpu-quota-per-zone",
        env = "INFERPLANE_SIM_GPU_QUOTA_PER_ZONE",
        default_value_t = DEFAULT_GPU_QUOTA_PER_ZONE
    )]
    pub gpu_quota_per_zone: u32,

    /// Faults injected from the start (JSON, same document as PUT /_sim/faults).
    #[arg(long = "sim-faults", env = "INFERPLANE_SIM_FAULTS", value_parser = parse_faults)]
    pub faults: Option<Faults>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            secret_key: None,
            secret_key_file: None,
            project_id: None,
            zones: DEFAULT_ZONES.iter().map(|z| z.to_string()).collect(),
            step_ms: DEFAULT_STEP_MS,
            ip_pool: None,
            gpu_quota_per_zone: DEFAULT_GPU_QUOTA_PER_ZONE,
            faults: None,
        }
    }
}

impl SimConfig {
    /// Sets the step duration (tests use 5-20 ms).
    pub fn with_step(mut self, step: Duration) -> Self {
        self.step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets the expected secret key.
    pub fn with_secret_key(mut self, key: SecretKey) -> Self {
        self.secret_key = Some(key);
        self
    }

    /// Sets the initial faults.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Sets the GPU server quota per zone.
    pub fn with_gpu_quota_per_zone(mut self, quota: u32) -> Self {
        self.gpu_quota_per_zone = quota;
        self
    }

    /// Sets the address pool.
    pub fn with_ip_pool(mut self, pool: IpPool) -> Self {
        self.ip_pool = Some(pool);
        self
    }

    /// Validates and resolves (reads the key file, draws the address pool).
    pub(crate) fn resolve(&self) -> Result<Settings, String> {
        let secret_key = match (&self.secret_key, &self.secret_key_file) {
            (Some(key), _) => Some(key.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Some(
                    text.parse::<SecretKey>()
                        .map_err(|e| format!("{}: {e}", path.display()))?,
                )
            }
            (None, None) => None,
        };
        let zones: Vec<String> = self
            .zones
            .iter()
            .map(|z| z.trim().to_string())
            .filter(|z| !z.is_empty())
            .collect();
        if zones.is_empty() {
            return Err("at least one zone is required".to_string());
        }
        if let Some(bad) = zones.iter().find(|z| {
            !z.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }) {
            return Err(format!("invalid zone name {bad:?}"));
        }
        let faults = self.faults.clone().unwrap_or_default();
        faults.validate()?;
        Ok(Settings {
            secret_key,
            project_id: self.project_id.clone().filter(|p| !p.is_empty()),
            zones,
            step: Duration::from_millis(self.step_ms),
            pool: self.ip_pool.unwrap_or_else(IpPool::random_loopback),
            gpu_quota_per_zone: self.gpu_quota_per_zone,
            initial_faults: faults,
        })
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub secret_key: Option<SecretKey>,
    pub project_id: Option<String>,
    pub zones: Vec<String>,
    pub step: Duration,
    pub pool: IpPool,
    pub gpu_quota_per_zone: u32,
    pub initial_faults: Faults,
}

/// An IPv4 block (`127.123.45.0/24`) from which VM public addresses are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPool {
    network: Ipv4Addr,
    prefix: u8,
}

impl IpPool {
    /// A block; `prefix` must be within 8..=30. Host bits of `network` are cleared.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if !(8..=30).contains(&prefix) {
            return Err(format!("prefix /{prefix} must be between /8 and /30"));
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        Ok(Self {
            network: Ipv4Addr::from(u32::from(network) & mask),
            prefix,
        })
    }

    /// `127.<100-250>.<0-255>.0/24`, drawn at random.
    pub fn random_loopback() -> Self {
        let b: u8 = rand::random_range(100..=250);
        let c: u8 = rand::random::<u8>();
        Self {
            network: Ipv4Addr::new(127, b, c, 0),
            prefix: 24,
        }
    }

    /// Usable host addresses in order (network and broadcast addresses excluded).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let base = u32::from(self.network);
        let size = 1u32 << (32 - u32::from(self.prefix));
        (1..size - 1).map(move |offset| Ipv4Addr::from(base + offset))
    }

    /// True when `addr` is inside the block.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        u32::from(addr) & mask == u32::from(self.network)
    }
}

impl fmt::Display for IpPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for IpPool {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR block like 127.10.20.0/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|e| format!("{addr:?} is not an IPv4 address: {e}"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|e| format!("{prefix:?} is not a prefix length: {e}"))?;
        Self::new(addr, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimConfig,
    }

    #[test]
    fn clap_defaults_match_default() {
        let cli = Cli::try_parse_from(["x"]);
        assert!(cli.is_ok());
        if let Ok(cli) = cli {
            // The environment of the test run could set INFERPLANE_SIM_*; compare only when not.
            if std::env::vars().all(|(k, _)| !k.starts_with("INFERPLANE_SIM_")) {
                assert_eq!(cli.sim, SimConfig::default());
            }
        }
    }

    #[test]
    fn parses_flags() {
        let cli = Cli::try_parse_from([
            "x",
            "--sim-zones",
            "fr-par-2,pl-waw-1",
            "--sim-step-ms",
            "10",
            "--sim-ip-pool",
            "127.20.0.0/16",
            "--sim-secret-key",
            "abc",
            "--sim-faults",
            r#"{"allocation_failures":2}"#,
        ]);
        let Ok(cli) = cli else {
            panic!("flags must parse");
        };
        assert_eq!(cli.sim.zones, vec!["fr-par-2", "pl-waw-1"]);
        assert_eq!(cli.sim.step_ms, 10);
        assert_eq!(
            cli.sim.ip_pool.map(|p| p.to_string()),
            Some("127.20.0.0/16".into())
        );
        assert_eq!(cli.sim.faults.map(|f| f.allocation_failures), Some(2));
        assert_eq!(format!("{:?}", cli.sim.secret_key), "Some([redacted])");
        assert!(Cli::try_parse_from(["x", "--sim-faults", "{bad"]).is_err());
    }

    #[test]
    fn pools() {
        let pool: IpPool = "127.10.20.7/24".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pool.to_string(), "127.10.20.0/24");
        assert_eq!(pool.hosts().count(), 254);
        assert_eq!(pool.hosts().next(), Some(Ipv4Addr::new(127, 10, 20, 1)));
        assert!(pool.contains(Ipv4Addr::new(127, 10, 20, 254)));
        assert!(!pool.contains(Ipv4Addr::new(127, 10, 21, 1)));
        assert!("127.0.0.0/31".parse::<IpPool>().is_err());
        assert!("nope/24".parse::<IpPool>().is_err());
        for _ in 0..20 {
            let random = IpPool::random_loopback();
            let first = random.hosts().next().map(|a| a.octets());
            assert!(matches!(first, Some([127, 100..=250, _, 1])));
        }
    }

    #[test]
    fn resolves() {
        let settings = SimConfig::default()
            .with_step(Duration::from_millis(7))
            .resolve();
        let Ok(settings) = settings else {
            panic!("default config must resolve");
        };
        assert_eq!(settings.step, Duration::from_millis(7));
        assert_eq!(settings.zones.len(), 3);
        let bad = SimConfig {
            zones: vec!["FR PAR".into()],
            ..SimConfig::default()
        };
        assert!(bad.resolve().is_err());
    }
}
