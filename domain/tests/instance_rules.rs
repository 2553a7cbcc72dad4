//! Every rule of the instance aggregate: the status x command matrix, the happy path with its
//! progress, idempotency of outcome commands, contradictions, request validation, zone
//! fallback, SSH host key pinning, reinstall, provider surprises and cleanup. Events on the wire
//! (JSON round trip, stable type names) are tested next to their definition in `events.rs`.

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use cqrs_es::test::TestFramework;
use inferplane_domain::catalog::Provider;
use inferplane_domain::instance::{
    FailureCode, Instance, InstanceCommand as C, InstanceError, InstanceEvent as E,
    InstanceRequested, InstanceStatus as S, LogStream, PhaseStatus, ReadinessCheck,
    RequestInstance, VllmMode, decide, state_after,
};
use uuid::Uuid;

const ZONE: &str = "fr-par-2";
const FALLBACK: &str = "nl-ams-1";
const SRV: &str = "srv-1";
const VOL: &str = "vol-1";
const IP: &str = "51.15.0.1";
const KEY: &str = "SHA256:pinnedHostKey";
const OTHER_KEY: &str = "SHA256:someoneElse";
const MODEL_ID: Uuid = Uuid::from_u128(0x1234);

// ---------------------------------------------------------------------------------------------
// Commands and fixtures

fn request() -> RequestInstance {
    RequestInstance {
        model_id: MODEL_ID,
        model_repo: "meta-llama/Llama-3.1-8B-Instruct".into(),
        model_required_vram_gb: 24,
        model_active: true,
        zone: ZONE.into(),
        allowed_zones: vec![FALLBACK.into()],
        instance_type: "L4-1-24G".into(),
        gpu_count: 1,
        vram_per_gpu_gb: 24,
        type_available_in_zone: true,
        hourly_price_micro_eur: 750_000,
        data_volume_gb: 100,
        vllm_mode: VllmMode::Mono,
    }
}

