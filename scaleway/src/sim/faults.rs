//! Injectable faults: the JSON document of `GET|PUT /_sim/faults` and of
//! `--sim-faults` / `INFERPLANE_SIM_FAULTS`.
//!
//! ```json
//! {
//!   "out_of_stock": [{"zone": "fr-par-2", "commercial_type": "L4-1-24G"}],
//!   "quota_gpu_servers_per_zone": 2,
//!   "allocation_failures": 1,
//!   "burst": {"status": 429, "count": 2, "retry_after_secs": 1,
//!             "operations": ["list_servers"], "after_handler": false},
//!   "latency_ms": 500,
//!   "latency_operations": ["create_server"]
//! }
//! ```
//!
//! - `out_of_stock`: creating or powering on a server of that type in that zone fails with
//!   412 `out_of_stock`; availability reports `shortage`.
//! - `quota_gpu_servers_per_zone`: overrides the configured quota (GPU servers per zone, counted
//!   over existing servers); creating one more fails with 403 `quotas_exceeded`.
//! - `allocation_failures`: the next N power-ons from `stopped` fail silently: the server shows
//!   `starting`/`allocating node` for one step, then falls back to `stopped`.
//! - `burst`: the next `count` API requests (restricted to `operations` when not empty, names
//!   from [`crate::operations`]) answer `status` (429 or 5xx), with `Retry-After` when set. With
//!   `after_handler: true` the request is applied first and only its answer is replaced: the
//!   provider acted but the caller sees an error (the case that makes blind create-retries
//!   rent twins).
//! - `latency_ms`: delays every API answer (restricted to `latency_operations` when not empty)
//!   AFTER the request was applied: it models an answer lost or slow after the provider acted,
//!   so a test can kill the caller between the provider call and the caller recording it.
//!
//! `PUT` replaces the whole document (absent fields take their defaults). The admin API needs
//! no token: the simulator is a local test double.

use serde::{Deserialize, Serialize};

use crate::operations;

/// Faults currently injected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Commercial types out of stock, per zone.
    pub out_of_stock: Vec<StockFault>,
    /// Overrides the configured GPU server quota per zone.
    pub quota_gpu_servers_per_zone: Option<u32>,
    /// The next N allocations (power-on from `stopped`) fail silently.
    pub allocation_failures: u32,
    /// A burst of error answers.
    pub burst: Option<BurstFault>,
    /// Delay added to answers, after the request was applied.
    pub latency_ms: u64,
    /// Operations the latency applies to (empty: all).
    pub latency_operations: Vec<String>,
}

/// A commercial type out of stock in a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockFault {
    /// Zone.
    pub zone: String,
    /// Commercial type.
    pub commercial_type: String,
}

/// The next `count` requests answer `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstFault {
    /// 429 or a 5xx.
    pub status: u16,
    /// How many answers remain to be replaced.
    pub count: u32,
    /// `Retry-After` header value, in seconds.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Operations affected (empty: all).
    #[serde(default)]
    pub operations: Vec<String>,
    /// Apply the request, then replace its answer.
    #[serde(default)]
    pub after_handler: bool,
}

impl Faults {
    /// Checks statuses and operation names.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(burst) = &self.burst {
            if burst.status != 429 && !(500..=599).contains(&burst.status) {
                return Err(format!(
                    "burst.status must be 429 or 5xx, got {}",
                    burst.status
                ));
            }
            check_operations("burst.operations", &burst.operations)?;
        }
        check_operations("latency_operations", &self.latency_operations)?;
        Ok(())
    }

    /// True when `commercial_type` is out of stock in `zone`.
    pub fn is_out_of_stock(&self, zone: &str, commercial_type: &str) -> bool {
        self.out_of_stock
            .iter()
            .any(|f| f.zone == zone && f.commercial_type == commercial_type)
    }

    /// The latency to add to an answer of `operation`.
    pub fn latency_for(&self, operation: &str) -> u64 {
        if self.latency_ms > 0
            && (self.latency_operations.is_empty()
                || self.latency_operations.iter().any(|o| o == operation))
        {
            self.latency_ms
        } else {
            0
        }
    }

    /// Consumes one burst answer for `operation`, if a burst applies to it.
    pub fn take_burst(&mut self, operation: &str) -> Option<BurstFault> {
        let burst = self.burst.as_mut()?;
        if burst.count == 0
            || !(burst.operations.is_empty() || burst.operations.iter().any(|o| o == operation))
        {
            return None;
        }
        burst.count -= 1;
        let taken = burst.clone();
        if burst.count == 0 {
            self.burst = None;
        }
        Some(taken)
    }

    /// Consumes one allocation failure, if any remain.
    pub fn take_allocation_failure(&mut self) -> bool {
        if self.allocation_failures > 0 {
            self.allocation_failures -= 1;
            true
        } else {
            false
        }
    }
}

fn check_operations(field: &str, names: &[String]) -> Result<(), String> {
    match names
        .iter()
        .find(|n| !operations::ALL.contains(&n.as_str()))
    {
        Some(unknown) => Err(format!(
            "{field}: unknown operation {unknown:?} (known: {})",
            operations::ALL.join(", ")
        )),
        None => Ok(()),
    }
}

/// Parses the JSON document (for clap).
pub fn parse_faults(text: &str) -> Result<Faults, String> {
    let faults: Faults =
        serde_json::from_str(text).map_err(|e| format!("invalid faults JSON: {e}"))?;
    faults.validate()?;
    Ok(faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let f = parse_faults(r#"{"burst":{"status":429,"count":2,"operations":["list_servers"]}}"#);
        assert!(f.is_ok());
        assert!(parse_faults(r#"{"burst":{"status":404,"count":1}}"#).is_err());
        assert!(
            parse_faults(r#"{"burst":{"status":500,"count":1,"operations":["nope"]}}"#).is_err()
        );
        assert!(parse_faults(r#"{"typo":1}"#).is_err());
        assert_eq!(parse_faults("{}"), Ok(Faults::default()));
    }

    #[test]
    fn burst_is_consumed_per_matching_operation() {
        let mut f = Faults {
            burst: Some(BurstFault {
                status: 500,
                count: 2,
                retry_after_secs: None,
                operations: vec!["get_server".into()],
                after_handler: false,
            }),
            ..Faults::default()
        };
        assert!(f.take_burst("list_servers").is_none());
        assert!(f.take_burst("get_server").is_some());
        assert!(f.take_burst("get_server").is_some());
        assert!(f.take_burst("get_server").is_none());
        assert!(f.burst.is_none());
    }

    #[test]
    fn latency_filter() {
        let f = Faults {
            latency_ms: 10,
            latency_operations: vec!["create_server".into()],
            ..Faults::default()
        };
        assert_eq!(f.latency_for("create_server"), 10);
        assert_eq!(f.latency_for("get_server"), 0);
    }
}
