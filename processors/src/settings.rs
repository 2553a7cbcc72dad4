//! Timeouts, retry bounds and intervals of the instance lifecycle.
//!
//! Defaults follow the predecessor system (start-up 300 s, SSH reachability 180 s, bootstrap
//! 900 s, start-up with a worker to install 3600 s); the demo and the tests compress them.

use std::time::Duration;

/// Knobs of the lifecycle process managers (each is a flag and an env var of `serve`).
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    /// How often a server being started or stopped is looked at again.
    pub provider_poll_interval: Duration,
    /// Request to a running server with an IP; past it the instance fails with
    /// `PROVIDER_START_TIMEOUT`.
    pub provisioning_timeout: Duration,
    /// Power-on attempts after silent allocation failures before `PROVIDER_START_FAILED`.
    pub max_power_on_attempts: u32,
    /// Failed provider calls in a row (5xx, timeouts) before `PROVIDER_ERROR`.
    pub max_provider_errors: u32,
    /// Running server to SSH reachable; past it `SSH_NOT_ACCESSIBLE`.
    pub ssh_wait_timeout: Duration,
    /// The whole bootstrap; past it `INSTALL_FAILED` (the failed phase is named).
    pub bootstrap_timeout: Duration,
    /// Install done to ready (engine up, model loaded, warm-up); past it `STARTUP_TIMEOUT`.
    pub readiness_timeout: Duration,
    /// Interval between readiness probes while the engine starts.
    pub readiness_probe_interval: Duration,
    /// Interval of the watchdog's look at ready instances' servers.
    pub watchdog_interval: Duration,
    /// Interval of a reconciliation pass over each zone.
    pub reconcile_interval: Duration,
    /// Tagged resources younger than this are never reaped as orphans (a processor may be
    /// about to record them).
    pub orphan_grace: Duration,
    /// Image of new servers (Scaleway image label or id).
    pub image: String,
    /// Port of the engine's OpenAI-compatible API on a worker VM.
    pub engine_port: u16,
    /// Base URL at which worker agents reach this control plane (given to each VM's agent).
    pub control_plane_url: String,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            provider_poll_interval: Duration::from_secs(3),
            provisioning_timeout: Duration::from_secs(300),
            max_power_on_attempts: 5,
            max_provider_errors: 8,
            ssh_wait_timeout: Duration::from_secs(180),
            bootstrap_timeout: Duration::from_secs(900),
            readiness_timeout: Duration::from_secs(3600),
            readiness_probe_interval: Duration::from_secs(5),
            watchdog_interval: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(300),
            orphan_grace: Duration::from_secs(600),
            image: "ubuntu_jammy_gpu_os_12".to_string(),
            engine_port: 8000,
            control_plane_url: "http://127.0.0.1:8080".to_string(),
        }
    }
}

/// The tag every resource of inferplane carries at the provider.
pub const OWNER_TAG: &str = "inferplane";

/// The tag naming the instance a resource belongs to.
pub fn instance_tag(instance_id: &uuid::Uuid) -> String {
    format!("inferplane-instance={instance_id}")
}

/// The instance a resource belongs to, from its tags.
pub fn instance_of(tags: &[String]) -> Option<uuid::Uuid> {
    tags.iter()
        .find_map(|t| t.strip_prefix("inferplane-instance="))
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_tags_round_trip() {
        let id = uuid::Uuid::now_v7();
        let tags = vec![OWNER_TAG.to_string(), instance_tag(&id)];
        assert_eq!(instance_of(&tags), Some(id));
        assert_eq!(instance_of(&["inferplane-instance=nope".to_string()]), None);
        assert_eq!(instance_of(&[]), None);
    }
}
