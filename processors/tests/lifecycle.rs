//! The instance lifecycle end to end: processors against the Scaleway simulator over HTTP,
//! the simulated VM's engine probed over HTTP, faults injected at the provider.

mod common;

use std::time::Duration;

use common::{Harness, client};
use inferplane_domain::instance::{FailureCode, InstanceStatus};
use inferplane_scaleway::operations as op;
use inferplane_scaleway::sim::{BurstFault, Faults, SimConfig, StockFault};

#[tokio::test]
async fn a_request_becomes_ready_and_a_termination_leaves_nothing_at_the_provider() {
    let h = Harness::new(SimConfig::default()).await;
    let p = h.process().await;
    let id = h.request("fr-par-2", &[]).await;
    let ready = h.wait_for(id, InstanceStatus::Ready, 30).await;
    assert_eq!(ready.progress, 100);
    let ip = ready.public_ip.clone().expect("an IP");
    assert!(ip.starts_with("127."), "a simulated VM address: {ip}");
    assert_eq!(ready.zone, "fr-par-2");
    // The engine at the VM's address serves the model.
    let models: serde_json::Value = reqwest::get(format!("http://{ip}:8000/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "org/test-model-8b");
    // The data volume and the root disk are recorded and attached.
    assert_eq!(ready.volumes.len(), 2, "{:?}", ready.volumes);
    assert!(ready.volumes.iter().all(|v| v.attached && !v.deleted));
    let types = h.event_types(id).await;
    for expected in [
        "InstanceRequested",
        "ProvisioningStarted",
        "VolumeCreated",
        "ServerCreated",
        "VolumeAttached",
        "PowerOnRequested",
        "ServerStarted",
        "SshHostKeyTrusted",
        "SshAccessible",
        "PhaseStarted",
        "PhaseCompleted",
        "InstallCompleted",
        "ReadinessCheckPassed",
        "InstanceReady",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} missing in {types:?}"
        );
    }
    let snap = h.snapshot();
    assert_eq!(snap.servers.len(), 1);
    assert_eq!(snap.calls(op::CREATE_SERVER), 1);

    h.terminate(id).await;
    let done = h.wait_for(id, InstanceStatus::Terminated, 30).await;
    assert!(!done.resources_left());
    h.wait_empty(5).await;
    // The VM's engine went with it.
    assert_eq!(h.installer.running().await, 0);
    p.stop().await;
}

#[tokio::test]
async fn out_of_stock_moves_to_the_next_allowed_zone_or_fails_cleanly() {
    let h = Harness::new(SimConfig::default().with_faults(Faults {
        out_of_stock: vec![StockFault {
            zone: "fr-par-1".into(),
            commercial_type: "L4-1-24G".into(),
        }],
        ..Faults::default()
    }))
    .await;
    let p = h.process().await;
    let moved = h.request("fr-par-1", &["fr-par-2"]).await;
    let stuck = h.request("fr-par-1", &[]).await;
    let ready = h.wait_for(moved, InstanceStatus::Ready, 30).await;
    assert_eq!(ready.zone, "fr-par-2");
    assert!(
        h.event_types(moved)
            .await
            .iter()
            .any(|t| t == "ZoneChanged")
    );
    let failed = h.wait_for(stuck, InstanceStatus::Failed, 30).await;
    assert_eq!(
        failed.failure.as_ref().map(|f| f.code),
        Some(FailureCode::ProviderOutOfStock)
    );
    // The volume made in the first zone did not stay behind.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snap = h.snapshot();
    assert!(
        snap.volumes.iter().all(|v| v.zone == "fr-par-2"),
        "{:?}",
        snap.volumes.iter().map(|v| &v.zone).collect::<Vec<_>>()
    );
    h.terminate(moved).await;
    h.wait_for(moved, InstanceStatus::Terminated, 30).await;
    h.wait_empty(10).await;
    p.stop().await;
}