fn requested_event() -> E {
    E::InstanceRequested(InstanceRequested {
        model_id: MODEL_ID,
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

fn start(zone: &str, attempt: u32) -> C {
    C::StartProvisioning {
        zone: zone.into(),
        attempt,
    }
}

fn volume_created(id: &str, zone: &str) -> C {
    C::RecordVolumeCreated {
        volume_id: id.into(),
        zone: zone.into(),
        size_gb: 100,
    }
}

fn server_created(id: &str) -> C {
    C::RecordServerCreated {
        server_id: id.into(),
        zone: ZONE.into(),
        commercial_type: "L4-1-24G".into(),
    }
}

fn attach(id: &str) -> C {
    C::RecordVolumeAttached {
        volume_id: id.into(),
    }
}

fn running(ip: &str) -> C {
    C::RecordServerRunning {
        public_ip: ip.into(),
    }
}

fn ssh(key: &str) -> C {
    C::RecordSshAccessible {
        host_key_fingerprint: key.into(),
    }
}

fn phase_started(name: &str) -> C {
    C::RecordPhaseStarted { name: name.into() }
}

fn phase_completed(name: &str) -> C {
    C::RecordPhaseCompleted {
        name: name.into(),
        duration_ms: 1200,
        exit_code: 0,
    }
}

fn phase_failed(name: &str) -> C {
    C::RecordPhaseFailed {
        name: name.into(),
        duration_ms: 1200,
        exit_code: Some(1),
        message: "boom".into(),
    }
}

fn logged(name: &str, chunk: &str) -> C {
    C::RecordPhaseLogged {
        name: name.into(),
        stream: LogStream::Stdout,
        chunk: chunk.into(),
    }
}

fn check(check: ReadinessCheck, ok: bool) -> C {
    C::RecordReadinessCheck {
        check,
        ok,
        duration_ms: 35,
        detail: if ok { "ok".into() } else { "HTTP 503".into() },
    }
}

fn fail(code: FailureCode) -> C {
    C::Fail {
        code,
        message: format!("{code} happened"),
    }
}

fn server_deleted(id: &str) -> C {
    C::RecordServerDeleted {
        server_id: id.into(),
    }
}

fn detach(id: &str) -> C {
    C::RecordVolumeDetached {
        volume_id: id.into(),
    }
}

fn volume_deleted(id: &str) -> C {
    C::RecordVolumeDeleted {
        volume_id: id.into(),
    }
}

/// Decides and applies, as the store does.
fn run(instance: &mut Instance, command: C) -> Result<Vec<E>, InstanceError> {
    let before = instance.clone();
    let result = decide(instance, command);
    match &result {
        Ok(events) => {
            for e in events {
                instance.apply(e.clone());
            }
        }
        Err(_) => assert_eq!(*instance, before),
    }
    result
}

#[track_caller]
fn ok(instance: &mut Instance, command: C) -> Vec<E> {
    let name = command.name();
    run(instance, command).unwrap_or_else(|e| panic!("{name} refused: {e}"))
}

#[track_caller]
fn refused(instance: &mut Instance, command: C) -> InstanceError {
    let name = command.name();
    match run(instance, command) {
        Ok(events) => panic!("{name} accepted with {events:?}"),
        Err(e) => e,
    }
}

fn status(instance: &Instance) -> S {
    instance.status().expect("requested")
}

fn progress_of(instance: &Instance) -> u8 {
    instance.state.as_ref().expect("requested").progress
}

/// The commands that bring a new instance to `status` on the canonical path: one volume
/// (`vol-1`), one server (`srv-1`) at `IP`, host key `KEY`, phase `start` run.
fn steps(status: S) -> Vec<C> {
    let (base, extra) = match status {
        S::Requested => (None, vec![C::Request(request())]),
        S::Provisioning => (
            Some(S::Requested),
            vec![start(ZONE, 1), volume_created(VOL, ZONE)],
        ),
        S::Booting => (
            Some(S::Provisioning),
            vec![
                server_created(SRV),
                attach(VOL),
                C::RecordPowerOnRequested { attempt: 1 },
                running(IP),
            ],
        ),
        S::Installing => (Some(S::Booting), vec![ssh(KEY), phase_started("start")]),
        S::Starting => (
            Some(S::Installing),
            vec![phase_completed("start"), C::RecordInstallCompleted],
        ),
        S::Ready => (
            Some(S::Starting),
            ReadinessCheck::ALL
                .into_iter()
                .map(|c| check(c, true))
                .chain([C::MarkReady])
                .collect(),
        ),
        S::Unavailable => (
            Some(S::Ready),
            vec![C::MarkUnavailable {
                reason: "health check failing".into(),
            }],
        ),
        S::Draining => (Some(S::Ready), vec![C::Drain]),
        S::Terminating => (
            Some(S::Ready),
            vec![C::Terminate {
                reason: Some("no longer needed".into()),
            }],
        ),
        S::Terminated => (
            Some(S::Terminating),
            vec![
                C::RecordPowerOffRequested,
                server_deleted(SRV),
                detach(VOL),
                volume_deleted(VOL),
                C::ConfirmTerminated,
            ],
        ),
        S::Failed => (Some(S::Installing), vec![fail(FailureCode::InstallFailed)]),
        S::Archived => (Some(S::Terminated), vec![C::Archive]),
    };
    let mut all = base.map(steps).unwrap_or_default();
    all.extend(extra);
    all
}

fn instance_in(status: S) -> Instance {
    let mut instance = Instance::default();
    for command in steps(status) {
        ok(&mut instance, command);
    }
    assert_eq!(instance.status(), Some(status));
    instance
}

fn at(column: Option<S>) -> Instance {
    column.map(instance_in).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The status x command matrix

/// Columns of the matrix: no instance, then each status with the fixture of [`instance_in`].
const COLUMNS: [Option<S>; 13] = [
    None,
    Some(S::Requested),
    Some(S::Provisioning),
    Some(S::Booting),
    Some(S::Installing),
    Some(S::Starting),
    Some(S::Ready),
    Some(S::Unavailable),
    Some(S::Draining),
    Some(S::Terminating),
    Some(S::Terminated),
    Some(S::Failed),
    Some(S::Archived),
];

/// Accepted with at least one event.
const Y: &str = "+";
/// Accepted with no event: the fact is already recorded.
const N: &str = "=";
/// Refused: `illegal-transition`.
const X: &str = "!";
/// Refused: `instance-not-found`.
const NF: &str = "?";
const AR: &str = "already-requested";

/// One sample command per rule worth showing; several for a command whose answer depends on
/// its payload (a pinned host key or another one).
fn samples() -> Vec<C> {
    vec![
        C::Request(request()),
        start(ZONE, 2),
        C::ChangeZone {
            to: FALLBACK.into(),
            reason: "out of stock".into(),
        },
        volume_created("vol-2", ZONE),
        server_created("srv-2"),
        attach(VOL),
        C::RecordPowerOnRequested { attempt: 1 },
        C::RecordAllocationFailed { attempt: 1 },
        running(IP),
        ssh(KEY),
        ssh(OTHER_KEY),
        phase_started("docker_install"),
        logged("start", "hello\n"),
        phase_completed("start"),
        phase_failed("start"),
        C::RecordInstallCompleted,
        check(ReadinessCheck::HealthCheck, true),
        check(ReadinessCheck::ModelLoaded, false),
        C::MarkReady,
        C::MarkUnavailable {
            reason: "health check failing".into(),
        },
        C::RecordProviderServerStopped,
        C::RecordProviderServerDeleted,
        fail(FailureCode::HealthCheckFailed),
        C::Terminate {
            reason: Some("no longer needed".into()),
        },
        C::RecordPowerOffRequested,
        server_deleted(SRV),
        detach(VOL),
        volume_deleted(VOL),
        C::ConfirmTerminated,
        C::Reinstall,
        C::Drain,
        C::Archive,
        C::RegisterWorker {
            attempt: 1,
            token_hash: "ab".repeat(32),
            agent_version: "0.1.0".into(),
            from_ip: Some(IP.into()),
        },
        C::RecordWorkerHealth {
            healthy: false,
            reason: "worker heartbeat stale for 31 s".into(),
        },
        C::RecordWorkerModels {
            models: vec!["m".into()],
        },
    ]
}

/// The expected answer to `command` in each column. The match has no catch-all arm: a new
/// command does not compile until its row is written here.
#[rustfmt::skip]
fn expected(command: &C) -> [&'static str; 13] {
    //                                     absent req  prov boot inst start ready unav drain term'ing term'd failed arch
    match command {
        C::Request(_) =>                      [Y,  AR,  AR,  AR,  AR,  AR,   AR,   AR,  AR,   AR,      AR,    AR,    AR],
        C::StartProvisioning { .. } =>        [NF, Y,   Y,   X,   X,   X,    X,    X,   X,    X,       X,     X,     X],
        C::ChangeZone { .. } =>               [NF, Y,   Y,   X,   X,   X,    X,    X,   X,    X,       X,     X,     X],
        C::RecordVolumeCreated { .. } =>      [NF, X,   Y,   X,   X,   X,    X,    X,   X,    Y,       X,     Y,     X],
        C::RecordServerCreated { .. } => {
            let m = "server-mismatch";
                                              [NF, X,   Y,   m,   m,   m,    m,    m,   m,    m,       X,     m,     X]
        }
        C::RecordVolumeAttached { .. } => {
            let d = "volume-deleted";
                                              [NF, X,   Y,   N,   N,   N,    N,    N,   N,    N,       d,     N,     d]
        }
        C::RecordPowerOnRequested { .. } =>   [NF, X,   "no-server", N, N, N, N,   N,   N,    N,       N,     N,     N],
        C::RecordAllocationFailed { .. } =>   [NF, X,   "no-server", X, X, X, X,   X,   X,    X,       X,     X,     X],
        C::RecordServerRunning { .. } =>      [NF, X,   "no-server", N, N, N, N,   N,   N,    N,       N,     N,     N],
        C::RecordSshAccessible { host_key_fingerprint } if host_key_fingerprint == KEY =>
                                              [NF, X,   X,   Y,   N,   N,    N,    N,   N,    N,       N,     N,     N],
        C::RecordSshAccessible { .. } => {
            let h = "host-key-changed";
                                              [NF, X,   X,   Y,   h,   h,    h,    h,   h,    h,       h,     h,     h]
        }
        C::RecordPhaseStarted { .. } =>       [NF, X,   X,   X,   Y,   X,    X,    X,   X,    X,       X,     X,     X],
        C::RecordPhaseLogged { .. } =>        [NF, X,   X,   X,   Y,   X,    X,    X,   X,    X,       X,     X,     X],
        C::RecordPhaseCompleted { .. } =>     [NF, X,   X,   X,   Y,   N,    N,    N,   N,    N,       N,     X,     N],
        C::RecordPhaseFailed { .. } => {
            let c = "phase-conflict";
                                              [NF, X,   X,   X,   Y,   c,    c,    c,   c,    c,       c,     X,     c]
        }
        C::RecordInstallCompleted =>          [NF, X,   X,   X,   Y,   N,    N,    N,   N,    N,       N,     X,     N],
        C::RecordReadinessCheck { check: ReadinessCheck::HealthCheck, .. } =>
                                              [NF, X,   X,   X,   X,   Y,    N,    Y,   N,    N,       N,     X,     N],
        C::RecordReadinessCheck { .. } => {
            let c = "check-not-allowed";
                                              [NF, X,   X,   X,   X,   Y,    c,    c,   X,    X,       X,     X,     X]
        }
        C::MarkReady => {
            let r = "readiness-incomplete";
                                              [NF, X,   X,   X,   X,   r,    N,    r,   X,    X,       X,     X,     X]
        }
        C::MarkUnavailable { .. } =>          [NF, X,   X,   X,   X,   X,    Y,    N,   X,    X,       X,     X,     X],
        C::RecordProviderServerStopped =>     [NF, X,   X,   Y,   Y,   Y,    Y,    Y,   X,    X,       X,     X,     X],
        C::RecordProviderServerDeleted =>     [NF, X,   "no-server", Y, Y, Y, Y,   Y,   Y,    Y,       N,     Y,     N],
        C::Fail { .. } =>                     [NF, Y,   Y,   Y,   Y,   Y,    Y,    Y,   Y,    X,       X,     X,     X],
        C::Terminate { .. } =>                [NF, Y,   Y,   Y,   Y,   Y,    Y,    Y,   Y,    N,       N,     Y,     X],
        C::RecordPowerOffRequested =>         [NF, X,   X,   X,   X,   X,    X,    X,   X,    Y,       N,     Y,     N],
        C::RecordServerDeleted { .. } =>      [NF, X,   X,   X,   X,   X,    X,    X,   X,    Y,       N,     Y,     N],
        C::RecordVolumeDetached { .. } =>     [NF, X,   N,   X,   X,   X,    X,    X,   X,    Y,       N,     Y,     N],
        C::RecordVolumeDeleted { .. } =>      [NF, X,   Y,   X,   X,   X,    X,    X,   X,    Y,       N,     Y,     N],
        C::ConfirmTerminated =>               [NF, X,   X,   X,   X,   X,    X,    X,   X,    "resources-remain", N, X, X],
        C::Reinstall =>                       [NF, X,   X,   X,   X,   X,    Y,    Y,   X,    X,       X,     Y,     X],
        C::Drain =>                           [NF, X,   X,   X,   X,   X,    Y,    X,   N,    X,       X,     X,     X],
        C::Archive =>                         [NF, X,   X,   X,   X,   X,    X,    X,   X,    X,       Y,     "resources-remain", N],
        C::RegisterWorker { .. } =>           [NF, X,   X,   X,   Y,   Y,    Y,    Y,   X,    X,       X,     X,     X],
        C::RecordWorkerHealth { .. } | C::RecordWorkerModels { .. } => {
            let w = "no-worker";
                                              [NF, X,   X,   X,   w,   w,    w,    w,   w,    X,       X,     X,     X]
        }
    }
}

fn outcome(result: &Result<Vec<E>, InstanceError>) -> &'static str {
    match result {
        Ok(events) if events.is_empty() => N,
        Ok(_) => Y,
        Err(InstanceError::IllegalTransition { .. }) => X,
        Err(InstanceError::NotFound) => NF,
        Err(e) => e.code(),
    }
}

fn column_name(column: Option<S>) -> &'static str {
    column.map_or("absent", S::as_str)
}

#[test]
fn every_command_in_every_status_is_accepted_or_refused_as_the_matrix_says() {
    let mut mismatches = Vec::new();
    for command in samples() {
        let row = expected(&command);
        for (column, want) in COLUMNS.into_iter().zip(row) {
            let mut instance = at(column);
            let result = run(&mut instance, command.clone());
            let got = outcome(&result);
            if got != want {
                mismatches.push(format!(
                    "{} in {}: expected {want}, got {got} ({result:?})",
                    command.name(),
                    column_name(column)
                ));
            }
            if let Err(InstanceError::IllegalTransition { command: c, status }) = result {
                assert_eq!(c, command.name());
                assert_eq!(Some(status), column);
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn the_matrix_samples_every_command() {
    let names: BTreeSet<_> = samples().iter().map(C::name).collect();
    assert_eq!(names.len(), 33, "{names:?}");
}

#[test]
fn command_names_are_their_serialized_tags() {
    for command in samples() {
        let json = serde_json::to_value(&command).unwrap();
        assert_eq!(json["type"], command.name(), "{json}");
        let back: C = serde_json::from_value(json).unwrap();
        assert_eq!(back, command);
    }
}

#[test]
fn every_accepted_command_moves_to_the_status_its_events_name_and_never_lowers_progress() {
    for command in samples() {
        for column in COLUMNS {
            let mut instance = at(column);
            let Ok(events) = decide(&instance, command.clone()) else {
                continue;
            };
            let before = instance.state.as_ref().map_or(0, |s| s.progress);
            for event in events {
                let expected = event.status_after();
                instance.apply(event);
                if let Some(s) = expected {
                    assert_eq!(instance.status(), Some(s), "{}", command.name());
                }
            }
            if !matches!(command, C::Reinstall) {
                assert!(progress_of(&instance) >= before, "{}", command.name());
            }
        }
    }
}

/// Sending an accepted command a second time adds nothing: a process manager retried after a
/// crash is harmless. The exceptions are the request (refused as a duplicate), a reinstall (each
/// is a new attempt) and log chunks (a stream, not a fact).
#[test]
fn every_accepted_outcome_sent_again_yields_no_event() {
    for command in samples() {
        for column in COLUMNS {
            let mut instance = at(column);
            match run(&mut instance, command.clone()) {
                Ok(events) if !events.is_empty() => {}
                _ => continue,
            }
            let again = run(&mut instance, command.clone());
            let where_ = format!("{} after {}", command.name(), column_name(column));
            match &command {
                C::Request(_) => assert_eq!(again, Err(InstanceError::AlreadyRequested)),
                C::Reinstall => assert!(
                    matches!(again, Err(InstanceError::IllegalTransition { .. })),
                    "{where_}: {again:?}"
                ),
                C::RecordPhaseLogged { .. } => {
                    assert_eq!(again.map(|e| e.len()), Ok(1), "{where_}")
                }
                _ => assert_eq!(again, Ok(vec![]), "{where_}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The life of an instance

#[test]
fn happy_path_to_ready_then_terminated_and_archived_with_progress_at_each_step() {
    let mut i = Instance::default();
    let step = |i: &mut Instance, command: C, status: S, progress: u8| {
        let name = command.name();
        ok(i, command);
        assert_eq!(
            (self::status(i), progress_of(i)),
            (status, progress),
            "after {name}"
        );
    };
    step(&mut i, C::Request(request()), S::Requested, 5);
    step(&mut i, start(ZONE, 1), S::Provisioning, 5);
    step(&mut i, volume_created(VOL, ZONE), S::Provisioning, 5);
    step(&mut i, server_created(SRV), S::Provisioning, 20);
    step(&mut i, attach(VOL), S::Provisioning, 25);
    step(
        &mut i,
        C::RecordPowerOnRequested { attempt: 1 },
        S::Provisioning,
        30,
    );
    step(&mut i, running(IP), S::Booting, 40);
    step(&mut i, ssh(KEY), S::Installing, 50);
    for phase in inferplane_domain::instance::INSTALL_PHASES {
        step(&mut i, phase_started(phase), S::Installing, 50);
        step(&mut i, logged(phase, "output\n"), S::Installing, 50);
        step(&mut i, phase_completed(phase), S::Installing, 50);
    }
    step(&mut i, C::RecordInstallCompleted, S::Starting, 60);
    step(
        &mut i,
        check(ReadinessCheck::VllmHttpOk, true),
        S::Starting,
        70,
    );
    step(
        &mut i,
        check(ReadinessCheck::ModelLoaded, true),
        S::Starting,
        80,
    );
    step(
        &mut i,
        check(ReadinessCheck::VllmWarmup, true),
        S::Starting,
        90,
    );
    step(
        &mut i,
        check(ReadinessCheck::HealthCheck, true),
        S::Starting,
        95,
    );
    step(&mut i, C::MarkReady, S::Ready, 100);

    let s = i.state.as_ref().unwrap();
    assert_eq!(s.server_id(), Some(SRV));
    assert_eq!(s.public_ip.as_deref(), Some(IP));
    assert_eq!(s.ssh_host_key.as_deref(), Some(KEY));
    assert_eq!(s.install.phases.len(), 10);
    assert!(
        s.install
            .phases
            .iter()
            .all(|p| p.status == PhaseStatus::Completed && p.log_bytes == 7)
    );

    step(&mut i, C::Terminate { reason: None }, S::Terminating, 100);
    let s = i.state.as_ref().unwrap();
    assert!(s.termination_requested);
    assert_eq!(s.terminate_reason, None);
    assert_eq!(
        refused(&mut i, C::ConfirmTerminated),
        InstanceError::ResourcesRemain {
            server: Some(SRV.into()),
            volumes: vec![VOL.into()],
        }
    );
    step(&mut i, C::RecordPowerOffRequested, S::Terminating, 100);
    step(&mut i, server_deleted(SRV), S::Terminating, 100);
    assert_eq!(
        refused(&mut i, C::ConfirmTerminated),
        InstanceError::ResourcesRemain {
            server: None,
            volumes: vec![VOL.into()],
        }
    );
    step(&mut i, detach(VOL), S::Terminating, 100);
    step(&mut i, volume_deleted(VOL), S::Terminating, 100);
    assert!(!i.state.as_ref().unwrap().resources_left());
    step(&mut i, C::ConfirmTerminated, S::Terminated, 100);
    step(&mut i, C::Archive, S::Archived, 100);
}

#[test]
fn the_aggregate_adapter_writes_what_decide_decides() {
    TestFramework::<Instance>::with(())
        .given_no_previous_events()
        .when(C::Request(request()))
        .then_expect_events(vec![requested_event()]);
    TestFramework::<Instance>::with(())
        .given(vec![requested_event()])
        .when(start(ZONE, 1))
        .then_expect_events(vec![E::ProvisioningStarted {
            zone: ZONE.into(),
            attempt: 1,
        }]);
    TestFramework::<Instance>::with(())
        .given(vec![requested_event()])
        .when(C::MarkReady)
        .then_expect_error(InstanceError::IllegalTransition {
            command: "mark_ready",
            status: S::Requested,
        });
}

#[test]
fn replaying_the_events_gives_the_same_state_at_every_point() {
    let mut instance = Instance::default();
    let mut history = Vec::new();
    for command in steps(S::Archived) {
        history.extend(ok(&mut instance, command));
        assert_eq!(state_after(history.clone()), instance);
    }
    let json = serde_json::to_string(&instance).unwrap();
    assert_eq!(serde_json::from_str::<Instance>(&json).unwrap(), instance);
    assert_eq!(Instance::TYPE, "instance");
}

// ---------------------------------------------------------------------------------------------
// The request

#[test]
fn a_request_records_the_catalog_facts_with_the_requested_zone_first() {
    let events = decide(&Instance::default(), C::Request(request())).unwrap();
    assert_eq!(events, vec![requested_event()]);

    let only_zone = RequestInstance {
        allowed_zones: vec![],
        ..request()
    };
    let zones_of = |cmd| match decide(&Instance::default(), C::Request(cmd))
        .unwrap()
        .remove(0)
    {
        E::InstanceRequested(e) => e.allowed_zones,
        other => panic!("{other:?}"),
    };
    assert_eq!(zones_of(only_zone), vec![ZONE.to_string()]);
    let messy = RequestInstance {
        allowed_zones: vec![
            FALLBACK.into(),
            ZONE.into(),
            " nl-ams-1 ".into(),
            "fr-par-1".into(),
        ],
        ..request()
    };
    assert_eq!(zones_of(messy), vec![ZONE, FALLBACK, "fr-par-1"]);

    let lower = RequestInstance {
        instance_type: " l4-1-24g ".into(),
        ..request()
    };
    let mut i = Instance::default();
    ok(&mut i, C::Request(lower));
    let s = i.state.as_ref().unwrap();
    assert_eq!(s.instance_type, "L4-1-24G");
    assert_eq!((s.progress, s.install.attempt), (5, 1));
}

#[test]
fn invalid_requests_are_refused_with_the_rule_they_break() {
    let cases: Vec<(RequestInstance, &str)> = vec![
        (
            RequestInstance {
                model_active: false,
                ..request()
            },
            "model-inactive",
        ),
        (
            RequestInstance {
                model_required_vram_gb: 25,
                ..request()
            },
            "incompatible-model",
        ),
        (
            RequestInstance {
                type_available_in_zone: false,
                ..request()
            },
            "type-not-available-in-zone",
        ),
        (
            RequestInstance {
                data_volume_gb: 9,
                ..request()
            },
            "invalid-data-volume",
        ),
        (
            RequestInstance {
                data_volume_gb: 100_001,
                ..request()
            },
            "invalid-data-volume",
        ),
        (
            RequestInstance {
                data_volume_gb: -100,
                ..request()
            },
            "invalid-data-volume",
        ),
        (
            RequestInstance {
                zone: "Paris 2".into(),
                ..request()
            },
            "invalid-zone",
        ),
        (
            RequestInstance {
                allowed_zones: vec!["-bad".into()],
                ..request()
            },
            "invalid-zone",
        ),
        (
            RequestInstance {
                instance_type: "L4 1".into(),
                ..request()
            },
            "invalid-instance-type",
        ),
        (
            RequestInstance {
                model_repo: "llama".into(),
                ..request()
            },
            "invalid-model-repo",
        ),
        (
            RequestInstance {
                gpu_count: 0,
                model_required_vram_gb: 0,
                ..request()
            },
            "invalid-gpu-spec",
        ),
        (
            RequestInstance {
                hourly_price_micro_eur: -1,
                ..request()
            },
            "invalid-price",
        ),
    ];
    for (cmd, code) in cases {
        let err = decide(&Instance::default(), C::Request(cmd.clone())).unwrap_err();
        assert_eq!(err.code(), code, "{cmd:?}: {err}");
    }
    assert_eq!(
        decide(
            &Instance::default(),
            C::Request(RequestInstance {
                gpu_count: 2,
                vram_per_gpu_gb: 24,
                model_required_vram_gb: 48,
                ..request()
            })
        )
        .map(|e| e.len()),
        Ok(1),
        "total VRAM of all GPUs counts"
    );
    assert_eq!(
        decide(
            &Instance::default(),
            C::Request(RequestInstance {
                model_required_vram_gb: 80,
                ..request()
            })
        ),
        Err(InstanceError::IncompatibleModel {
            required_vram_gb: 80,
            total_vram_gb: 24
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Provisioning and zone fallback

#[test]
fn zone_fallback_cleans_the_orphan_volume_then_retries_in_the_next_allowed_zone() {
    let mut i = instance_in(S::Provisioning);
    assert_eq!(
        refused(
            &mut i,
            C::ChangeZone {
                to: "fr-par-1".into(),
                reason: "x".into()
            }
        ),
        InstanceError::ZoneNotAllowed {
            zone: "fr-par-1".into(),
            allowed: vec![ZONE.into(), FALLBACK.into()],
        }
    );
    ok(&mut i, volume_deleted(VOL));
    let events = ok(
        &mut i,
        C::ChangeZone {
            to: FALLBACK.into(),
            reason: "PROVIDER_OUT_OF_STOCK in fr-par-2".into(),
        },
    );
    assert_eq!(
        events,
        vec![E::ZoneChanged {
            from: ZONE.into(),
            to: FALLBACK.into(),
            reason: "PROVIDER_OUT_OF_STOCK in fr-par-2".into(),
        }]
    );
    assert_eq!(
        refused(&mut i, start(ZONE, 2)),
        InstanceError::ZoneMismatch {
            current: FALLBACK.into(),
            requested: ZONE.into(),
        }
    );
    assert_eq!(ok(&mut i, start(FALLBACK, 2)).len(), 1);
    // The first attempt's command, delivered late, is recognised as already recorded.
    assert_eq!(ok(&mut i, start(ZONE, 1)), vec![]);
    ok(&mut i, volume_created("vol-2", FALLBACK));
    ok(
        &mut i,
        C::RecordServerCreated {
            server_id: SRV.into(),
            zone: FALLBACK.into(),
            commercial_type: "L4-1-24G".into(),
        },
    );
    let s = i.state.as_ref().unwrap();
    assert_eq!((s.zone.as_str(), s.provisioning_attempts), (FALLBACK, 2));
    assert_eq!(s.live_volume_ids(), vec!["vol-2".to_string()]);
    assert_eq!(
        s.volumes.len(),
        2,
        "the orphan stays in the record, deleted"
    );

    // Once a server exists, the zone is settled and no retry may create another one.
    let settled = InstanceError::ServerAlreadyCreated {
        server_id: SRV.into(),
    };
    assert_eq!(
        refused(
            &mut i,
            C::ChangeZone {
                to: ZONE.into(),
                reason: "x".into()
            }
        ),
        settled
    );
    assert_eq!(refused(&mut i, start(FALLBACK, 3)), settled);
    assert_eq!(
        refused(&mut i, server_created("srv-9")),
        InstanceError::ServerMismatch {
            recorded: SRV.into(),
            got: "srv-9".into(),
        }
    );
}

#[test]
fn power_on_retries_and_allocation_failures_are_counted_per_attempt() {
    let mut i = instance_in(S::Provisioning);
    ok(&mut i, server_created(SRV));
    assert_eq!(
        refused(&mut i, C::RecordAllocationFailed { attempt: 1 }),
        InstanceError::PowerOnNotRequested { attempt: 1 }
    );
    ok(&mut i, C::RecordPowerOnRequested { attempt: 1 });
    assert_eq!(
        ok(&mut i, C::RecordAllocationFailed { attempt: 1 }).len(),
        1
    );
    assert_eq!(ok(&mut i, C::RecordAllocationFailed { attempt: 1 }), vec![]);
    assert_eq!(
        status(&i),
        S::Provisioning,
        "an allocation failure changes no status"
    );
    ok(&mut i, C::RecordPowerOnRequested { attempt: 2 });
    assert_eq!(ok(&mut i, C::RecordPowerOnRequested { attempt: 1 }), vec![]);
    let s = i.state.as_ref().unwrap();
    assert_eq!((s.power_on_attempts, s.allocation_failed_attempt), (2, 1));
    assert_eq!(
        refused(&mut i, C::RecordPowerOnRequested { attempt: 0 }),
        InstanceError::InvalidAttempt { attempt: 0 }
    );
    assert_eq!(
        refused(&mut i, attach("vol-9")),
        InstanceError::UnknownVolume {
            volume_id: "vol-9".into()
        }
    );
    ok(&mut i, running(" 51.15.0.1 "));
    assert_eq!(i.state.as_ref().unwrap().public_ip.as_deref(), Some(IP));
}

#[test]
fn contradicting_facts_are_refused() {
    let mut booting = instance_in(S::Booting);
    assert_eq!(
        refused(&mut booting, running("51.15.0.2")),
        InstanceError::IpMismatch {
            recorded: IP.into(),
            got: "51.15.0.2".into(),
        }
    );
    assert_eq!(
        refused(&mut booting, running("not-an-ip")).code(),
        "invalid-ip"
    );
    assert_eq!(
        refused(&mut booting, server_created("srv-2")).code(),
        "server-mismatch"
    );

    let mut terminating = instance_in(S::Terminating);
    assert_eq!(
        refused(&mut terminating, server_deleted("srv-2")),
        InstanceError::ServerMismatch {
            recorded: SRV.into(),
            got: "srv-2".into(),
        }
    );
    assert_eq!(
        refused(&mut terminating, volume_deleted("vol-9")),
        InstanceError::UnknownVolume {
            volume_id: "vol-9".into()
        }
    );
    assert_eq!(
        refused(&mut terminating, server_deleted("")).code(),
        "invalid-resource-id"
    );

    let mut installing = instance_in(S::Installing);
    ok(&mut installing, phase_failed("start"));
    assert_eq!(
        refused(&mut installing, phase_completed("start")),
        InstanceError::PhaseConflict {
            name: "start".into(),
            recorded: PhaseStatus::Failed,
        }
    );
}

#[test]
fn a_create_racing_the_termination_is_still_recorded_so_that_cleanup_finds_it() {
    let mut i = instance_in(S::Requested);
    ok(&mut i, start(ZONE, 1));
    ok(
        &mut i,
        C::Terminate {
            reason: Some("changed my mind".into()),
        },
    );
    ok(&mut i, C::ConfirmTerminated);
    assert_eq!(status(&i), S::Terminated, "nothing was created yet");
    let mut i = instance_in(S::Provisioning);
    ok(&mut i, C::Terminate { reason: None });
    ok(&mut i, server_created(SRV));
    assert_eq!(
        progress_of(&i),
        5,
        "a terminating instance makes no progress"
    );
    assert_eq!(
        refused(&mut i, C::ConfirmTerminated),
        InstanceError::ResourcesRemain {
            server: Some(SRV.into()),
            volumes: vec![VOL.into()],
        }
    );
    ok(&mut i, server_deleted(SRV));
    ok(&mut i, volume_deleted(VOL));
    ok(&mut i, C::ConfirmTerminated);
    assert_eq!(status(&i), S::Terminated);
}

// ---------------------------------------------------------------------------------------------
// SSH, install phases, readiness

#[test]
fn the_first_ssh_host_key_is_pinned_and_any_other_is_refused() {
    let mut i = instance_in(S::Booting);
    assert_eq!(
        ok(&mut i, ssh(KEY)),
        vec![
            E::SshHostKeyTrusted {
                fingerprint: KEY.into()
            },
            E::SshAccessible
        ]
    );
    assert_eq!(ok(&mut i, ssh(KEY)), vec![], "same key, already installing");
    assert_eq!(
        refused(&mut i, ssh(OTHER_KEY)),
        InstanceError::HostKeyChanged {
            pinned: KEY.into(),
            presented: OTHER_KEY.into(),
        }
    );
    assert_eq!(
        refused(&mut i, ssh("has space")),
        InstanceError::InvalidHostKey
    );
    assert_eq!(refused(&mut i, ssh("")), InstanceError::InvalidHostKey);

    // Back in booting after a reinstall, the pinned key is expected again, without a new trust.
    let mut i = instance_in(S::Ready);
    ok(&mut i, C::Reinstall);
    assert_eq!(refused(&mut i, ssh(OTHER_KEY)).code(), "host-key-changed");
    assert_eq!(ok(&mut i, ssh(KEY)), vec![E::SshAccessible]);
    assert_eq!(status(&i), S::Installing);
}

#[test]
fn install_phases_are_named_bounded_and_recorded_once() {
    let mut i = instance_in(S::Installing);
    assert_eq!(
        refused(&mut i, phase_started("agent_download")),
        InstanceError::InvalidPhase {
            name: "agent_download".into()
        }
    );
    assert_eq!(
        refused(&mut i, logged("docker_pull", "x")),
        InstanceError::PhaseNotStarted {
            name: "docker_pull".into()
        }
    );
    assert_eq!(
        refused(&mut i, phase_completed("docker_pull")),
        InstanceError::PhaseNotStarted {
            name: "docker_pull".into()
        }
    );
    let max = "a".repeat(8192);
    assert_eq!(ok(&mut i, logged("start", &max)).len(), 1);
    assert_eq!(
        refused(&mut i, logged("start", &format!("{max}é"))),
        InstanceError::ChunkTooLarge { bytes: 8194 }
    );
    assert_eq!(
        ok(&mut i, logged("start", "")),
        vec![],
        "an empty chunk adds nothing"
    );
    ok(
        &mut i,
        C::RecordPhaseLogged {
            name: "start".into(),
            stream: LogStream::Stderr,
            chunk: "warning\n".into(),
        },
    );
    assert_eq!(ok(&mut i, phase_started("start")), vec![]);
    ok(&mut i, phase_completed("start"));
    ok(&mut i, phase_started("mount_data_volume"));
    ok(
        &mut i,
        C::RecordPhaseFailed {
            name: "mount_data_volume".into(),
            duration_ms: 30_000,
            exit_code: None,
            message: format!("timed out {}", "!".repeat(5000)),
        },
    );
    let s = i.state.as_ref().unwrap();
    let start = s.install.phase("start").unwrap();
    assert_eq!(
        (
            start.status,
            start.duration_ms,
            start.exit_code,
            start.log_bytes
        ),
        (PhaseStatus::Completed, Some(1200), Some(0), 8192 + 8)
    );
    let mount = s.install.phase("mount_data_volume").unwrap();
    assert_eq!((mount.status, mount.exit_code), (PhaseStatus::Failed, None));
    assert_eq!(
        refused(&mut i, C::RecordInstallCompleted),
        InstanceError::InstallPhaseFailed {
            name: "mount_data_volume".into()
        }
    );
    ok(&mut i, fail(FailureCode::InstallFailed));
    let failure = i.state.as_ref().unwrap().failure.clone().unwrap();
    assert_eq!(
        (failure.code, failure.at_status),
        (FailureCode::InstallFailed, S::Installing)
    );
}

#[test]
fn free_text_is_bounded_rather_than_refused() {
    let mut i = instance_in(S::Installing);
    let events = ok(
        &mut i,
        C::Fail {
            code: FailureCode::ProviderError,
            message: "x".repeat(10_000),
        },
    );
    let E::InstanceFailed { message, .. } = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(message.chars().count(), 2000);
}

#[test]
fn readiness_checks_raise_progress_and_only_changes_are_recorded() {
    let mut i = instance_in(S::Starting);
    assert_eq!(
        ok(&mut i, check(ReadinessCheck::VllmHttpOk, false)).len(),
        1
    );
    assert_eq!(
        ok(&mut i, check(ReadinessCheck::VllmHttpOk, false)),
        vec![],
        "the same failure again"
    );
    assert_eq!(progress_of(&i), 60);
    ok(&mut i, check(ReadinessCheck::VllmHttpOk, true));
    assert_eq!(progress_of(&i), 70);
    ok(&mut i, check(ReadinessCheck::HealthCheck, true));
    assert_eq!(progress_of(&i), 95, "checks may pass out of order");
    ok(&mut i, check(ReadinessCheck::ModelLoaded, false));
    assert_eq!(
        refused(&mut i, C::MarkReady),
        InstanceError::ReadinessIncomplete {
            check: ReadinessCheck::ModelLoaded
        }
    );
    ok(&mut i, check(ReadinessCheck::ModelLoaded, true));
    ok(&mut i, C::MarkReady);
    assert_eq!((status(&i), progress_of(&i)), (S::Ready, 100));

    // Once ready, periodic health checks add events only when the outcome changes.
    assert_eq!(ok(&mut i, check(ReadinessCheck::HealthCheck, true)), vec![]);
    assert_eq!(
        ok(&mut i, check(ReadinessCheck::HealthCheck, false)).len(),
        1
    );
    assert_eq!(
        status(&i),
        S::Ready,
        "the readiness processor decides on unavailability"
    );
    assert_eq!(
        refused(&mut i, check(ReadinessCheck::VllmWarmup, false)),
        InstanceError::CheckNotAllowed {
            check: ReadinessCheck::VllmWarmup,
            status: S::Ready,
        }
    );
    ok(
        &mut i,
        C::MarkUnavailable {
            reason: "health check failing".into(),
        },
    );
    let s = i.state.as_ref().unwrap();
    assert_eq!(
        s.unavailable_reason.as_deref(),
        Some("health check failing")
    );
    assert_eq!(progress_of(&i), 100);
    assert_eq!(
        refused(&mut i, C::MarkReady),
        InstanceError::ReadinessIncomplete {
            check: ReadinessCheck::HealthCheck
        }
    );
    ok(&mut i, check(ReadinessCheck::HealthCheck, true));
    ok(&mut i, C::MarkReady);
    assert_eq!(status(&i), S::Ready);
    assert_eq!(i.state.as_ref().unwrap().unavailable_reason, None);
}

// ---------------------------------------------------------------------------------------------
// Reinstall

#[test]
fn reinstall_starts_a_new_attempt_from_booting_with_phases_and_progress_reset() {
    let mut i = instance_in(S::Ready);
    assert_eq!(
        ok(&mut i, C::Reinstall),
        vec![E::ReinstallRequested { attempt: 2 }]
    );
    let s = i.state.as_ref().unwrap();
    assert_eq!((s.status, s.progress), (S::Booting, 40));
    assert_eq!((s.install.attempt, s.install.completed), (2, false));
    assert!(s.install.phases.is_empty() && s.readiness.is_empty());
    assert_eq!(s.server_id(), Some(SRV), "the same server is reused");

    ok(&mut i, ssh(KEY));
    ok(&mut i, phase_started("start"));
    ok(&mut i, phase_completed("start"));
    ok(&mut i, C::RecordInstallCompleted);
    for c in ReadinessCheck::ALL {
        ok(&mut i, check(c, true));
    }
    ok(&mut i, C::MarkReady);
    assert_eq!((status(&i), progress_of(&i)), (S::Ready, 100));
}

#[test]
fn a_failed_instance_is_reinstalled_only_if_it_had_reached_ssh_and_keeps_its_server() {
    let mut i = instance_in(S::Failed);
    ok(&mut i, C::Reinstall);
    let s = i.state.as_ref().unwrap();
    assert_eq!((s.status, s.failure.clone()), (S::Booting, None));

    let mut early = instance_in(S::Booting);
    ok(&mut early, fail(FailureCode::SshNotAccessible));
    assert_eq!(
        refused(&mut early, C::Reinstall),
        InstanceError::ReinstallNotPossible {
            at_status: S::Booting
        }
    );

    let mut gone = instance_in(S::Ready);
    ok(&mut gone, C::RecordProviderServerDeleted);
    assert_eq!(refused(&mut gone, C::Reinstall), InstanceError::NoServer);
}

// ---------------------------------------------------------------------------------------------
// Provider surprises, failure, cleanup

#[test]
fn a_server_deleted_at_the_provider_fails_a_ready_instance() {
    let mut i = instance_in(S::Ready);
    assert_eq!(
        ok(&mut i, C::RecordProviderServerDeleted),
        vec![
            E::ProviderServerDeleted {
                server_id: SRV.into()
            },
            E::InstanceFailed {
                code: FailureCode::ProviderServerDeleted,
                message: "server srv-1 was deleted at the provider".into(),
                at_status: S::Ready,
            }
        ]
    );
    let s = i.state.as_ref().unwrap();
    assert_eq!((s.status, s.progress), (S::Failed, 100));
    assert_eq!(s.server_id(), None);
    assert_eq!(
        refused(&mut i, C::Archive),
        InstanceError::ResourcesRemain {
            server: None,
            volumes: vec![VOL.into()],
        }
    );
    // The failed instance is cleaned up in place, then archived.
    ok(&mut i, detach(VOL));
    ok(&mut i, volume_deleted(VOL));
    ok(&mut i, C::Archive);
    assert_eq!(status(&i), S::Archived);
}

#[test]
fn a_server_deleted_at_the_provider_while_terminating_is_just_one_deletion_less() {
    let mut i = instance_in(S::Terminating);
    assert_eq!(
        ok(&mut i, C::RecordProviderServerDeleted),
        vec![E::ProviderServerDeleted {
            server_id: SRV.into()
        }]
    );
    assert_eq!(status(&i), S::Terminating);
    assert_eq!(
        ok(&mut i, server_deleted(SRV)),
        vec![],
        "already recorded deleted"
    );
    assert_eq!(
        ok(&mut i, C::RecordPowerOffRequested),
        vec![],
        "nothing to power off"
    );
    ok(&mut i, detach(VOL));
    ok(&mut i, volume_deleted(VOL));
    ok(&mut i, C::ConfirmTerminated);
}

#[test]
fn a_server_stopped_behind_our_back_makes_the_instance_unavailable_until_healthy_again() {
    let mut i = instance_in(S::Ready);
    assert_eq!(
        ok(&mut i, C::RecordProviderServerStopped),
        vec![E::ProviderServerStopped]
    );
    let s = i.state.as_ref().unwrap();
    assert_eq!(s.status, S::Unavailable);
    assert!(s.server.as_ref().unwrap().stopped);
    assert!(s.unavailable_reason.is_some());
    assert_eq!(ok(&mut i, C::RecordProviderServerStopped), vec![]);
    assert_eq!(refused(&mut i, C::MarkReady).code(), "readiness-incomplete");
    ok(&mut i, check(ReadinessCheck::HealthCheck, true));
    ok(&mut i, C::MarkReady);
    assert!(!i.state.as_ref().unwrap().server.as_ref().unwrap().stopped);
}

#[test]
fn the_first_failure_wins_and_a_failed_instance_can_still_be_terminated() {
    let mut i = instance_in(S::Starting);
    ok(&mut i, fail(FailureCode::StartupTimeout));
    assert_eq!(ok(&mut i, fail(FailureCode::StartupTimeout)), vec![]);
    assert_eq!(
        refused(&mut i, fail(FailureCode::HealthCheckFailed)),
        InstanceError::IllegalTransition {
            command: "fail",
            status: S::Failed,
        }
    );
    assert_eq!(
        ok(
            &mut i,
            C::Terminate {
                reason: Some("  ".into())
            }
        ),
        vec![E::TerminationRequested {
            reason: None,
            from_status: S::Failed,
        }]
    );
    let s = i.state.as_ref().unwrap();
    assert_eq!(
        s.failure.as_ref().map(|f| f.code),
        Some(FailureCode::StartupTimeout)
    );
    assert_eq!(s.progress, 60);
}

#[test]
fn a_draining_instance_is_terminated_from_draining() {
    let mut i = instance_in(S::Draining);
    assert_eq!(
        ok(
            &mut i,
            C::Terminate {
                reason: Some("scale down".into())
            }
        ),
        vec![E::TerminationRequested {
            reason: Some("scale down".into()),
            from_status: S::Draining,
        }]
    );
}
