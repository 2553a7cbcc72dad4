//! Rules of the worker agent on the instance aggregate: one registration per install attempt,
//! from the instance's address; only changes of health and models recorded; an unhealthy
//! worker keeps the instance out of service until it is healthy again.

use cqrs_es::Aggregate;
use inferplane_domain::catalog::Provider;
use inferplane_domain::instance::{
    Instance, InstanceCommand as C, InstanceError, InstanceEvent as E, InstanceRequested,
    InstanceStatus as S, ReadinessCheck, VllmMode, decide,
};
use inferplane_domain::worker_credentials::token_hash;
use uuid::Uuid;

const IP: &str = "51.15.0.1";

fn given(events: Vec<E>) -> Instance {
    let mut instance = Instance::default();
    for e in events {
        instance.apply(e);
    }
    instance
}

fn to_starting() -> Vec<E> {
    vec![
        E::InstanceRequested(InstanceRequested {
            model_id: Uuid::from_u128(1),
            model_repo: "Qwen/Qwen2.5-0.5B-Instruct".into(),
            model_required_vram_gb: 4,
            zone: "fr-par-2".into(),
            allowed_zones: vec!["fr-par-2".into()],
            instance_type: "L4-1-24G".into(),
            gpu_count: 1,
            vram_per_gpu_gb: 24,
            hourly_price_micro_eur: 750_000,
            data_volume_gb: 50,
            vllm_mode: VllmMode::Mono,
            provider: Provider::Scaleway,
        }),
        E::ProvisioningStarted {
            zone: "fr-par-2".into(),
            attempt: 1,
        },
        E::ServerCreated {
            server_id: "srv-1".into(),
            zone: "fr-par-2".into(),
            commercial_type: "L4-1-24G".into(),
        },
        E::ServerStarted {
            public_ip: IP.into(),
        },
        E::SshAccessible,
        E::InstallCompleted,
    ]
}

fn to_ready() -> Vec<E> {
    let mut events = to_starting();
    for check in ReadinessCheck::ALL {
        events.push(E::ReadinessCheckPassed {
            check,
            duration_ms: 1,
            detail: "ok".into(),
        });
    }
    events.push(E::InstanceReady);
    events
}

fn register(attempt: u32, token: &str, from_ip: Option<&str>) -> C {
    C::RegisterWorker {
        attempt,
        token_hash: token_hash(token),
        agent_version: "0.1.0".into(),
        from_ip: from_ip.map(str::to_string),
    }
}

fn registered(mut events: Vec<E>, token: &str) -> Vec<E> {
    events.push(E::WorkerRegistered {
        attempt: 1,
        token_hash: token_hash(token),
        agent_version: "0.1.0".into(),
    });
    events
}

#[test]
fn a_worker_registers_once_per_install_attempt_with_its_token_hashed() {
    let instance = given(to_starting());
    let events = decide(&instance, register(1, "wk-one", Some(IP))).unwrap();
    assert_eq!(
        events,
        vec![E::WorkerRegistered {
            attempt: 1,
            token_hash: token_hash("wk-one"),
            agent_version: "0.1.0".into(),
        }]
    );
    let instance = given(registered(to_starting(), "wk-one"));
    // The same registration again (a retried request) changes nothing.
    assert_eq!(
        decide(&instance, register(1, "wk-one", Some(IP))),
        Ok(vec![])
    );
    // Another token for the same attempt is a second registration: refused.
    assert_eq!(
        decide(&instance, register(1, "wk-two", Some(IP))),
        Err(InstanceError::WorkerAlreadyRegistered { attempt: 1 })
    );
}

#[test]
fn a_registration_from_another_address_or_attempt_or_status_is_refused() {
    let instance = given(to_starting());
    assert_eq!(
        decide(&instance, register(1, "t", Some("203.0.113.9"))),
        Err(InstanceError::WorkerAddressMismatch {
            recorded: IP.into(),
            got: "203.0.113.9".into()
        })
    );
    // An IPv4-mapped IPv6 peer is the same address.
    assert!(decide(&instance, register(1, "t", Some("::ffff:51.15.0.1"))).is_ok());
    // The operator may disable the address check.
    assert!(decide(&instance, register(1, "t", None)).is_ok());
    assert_eq!(
        decide(&instance, register(2, "t", Some(IP))),
        Err(InstanceError::StaleInstallAttempt { current: 1, got: 2 })
    );
    assert_eq!(
        decide(&instance, register(0, "t", Some(IP))),
        Err(InstanceError::InvalidAttempt { attempt: 0 })
    );
    let bad_hash = C::RegisterWorker {
        attempt: 1,
        token_hash: "not-a-hash".into(),
        agent_version: String::new(),
        from_ip: None,
    };
    assert_eq!(
        decide(&instance, bad_hash),
        Err(InstanceError::InvalidTokenHash)
    );
    let mut terminating = to_ready();
    terminating.push(E::TerminationRequested {
        reason: None,
        from_status: S::Ready,
    });
    assert!(matches!(
        decide(&given(terminating), register(1, "t", Some(IP))),
        Err(InstanceError::IllegalTransition {
            command: "register_worker",
            status: S::Terminating
        })
    ));
}