#[tokio::test]
async fn a_quota_reached_fails_the_instance_with_its_code_and_releases_the_volume() {
    let h = Harness::new(SimConfig::default().with_gpu_quota_per_zone(0)).await;
    let p = h.process().await;
    let id = h.request("fr-par-1", &[]).await;
    let failed = h.wait_for(id, InstanceStatus::Failed, 30).await;
    assert_eq!(
        failed.failure.as_ref().map(|f| f.code),
        Some(FailureCode::ProviderQuotaExceeded)
    );
    h.wait_empty(10).await;
    p.stop().await;
}

#[tokio::test]
async fn error_bursts_and_silent_allocation_failures_are_retried() {
    let h = Harness::new(SimConfig::default().with_faults(Faults {
        allocation_failures: 2,
        burst: Some(BurstFault {
            status: 503,
            count: 6,
            retry_after_secs: None,
            operations: vec![op::GET_SERVER.into(), op::LIST_VOLUMES.into()],
            after_handler: false,
        }),
        ..Faults::default()
    }))
    .await;
    let p = h.process().await;
    let id = h.request("nl-ams-1", &[]).await;
    let ready = h.wait_for(id, InstanceStatus::Ready, 40).await;
    assert_eq!(
        ready.power_on_attempts, 3,
        "two allocations failed, the third worked"
    );
    let types = h.event_types(id).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "ServerAllocationFailed")
            .count(),
        2
    );
    assert_eq!(h.snapshot().calls(op::CREATE_SERVER), 1);
    h.terminate(id).await;
    h.wait_for(id, InstanceStatus::Terminated, 30).await;
    h.wait_empty(10).await;
    p.stop().await;
}

#[tokio::test]
async fn a_server_deleted_or_stopped_behind_our_back_is_detected_and_recorded() {
    let h = Harness::new(SimConfig::default()).await;
    let p = h.process().await;
    let deleted = h.request("fr-par-1", &[]).await;
    let stopped = h.request("fr-par-1", &[]).await;
    let a = h.wait_for(deleted, InstanceStatus::Ready, 30).await;
    let b = h.wait_for(stopped, InstanceStatus::Ready, 30).await;
    assert!(h.sim.delete_server_behind_back(a.server_id().unwrap()));
    assert!(h.sim.stop_server_behind_back(b.server_id().unwrap()));
    let failed = h.wait_for(deleted, InstanceStatus::Failed, 10).await;
    assert_eq!(
        failed.failure.as_ref().map(|f| f.code),
        Some(FailureCode::ProviderServerDeleted)
    );
    let unavailable = h.wait_for(stopped, InstanceStatus::Unavailable, 10).await;
    assert!(unavailable.unavailable_reason.is_some());
    // The failed instance's volumes are deleted by the terminator.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.state(deleted).await.resources_left() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "volumes of the failed instance remain"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    h.terminate(stopped).await;
    h.wait_for(stopped, InstanceStatus::Terminated, 30).await;
    h.wait_empty(10).await;
    p.stop().await;
}

#[tokio::test]
async fn terminating_while_provisioning_leaves_nothing_behind() {
    let h = Harness::new(SimConfig::default()).await;
    let p = h.process().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(h.request("fr-par-2", &[]).await);
    }
    // Wait until provisioning is under way for each, then terminate.
    for id in &ids {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while h.state(*id).await.status == InstanceStatus::Requested {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        h.terminate(*id).await;
    }
    for id in &ids {
        h.wait_for(*id, InstanceStatus::Terminated, 30).await;
    }
    h.wait_empty(10).await;
    p.stop().await;
}

