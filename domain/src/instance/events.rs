use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{FailureCode, InstanceStatus, LogStream, ReadinessCheck, VllmMode};
use crate::catalog::Provider;

/// Facts of an instance's life, named in the past tense. They carry no timestamp (the store
/// records `recorded_at`) and no actor (the metadata does); free text (reasons, messages,
/// details) is bounded by [`decide`](super::decide).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InstanceEvent {
    InstanceRequested(InstanceRequested),
    ProvisioningStarted {
        zone: String,
        attempt: u32,
    },
    ZoneChanged {
        from: String,
        to: String,
        reason: String,
    },
    VolumeCreated {
        volume_id: String,
        zone: String,
        size_gb: u32,
    },
    ServerCreated {
        server_id: String,
        zone: String,
        commercial_type: String,
    },
    VolumeAttached {
        volume_id: String,
    },
    PowerOnRequested {
        attempt: u32,
    },
    ServerAllocationFailed {
        attempt: u32,
    },
    ServerStarted {
        public_ip: String,
    },
    /// First contact over SSH: this host key is pinned from now on (trust on first use).
    SshHostKeyTrusted {
        fingerprint: String,
    },
    SshAccessible,
    PhaseStarted {
        name: String,
    },
    PhaseLogged {
        name: String,
        stream: LogStream,
        chunk: String,
    },
    PhaseCompleted {
        name: String,
        duration_ms: u64,
        exit_code: i32,
    },
    PhaseFailed {
        name: String,
        duration_ms: u64,
        exit_code: Option<i32>,
        message: String,
    },
    InstallCompleted,
    ReadinessCheckPassed {
        check: ReadinessCheck,
        duration_ms: u64,
        detail: String,
    },
    ReadinessCheckFailed {
        check: ReadinessCheck,
        duration_ms: u64,
        detail: String,
    },
    InstanceReady,
    InstanceUnavailable {
        reason: String,
    },
    ProviderServerStopped,
    ProviderServerDeleted {
        server_id: String,
    },
    InstanceFailed {
        code: FailureCode,
        message: String,
        at_status: InstanceStatus,
    },
    TerminationRequested {
        reason: Option<String>,
        from_status: InstanceStatus,
    },
    PowerOffRequested {
        server_id: String,
    },
    ServerDeleted {
        server_id: String,
    },
    VolumeDetached {
        volume_id: String,
    },
    VolumeDeleted {
        volume_id: String,
    },
    InstanceTerminated,
    ReinstallRequested {
        attempt: u32,
    },
    DrainStarted,
    InstanceArchived,
    /// A worker agent registered for install attempt `attempt`; `token_hash` is the SHA-256
    /// of the worker token it was given (the token itself is never recorded).
    WorkerRegistered {
        attempt: u32,
        token_hash: String,
        agent_version: String,
    },
    /// The worker's health changed (heartbeats say the engine serves, or not; or they stopped).
    WorkerHealthChanged {
        healthy: bool,
        reason: String,
    },
    /// The set of models the worker's engine serves changed (sorted, without duplicates).
    WorkerModelsChanged {
        models: Vec<String>,
    },
}

/// An accepted request, with everything the catalog said about it at that moment: later
/// catalog changes (a new price, a deactivated model) do not rewrite what was requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRequested {
    pub model_id: Uuid,
    pub model_repo: String,
    pub model_required_vram_gb: u32,
    pub zone: String,
    /// The requested zone first, then the fallbacks, without duplicates.
    pub allowed_zones: Vec<String>,
    pub instance_type: String,
    pub gpu_count: u32,
    pub vram_per_gpu_gb: u32,
    pub hourly_price_micro_eur: i64,
    pub data_volume_gb: u32,
    pub vllm_mode: VllmMode,
    pub provider: Provider,
}