#[test]
fn a_reinstall_forgets_the_worker_so_that_the_new_attempt_registers_again() {
    let mut events = registered(to_ready(), "wk-one");
    events.push(E::ReinstallRequested { attempt: 2 });
    events.push(E::SshAccessible);
    let instance = given(events);
    assert_eq!(instance.state.as_ref().unwrap().worker, None);
    assert_eq!(
        decide(&instance, register(1, "wk-one", Some(IP))),
        Err(InstanceError::StaleInstallAttempt { current: 2, got: 1 })
    );
    assert_eq!(
        decide(&instance, register(2, "wk-two", Some(IP)))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn only_changes_of_health_and_models_are_recorded() {
    let instance = given(registered(to_ready(), "t"));
    let healthy = C::RecordWorkerHealth {
        healthy: true,
        reason: "engine serves the model".into(),
    };
    let events = decide(&instance, healthy.clone()).unwrap();
    assert_eq!(events.len(), 1);
    let mut all = registered(to_ready(), "t");
    all.extend(events);
    let instance = given(all.clone());
    assert_eq!(decide(&instance, healthy), Ok(vec![]));

    let models = |m: &[&str]| C::RecordWorkerModels {
        models: m.iter().map(|s| s.to_string()).collect(),
    };
    let events = decide(&instance, models(&["b", "a", "a"])).unwrap();
    assert_eq!(
        events,
        vec![E::WorkerModelsChanged {
            models: vec!["a".into(), "b".into()]
        }]
    );
    all.extend(events);
    let instance = given(all);
    // The same set in another order is no change.
    assert_eq!(decide(&instance, models(&["b", "a"])), Ok(vec![]));
    assert!(matches!(
        decide(&instance, models(&[""])),
        Err(InstanceError::InvalidModelName { .. })
    ));
}

#[test]
fn health_and_models_need_a_registered_worker() {
    let instance = given(to_ready());
    let cmd = C::RecordWorkerHealth {
        healthy: false,
        reason: "stale".into(),
    };
    assert_eq!(decide(&instance, cmd), Err(InstanceError::NoWorker));
}

#[test]
fn a_stale_worker_makes_the_instance_unavailable_and_blocks_ready_until_it_is_healthy() {
    let mut events = registered(to_ready(), "t");
    let stale = "worker heartbeat stale for 31 s";
    for cmd in [
        C::RecordWorkerHealth {
            healthy: false,
            reason: stale.into(),
        },
        C::MarkUnavailable {
            reason: stale.into(),
        },
    ] {
        let new = decide(&given(events.clone()), cmd).unwrap();
        events.extend(new);
    }
    let instance = given(events.clone());
    let state = instance.state.as_ref().unwrap();
    assert_eq!(state.status, S::Unavailable);
    assert_eq!(state.unavailable_reason.as_deref(), Some(stale));
    // A passing health check is not enough while the worker is recorded unhealthy.
    let health = C::RecordReadinessCheck {
        check: ReadinessCheck::HealthCheck,
        ok: true,
        duration_ms: 1,
        detail: "ok".into(),
    };
    events.extend(decide(&instance, health).unwrap());
    assert_eq!(
        decide(&given(events.clone()), C::MarkReady),
        Err(InstanceError::WorkerUnhealthy {
            reason: stale.into()
        })
    );
    // Heartbeats resume: healthy again, then ready.
    let healthy = C::RecordWorkerHealth {
        healthy: true,
        reason: "heartbeats resumed".into(),
    };
    events.extend(decide(&given(events.clone()), healthy).unwrap());
    assert_eq!(
        decide(&given(events), C::MarkReady),
        Ok(vec![E::InstanceReady])
    );
}

#[test]
fn an_instance_without_a_worker_still_becomes_ready_on_its_checks() {
    let mut events = to_starting();
    for check in ReadinessCheck::ALL {
        events.push(E::ReadinessCheckPassed {
            check,
            duration_ms: 1,
            detail: "ok".into(),
        });
    }
    assert_eq!(
        decide(&given(events), C::MarkReady),
        Ok(vec![E::InstanceReady])
    );
}