#[tokio::test]
async fn a_processor_killed_between_the_create_call_and_its_record_does_not_create_twice() {
    let h = Harness::new(SimConfig::default().with_faults(Faults {
        // The server is created at once; the answer takes 1.5 s: the crash lands in between.
        latency_ms: 1500,
        latency_operations: vec![op::CREATE_SERVER.into()],
        ..Faults::default()
    }))
    .await;
    let first = h.process().await;
    let id = h.request("fr-par-1", &[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.snapshot().servers.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no server created");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().await;
    assert!(
        h.state(id).await.server.is_none(),
        "the crash came before the record"
    );
    h.sim.update_faults(|f| f.latency_ms = 0);

    let second = h.process().await;
    let ready = h.wait_for(id, InstanceStatus::Ready, 30).await;
    let snap = h.snapshot();
    assert_eq!(snap.servers.len(), 1, "exactly one server");
    assert_eq!(snap.calls(op::CREATE_SERVER), 1);
    assert_eq!(snap.calls(op::CREATE_VOLUME), 1, "exactly one data volume");
    assert_eq!(ready.server_id(), Some(snap.servers[0].id.as_str()));
    h.terminate(id).await;
    h.wait_for(id, InstanceStatus::Terminated, 30).await;
    h.wait_empty(10).await;
    second.stop().await;
}

#[tokio::test]
async fn two_processes_at_once_make_no_double_side_effects() {
    let h = Harness::new(SimConfig::default()).await;
    let a = h.process().await;
    let b = h.process().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let zone = ["fr-par-1", "fr-par-2", "nl-ams-1"][i % 3];
        ids.push(h.request(zone, &[]).await);
    }
    for id in &ids {
        h.wait_for(*id, InstanceStatus::Ready, 40).await;
    }
    let snap = h.snapshot();
    assert_eq!(snap.calls(op::CREATE_SERVER), 6);
    assert_eq!(snap.calls(op::CREATE_VOLUME), 6);
    assert_eq!(snap.servers.len(), 6);
    for id in &ids {
        h.terminate(*id).await;
    }
    for id in &ids {
        h.wait_for(*id, InstanceStatus::Terminated, 30).await;
    }
    h.wait_empty(10).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_reconciler_reaps_planted_orphans_within_one_period() {
    let h = Harness::new(SimConfig::default()).await;
    let cloud = client(&h.sim);
    // Resources tagged as ours for an instance the store never heard of.
    let ghost = uuid::Uuid::now_v7();
    let tags = vec![
        "inferplane".to_string(),
        format!("inferplane-instance={ghost}"),
    ];
    let server = cloud
        .create_server(
            "fr-par-1",
            &inferplane_scaleway::CreateServerRequest::new(
                "orphan",
                "L4-1-24G",
                "ubuntu_jammy_gpu_os_12",
            )
            .tag(tags[0].clone())
            .tag(tags[1].clone()),
        )
        .await
        .unwrap();
    cloud
        .create_volume(
            "nl-ams-1",
            &inferplane_scaleway::CreateVolumeRequest {
                name: "orphan-data".into(),
                project_id: None,
                size: 50_000_000_000,
                perf_iops: None,
                tags: tags.clone(),
            },
        )
        .await
        .unwrap();
    // Something that is not ours stays.
    cloud
        .create_volume(
            "nl-ams-1",
            &inferplane_scaleway::CreateVolumeRequest {
                name: "someone-else".into(),
                project_id: None,
                size: 10_000_000_000,
                perf_iops: None,
                tags: vec!["other-team".into()],
            },
        )
        .await
        .unwrap();
    let p = h.process().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let snap = h.snapshot();
        if snap.servers.is_empty() && snap.volumes.len() == 1 {
            assert_eq!(snap.volumes[0].name, "someone-else");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "orphans still there"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Each reap is recorded right after the provider's delete answers: wait for the records.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let reaped = loop {
        let reaped: Vec<String> = sqlx::query_scalar(
            "select payload -> 'OrphanReaped' ->> 'resource_id' from events where event_type = 'OrphanReaped'",
        )
        .fetch_all(&h.db.pool)
        .await
        .unwrap();
        if reaped.len() >= 2 || tokio::time::Instant::now() >= deadline {
            break reaped;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(
        reaped.contains(&server.id),
        "the reaped server is recorded: {reaped:?}"
    );
    assert_eq!(reaped.len(), 2, "{reaped:?}");
    p.stop().await;
}

#[tokio::test]
async fn chaos_fifty_requests_and_terminations_with_faults_leave_nothing_billable() {
    use rand::{Rng, SeedableRng};
    let h = Harness::new(SimConfig::default()).await;
    let p = h.process().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1f3a_2026);
    let zones = ["fr-par-1", "fr-par-2", "nl-ams-1"];
    let mut ids = Vec::new();
    for i in 0..50 {
        // A new fault every few requests: stock, bursts, allocation failures, latency.
        if i % 5 == 0 {
            let mut f = Faults::default();
            match rng.random_range(0..5) {
                0 => {
                    f.out_of_stock = vec![StockFault {
                        zone: zones[rng.random_range(0..3)].into(),
                        commercial_type: "L4-1-24G".into(),
                    }]
                }
                1 => {
                    f.burst = Some(BurstFault {
                        status: [429, 500, 503][rng.random_range(0..3)],
                        count: rng.random_range(1..6),
                        retry_after_secs: None,
                        operations: vec![],
                        after_handler: false,
                    })
                }
                2 => f.allocation_failures = rng.random_range(1..4),
                3 => f.latency_ms = rng.random_range(5..60),
                _ => {}
            }
            h.sim.set_faults(f).unwrap();
        }
        let zone = zones[rng.random_range(0..3)];
        let fallback: Vec<&str> = zones.iter().copied().filter(|z| *z != zone).collect();
        let id = if rng.random_bool(0.5) {
            h.request(zone, &fallback).await
        } else {
            h.request(zone, &[]).await
        };
        ids.push(id);
        // Some are terminated at once, some a little later, some only at the end.
        if rng.random_bool(0.3) {
            h.terminate(id).await;
        } else if rng.random_bool(0.3) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
            h.terminate(id).await;
        }
    }
    // A server deleted behind our back in the middle of it all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(s) = h.snapshot().servers.first() {
        h.sim.delete_server_behind_back(&s.id);
    }
    h.sim.set_faults(Faults::default()).unwrap();
    // Everything still alive is terminated (failed instances clean up by themselves).
    for id in &ids {
        let s = h.state(*id).await;
        if !matches!(
            s.status,
            InstanceStatus::Terminating | InstanceStatus::Terminated | InstanceStatus::Failed
        ) {
            h.terminate(*id).await;
        }
    }
    for id in &ids {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let s = h.state(*id).await;
            let settled = s.status == InstanceStatus::Terminated
                || (s.status == InstanceStatus::Failed && !s.resources_left());
            if settled {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "instance {id} did not settle: {} {:?}",
                s.status.as_str(),
                s.failure
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    h.wait_empty(20).await;
    let snap = h.snapshot();
    assert!(snap.servers.is_empty() && snap.volumes.is_empty());
    p.stop().await;
}

#[tokio::test]
async fn a_server_terminated_before_its_root_disk_was_recorded_takes_the_disk_with_it() {
    use inferplane_domain::instance::InstanceCommand as C;
    let h = Harness::new(SimConfig::default()).await;
    let cloud = client(&h.sim);
    // Provisioning got as far as recording the server, not its root disk (a block volume the
    // server was created with, carrying no tag of ours); then the operator terminated.
    let id = h.request("fr-par-1", &[]).await;
    let tag = format!("inferplane-instance={}", id.0);
    let data = cloud
        .create_volume(
            "fr-par-1",
            &inferplane_scaleway::CreateVolumeRequest {
                name: "data".into(),
                project_id: None,
                size: 50_000_000_000,
                perf_iops: None,
                tags: vec!["inferplane".into(), tag.clone()],
            },
        )
        .await
        .unwrap();
    let server = cloud
        .create_server(
            "fr-par-1",
            &inferplane_scaleway::CreateServerRequest::new(
                "s",
                "L4-1-24G",
                "ubuntu_jammy_gpu_os_12",
            )
            .volume(0, inferplane_scaleway::VolumeTemplate::sbs(20_000_000_000))
            .tag("inferplane")
            .tag(tag),
        )
        .await
        .unwrap();
    let commands = [
        C::StartProvisioning {
            zone: "fr-par-1".into(),
            attempt: 1,
        },
        C::RecordVolumeCreated {
            volume_id: data.id.clone(),
            zone: "fr-par-1".into(),
            size_gb: 50,
        },
        C::RecordServerCreated {
            server_id: server.id.clone(),
            zone: "fr-par-1".into(),
            commercial_type: "L4-1-24G".into(),
        },
        C::Terminate { reason: None },
    ];
    for cmd in commands {
        h.command(id, cmd).await;
    }
    assert_eq!(
        h.snapshot().volumes.len(),
        2,
        "data volume and root disk exist"
    );

    let p = h.process().await;
    let done = h.wait_for(id, InstanceStatus::Terminated, 30).await;
    assert_eq!(
        done.volumes.len(),
        2,
        "the root disk was recorded, then deleted"
    );
    assert!(done.volumes.iter().all(|v| v.deleted));
    h.wait_empty(10).await;
    p.stop().await;
}

#[tokio::test]
async fn reinstall_runs_the_bootstrap_again_on_the_same_server() {
    use inferplane_domain::instance::InstanceCommand as C;
    let h = Harness::new(SimConfig::default()).await;
    let p = h.process().await;
    let id = h.request("fr-par-2", &[]).await;
    let first = h.wait_for(id, InstanceStatus::Ready, 30).await;
    h.command(id, C::Reinstall).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let again = loop {
        let s = h.state(id).await;
        if s.status == InstanceStatus::Ready && s.install.attempt == 2 {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready again: {} attempt {}",
            s.status.as_str(),
            s.install.attempt
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(again.server_id(), first.server_id(), "the same server");
    assert_eq!(
        again.ssh_host_key, first.ssh_host_key,
        "the pinned host key held"
    );
    assert_eq!(h.snapshot().calls(op::CREATE_SERVER), 1);
    let types = h.event_types(id).await;
    assert_eq!(types.iter().filter(|t| *t == "InstallCompleted").count(), 2);
    assert_eq!(types.iter().filter(|t| *t == "InstanceReady").count(), 2);
    h.terminate(id).await;
    h.wait_for(id, InstanceStatus::Terminated, 30).await;
    h.wait_empty(10).await;
    p.stop().await;
}

/// The watchdog's first look at an instance the bootstrap has just made ready is one interval
/// on (the bootstrap's checks have just found its engine answering), and then it looks on
/// every interval. Only the watchdog gets a server once provisioning is done, so the
/// provider's count of those calls says when it looked.
#[tokio::test]
async fn the_watchdog_first_looks_at_a_just_ready_instance_one_interval_on() {
    let mut settings = common::settings();
    settings.watchdog_interval = Duration::from_millis(1500);
    let h = Harness::with_settings(SimConfig::default(), settings).await;
    let _process = h.process().await;
    let id = h.request("fr-par-2", &[]).await;
    // The count while the bootstrap runs (provisioning is done), up to the last look before
    // the instance is seen ready.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut before_ready = None;
    loop {
        let calls = h.snapshot().calls(op::GET_SERVER);
        let status = h.state(id).await.status;
        if status == InstanceStatus::Ready {
            break;
        }
        if matches!(
            status,
            InstanceStatus::Installing | InstanceStatus::Starting
        ) {
            before_ready = Some(calls);
        }
        assert!(tokio::time::Instant::now() < deadline, "not ready in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before_ready = before_ready.expect("seen installing or starting");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        h.snapshot().calls(op::GET_SERVER),
        before_ready,
        "no look at the server the moment it became ready"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.snapshot().calls(op::GET_SERVER) == before_ready {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watchdog looks one interval on"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