impl InstanceEvent {
    /// The event type as stored (the variant name).
    pub fn name(&self) -> &'static str {
        match self {
            Self::InstanceRequested(_) => "InstanceRequested",
            Self::ProvisioningStarted { .. } => "ProvisioningStarted",
            Self::ZoneChanged { .. } => "ZoneChanged",
            Self::VolumeCreated { .. } => "VolumeCreated",
            Self::ServerCreated { .. } => "ServerCreated",
            Self::VolumeAttached { .. } => "VolumeAttached",
            Self::PowerOnRequested { .. } => "PowerOnRequested",
            Self::ServerAllocationFailed { .. } => "ServerAllocationFailed",
            Self::ServerStarted { .. } => "ServerStarted",
            Self::SshHostKeyTrusted { .. } => "SshHostKeyTrusted",
            Self::SshAccessible => "SshAccessible",
            Self::PhaseStarted { .. } => "PhaseStarted",
            Self::PhaseLogged { .. } => "PhaseLogged",
            Self::PhaseCompleted { .. } => "PhaseCompleted",
            Self::PhaseFailed { .. } => "PhaseFailed",
            Self::InstallCompleted => "InstallCompleted",
            Self::ReadinessCheckPassed { .. } => "ReadinessCheckPassed",
            Self::ReadinessCheckFailed { .. } => "ReadinessCheckFailed",
            Self::InstanceReady => "InstanceReady",
            Self::InstanceUnavailable { .. } => "InstanceUnavailable",
            Self::ProviderServerStopped => "ProviderServerStopped",
            Self::ProviderServerDeleted { .. } => "ProviderServerDeleted",
            Self::InstanceFailed { .. } => "InstanceFailed",
            Self::TerminationRequested { .. } => "TerminationRequested",
            Self::PowerOffRequested { .. } => "PowerOffRequested",
            Self::ServerDeleted { .. } => "ServerDeleted",
            Self::VolumeDetached { .. } => "VolumeDetached",
            Self::VolumeDeleted { .. } => "VolumeDeleted",
            Self::InstanceTerminated => "InstanceTerminated",
            Self::ReinstallRequested { .. } => "ReinstallRequested",
            Self::DrainStarted => "DrainStarted",
            Self::InstanceArchived => "InstanceArchived",
            Self::WorkerRegistered { .. } => "WorkerRegistered",
            Self::WorkerHealthChanged { .. } => "WorkerHealthChanged",
            Self::WorkerModelsChanged { .. } => "WorkerModelsChanged",
        }
    }

    /// The status this event moves the instance to, or `None` when it leaves the status as
    /// it was (a read model can update its status column from this alone).
    pub fn status_after(&self) -> Option<InstanceStatus> {
        use InstanceStatus as S;
        Some(match self {
            Self::InstanceRequested(_) => S::Requested,
            Self::ProvisioningStarted { .. } => S::Provisioning,
            Self::ServerStarted { .. } => S::Booting,
            Self::SshAccessible => S::Installing,
            Self::InstallCompleted => S::Starting,
            Self::InstanceReady => S::Ready,
            Self::InstanceUnavailable { .. } | Self::ProviderServerStopped => S::Unavailable,
            Self::InstanceFailed { .. } => S::Failed,
            Self::TerminationRequested { .. } => S::Terminating,
            Self::InstanceTerminated => S::Terminated,
            Self::ReinstallRequested { .. } => S::Booting,
            Self::DrainStarted => S::Draining,
            Self::InstanceArchived => S::Archived,
            Self::ZoneChanged { .. }
            | Self::VolumeCreated { .. }
            | Self::ServerCreated { .. }
            | Self::VolumeAttached { .. }
            | Self::PowerOnRequested { .. }
            | Self::ServerAllocationFailed { .. }
            | Self::SshHostKeyTrusted { .. }
            | Self::PhaseStarted { .. }
            | Self::PhaseLogged { .. }
            | Self::PhaseCompleted { .. }
            | Self::PhaseFailed { .. }
            | Self::ReadinessCheckPassed { .. }
            | Self::ReadinessCheckFailed { .. }
            | Self::ProviderServerDeleted { .. }
            | Self::PowerOffRequested { .. }
            | Self::ServerDeleted { .. }
            | Self::VolumeDetached { .. }
            | Self::VolumeDeleted { .. }
            | Self::WorkerRegistered { .. }
            | Self::WorkerHealthChanged { .. }
            | Self::WorkerModelsChanged { .. } => return None,
        })
    }
}

impl DomainEvent for InstanceEvent {
    fn event_type(&self) -> String {
        self.name().to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[cfg(test)]
mod tests {
    //! Events on the wire: every event round-trips through JSON under a stable type name.

    use cqrs_es::DomainEvent;
    use uuid::Uuid;

    use super::{InstanceEvent as E, InstanceRequested};
    use crate::catalog::Provider;
    use crate::instance::{
        FailureCode, InstanceStatus as S, LogStream, ReadinessCheck, VllmMode, progress,
    };

    const ZONE: &str = "fr-par-2";
    const FALLBACK: &str = "nl-ams-1";
    const SRV: &str = "srv-1";
    const VOL: &str = "vol-1";
    const IP: &str = "51.15.0.1";
    const KEY: &str = "SHA256:pinnedHostKey";

    fn requested_event() -> E {
        E::InstanceRequested(InstanceRequested {
            model_id: Uuid::from_u128(0x1234),
            model_repo: "meta-llama/Llama-3.1-8B-Instruct".into(),
            model_required_vram_gb: 24,
            zone: ZONE.into(),
            allowed_zones: vec![ZONE.into(), FALLBACK.into()],
            instance_type: "L4-1-24G".into(),
            gpu_count: 1,
            vram_per_gpu_gb: 24,
            hourly_price_micro_eur: 750_000,
            data_volume_gb: 100,
            vllm_mode: VllmMode::Mono,
            provider: Provider::Scaleway,
        })
    }

    /// One event of every kind, in declaration order.
    fn every_event() -> Vec<E> {
        vec![
            requested_event(),
            E::ProvisioningStarted {
                zone: ZONE.into(),
                attempt: 1,
            },
            E::ZoneChanged {
                from: ZONE.into(),
                to: FALLBACK.into(),
                reason: "out of stock".into(),
            },
            E::VolumeCreated {
                volume_id: VOL.into(),
                zone: ZONE.into(),
                size_gb: 100,
            },
            E::ServerCreated {
                server_id: SRV.into(),
                zone: ZONE.into(),
                commercial_type: "L4-1-24G".into(),
            },
            E::VolumeAttached {
                volume_id: VOL.into(),
            },
            E::PowerOnRequested { attempt: 1 },
            E::ServerAllocationFailed { attempt: 1 },
            E::ServerStarted {
                public_ip: IP.into(),
            },
            E::SshHostKeyTrusted {
                fingerprint: KEY.into(),
            },
            E::SshAccessible,
            E::PhaseStarted {
                name: "start".into(),
            },
            E::PhaseLogged {
                name: "start".into(),
                stream: LogStream::Stderr,
                chunk: "héllo\n".into(),
            },
            E::PhaseCompleted {
                name: "start".into(),
                duration_ms: 1200,
                exit_code: 0,
            },
            E::PhaseFailed {
                name: "start".into(),
                duration_ms: 1200,
                exit_code: None,
                message: "boom".into(),
            },
            E::InstallCompleted,
            E::ReadinessCheckPassed {
                check: ReadinessCheck::VllmHttpOk,
                duration_ms: 3,
                detail: "200".into(),
            },
            E::ReadinessCheckFailed {
                check: ReadinessCheck::HealthCheck,
                duration_ms: 3,
                detail: "503".into(),
            },
            E::InstanceReady,
            E::InstanceUnavailable {
                reason: "health".into(),
            },
            E::ProviderServerStopped,
            E::ProviderServerDeleted {
                server_id: SRV.into(),
            },
            E::InstanceFailed {
                code: FailureCode::SshHostKeyChanged,
                message: "m".into(),
                at_status: S::Booting,
            },
            E::TerminationRequested {
                reason: Some("r".into()),
                from_status: S::Ready,
            },
            E::PowerOffRequested {
                server_id: SRV.into(),
            },
            E::ServerDeleted {
                server_id: SRV.into(),
            },
            E::VolumeDetached {
                volume_id: VOL.into(),
            },
            E::VolumeDeleted {
                volume_id: VOL.into(),
            },
            E::InstanceTerminated,
            E::ReinstallRequested { attempt: 2 },
            E::DrainStarted,
            E::InstanceArchived,
            E::WorkerRegistered {
                attempt: 1,
                token_hash: "ab".repeat(32),
                agent_version: "0.1.0".into(),
            },
            E::WorkerHealthChanged {
                healthy: false,
                reason: "worker heartbeat stale for 31 s".into(),
            },
            E::WorkerModelsChanged {
                models: vec!["m".into()],
            },
        ]
    }

    #[test]
    fn every_event_round_trips_through_json_under_a_stable_type_name() {
        const NAMES: [&str; 35] = [
            "InstanceRequested",
            "ProvisioningStarted",
            "ZoneChanged",
            "VolumeCreated",
            "ServerCreated",
            "VolumeAttached",
            "PowerOnRequested",
            "ServerAllocationFailed",
            "ServerStarted",
            "SshHostKeyTrusted",
            "SshAccessible",
            "PhaseStarted",
            "PhaseLogged",
            "PhaseCompleted",
            "PhaseFailed",
            "InstallCompleted",
            "ReadinessCheckPassed",
            "ReadinessCheckFailed",
            "InstanceReady",
            "InstanceUnavailable",
            "ProviderServerStopped",
            "ProviderServerDeleted",
            "InstanceFailed",
            "TerminationRequested",
            "PowerOffRequested",
            "ServerDeleted",
            "VolumeDetached",
            "VolumeDeleted",
            "InstanceTerminated",
            "ReinstallRequested",
            "DrainStarted",
            "InstanceArchived",
            "WorkerRegistered",
            "WorkerHealthChanged",
            "WorkerModelsChanged",
        ];
        let events = every_event();
        let types: Vec<String> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, NAMES);
        for event in events {
            assert_eq!(event.event_version(), "1");
            let json = serde_json::to_value(&event).unwrap();
            // Externally tagged by the variant name, as the store's payload column holds it.
            let tag = match &json {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(o) => o.keys().next().unwrap().clone(),
                other => panic!("{other}"),
            };
            assert_eq!(tag, event.event_type());
            assert_eq!(serde_json::from_value::<E>(json).unwrap(), event);
        }
    }

    #[test]
    fn payloads_use_the_documented_spellings() {
        let json = serde_json::to_value(E::InstanceFailed {
            code: FailureCode::ProviderServerDeleted,
            message: "gone".into(),
            at_status: S::Ready,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"InstanceFailed": {
                "code": "PROVIDER_SERVER_DELETED", "message": "gone", "at_status": "ready"
            }})
        );
        let json = serde_json::to_value(requested_event()).unwrap();
        assert_eq!(json["InstanceRequested"]["vllm_mode"], "mono");
        assert_eq!(json["InstanceRequested"]["provider"], "scaleway");
        let json = serde_json::to_value(E::ReadinessCheckPassed {
            check: ReadinessCheck::VllmWarmup,
            duration_ms: 1,
            detail: String::new(),
        })
        .unwrap();
        assert_eq!(json["ReadinessCheckPassed"]["check"], "vllm_warmup");
        assert_eq!(ReadinessCheck::VllmWarmup.as_str(), "WORKER_VLLM_WARMUP");
        assert_eq!(progress::READY, 100);
    }
}
