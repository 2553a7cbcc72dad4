//! Server lifecycle: creation, power-on steps and public IP, power-off, deletion, terminate,
//! stop in place, reboot, allocation failures, servers changed behind our back, user data.

use std::net::Ipv4Addr;

use inferplane_scaleway::sim::Faults;
use inferplane_scaleway::{
    CreateServerRequest, CreateVolumeRequest, ListVolumesFilter, ScalewayError, ServerAction,
    ServerState, UpdateServerRequest, VolumeStatus, VolumeTemplate,
};

use crate::support::*;

#[tokio::test]
async fn create_returns_a_stopped_server_in_the_real_shape() {
    let env = env().await;
    let server = create(&env, "vm-a", "instance:a").await;
    assert_eq!(server.state, ServerState::Stopped);
    assert_eq!(server.state_detail, "");
    assert_eq!(server.allowed_actions, vec!["poweron", "backup"]);
    assert!(server.public_ips.is_empty());
    assert!(server.public_ip.is_none());
    assert!(server.public_address().is_none());
    assert_eq!(server.project, PROJECT);
    assert_eq!(server.zone, ZONE);
    assert_eq!(server.commercial_type, "L4-1-24G");
    assert!(server.dynamic_ip_required);
    assert_eq!(server.boot_type.as_deref(), Some("local"));
    assert_eq!(server.tags, vec!["instance:a"]);
    assert_eq!(server.image.as_ref().map(|i| i.name.as_str()), Some(IMAGE));
    assert!(server.creation_date.is_some() && server.modification_date.is_some());
    // L4 has no local storage: the default root volume is a Block Storage volume.
    let root = server.volumes.get("0");
    assert_eq!(root.map(|v| v.volume_type.as_str()), Some("sbs_volume"));
    assert_eq!(root.map(|v| v.boot), Some(true));
    let root_id = root.map(|v| v.id.clone()).unwrap_or_default();
    let volume = ok(env.client.get_volume(ZONE, &root_id).await, "root volume");
    assert_eq!(volume.status, VolumeStatus::InUse);
    assert_eq!(volume.attached_server_id(), Some(server.id.as_str()));

    let fetched = ok(env.client.get_server(ZONE, &server.id).await, "get");
    assert_eq!(fetched, server);
}

#[tokio::test]
async fn full_lifecycle_poweron_poweroff_delete() {
    let env = slow_env().await;
    let server = create(&env, "vm-life", "instance:life").await;

    let task = ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron",
    );
    assert_eq!(task.description, "server_poweron");
    assert_eq!(task.status, "pending");
    assert_eq!(
        task.href_result.as_deref(),
        Some(format!("/servers/{}", server.id).as_str())
    );

    let (running, details) = wait_for(&env, &server.id, ServerState::Running).await;
    assert_eq!(running.state_detail, "booted");
    assert!(
        details.contains(&"allocating node".to_string()),
        "{details:?}"
    );
    assert!(
        details.contains(&"booting kernel".to_string()),
        "{details:?}"
    );
    // The steps appear in order.
    let order = [
        "allocating node",
        "provisioning node",
        "booting kernel",
        "kernel-started",
        "booted",
    ];
    let positions: Vec<usize> = details
        .iter()
        .filter_map(|d| order.iter().position(|o| o == d))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{details:?}");
    assert!(running.allows(ServerAction::Poweroff));
    assert!(running.allows(ServerAction::Terminate));

    // A dynamic public IP from the simulator's pool, also in the deprecated field.
    let address = running.public_address().map(str::to_string);
    let Some(address) = address else {
        panic!("a running server has a public address: {running:?}");
    };
    let parsed: Ipv4Addr = ok(address.parse(), "address");
    assert!(
        env.sim.ip_pool().contains(parsed),
        "{address} in {}",
        env.sim.ip_pool()
    );
    assert_eq!(running.public_ips.len(), 1);
    assert!(running.public_ips[0].dynamic);
    assert_eq!(running.public_ips[0].family, "inet");
    assert_eq!(running.public_ips[0].state.as_deref(), Some("attached"));
    assert_eq!(
        running.public_ip.as_ref().map(|ip| ip.address.as_str()),
        Some(address.as_str())
    );

    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweroff)
            .await,
        "poweroff",
    );
    let (stopped, details) = wait_for(&env, &server.id, ServerState::Stopped).await;
    assert!(
        details.contains(&"stopping".to_string()) || details.len() == 1,
        "{details:?}"
    );
    assert!(
        stopped.public_ips.is_empty(),
        "dynamic IP released on poweroff"
    );
    assert!(env.sim.state().ips.is_empty());

    ok(env.client.delete_server(ZONE, &server.id).await, "delete");
    let gone = env.client.get_server(ZONE, &server.id).await;
    assert!(matches!(&gone, Err(e) if e.is_not_found()), "{gone:?}");
    // The root block volume outlives the server (detached, still billed).
    let snapshot = env.sim.state();
    assert!(snapshot.servers.is_empty());
    assert_eq!(snapshot.volumes.len(), 1);
    assert_eq!(snapshot.volumes[0].status, "available");
    assert!(snapshot.volumes[0].references.is_empty());
}

#[tokio::test]
async fn terminate_deletes_local_volumes_and_keeps_block_volumes() {
    let env = env().await;
    // A type with local storage: root l_ssd, plus a block data volume given at creation.
    let request = CreateServerRequest::new("render", "RENDER-S", IMAGE)
        .tag("instance:term")
        .volume(0, VolumeTemplate::local(20_000_000_000))
        .volume(1, VolumeTemplate::sbs(50_000_000_000));
    let server = ok(env.client.create_server(ZONE, &request).await, "create");
    assert_eq!(
        server.volumes.get("0").map(|v| v.volume_type.as_str()),
        Some("l_ssd")
    );
    assert_eq!(
        server.volumes.get("1").map(|v| v.volume_type.as_str()),
        Some("sbs_volume")
    );
    // And one more block volume attached afterwards.
    let extra = ok(
        env.client
            .create_volume(
                ZONE,
                &CreateVolumeRequest::new("extra", 30_000_000_000).tag("instance:term"),
            )
            .await,
        "create volume",
    );
    wait_volume(&env, &extra.id, VolumeStatus::Available).await;
    let attached = ok(
        env.client.attach_volume(ZONE, &server.id, &extra.id).await,
        "attach",
    );
    assert_eq!(attached.volumes.len(), 3);

    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron",
    );
    wait_for(&env, &server.id, ServerState::Running).await;
    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Terminate)
            .await,
        "terminate",
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match env.client.get_server(ZONE, &server.id).await {
            Err(e) if e.is_not_found() => break,
            Ok(s) => assert_eq!(s.state, ServerState::Stopping),
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "terminate never completed"
        );
        tokio::time::sleep(STEP / 2).await;
    }
    // Both block volumes remain, detached; the local one is gone with the server.
    let volumes = ok(
        env.client
            .list_volumes(ZONE, &ListVolumesFilter::default())
            .await,
        "list",
    );
    assert_eq!(volumes.len(), 2, "{volumes:?}");
    for volume in &volumes {
        assert_eq!(volume.status, VolumeStatus::Available);
        assert!(volume.attached_server_id().is_none());
        assert!(volume.last_detached_at.is_some());
    }
    assert!(env.sim.state().ips.is_empty(), "dynamic IP released");
}

pub async fn wait_volume(env: &Env, id: &str, status: VolumeStatus) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let volume = ok(env.client.get_volume(ZONE, id).await, "get volume");
        if volume.status == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "volume never {status}"
        );
        tokio::time::sleep(STEP / 2).await;
    }
}

#[tokio::test]
async fn allocation_failure_falls_back_to_stopped_then_second_poweron_succeeds() {
    let env = slow_env().await;
    env.sim.update_faults(|f| f.allocation_failures = 1);
    let server = create(&env, "vm-alloc", "instance:alloc").await;

    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron 1",
    );
    let first = ok(env.client.get_server(ZONE, &server.id).await, "get");
    assert_eq!(first.state, ServerState::Starting);
    assert_eq!(first.state_detail, "allocating node");
    let (stopped, details) = wait_for(&env, &server.id, ServerState::Stopped).await;
    assert!(stopped.public_ips.is_empty());
    assert!(!details.contains(&"booted".to_string()));
    assert_eq!(env.sim.faults().allocation_failures, 0);
    assert!(env.sim.state().ips.is_empty(), "reserved IP released");

    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron 2",
    );
    let (running, _) = wait_for(&env, &server.id, ServerState::Running).await;
    assert!(running.public_address().is_some());
    assert_eq!(env.sim.state().actions.get("poweron"), Some(&2));
}

#[tokio::test]
async fn server_deleted_behind_our_back_is_not_found() {
    let env = env().await;
    let server = create(&env, "vm-ghost", "instance:ghost").await;
    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron",
    );
    wait_for(&env, &server.id, ServerState::Running).await;

    // Through the admin HTTP API, as an operator or another process would.
    let http = raw_http();
    let url = format!("{}/_sim/servers/{}/delete", env.sim.base_url(), server.id);
    let response = ok(http.post(&url).send().await, "admin delete");
    assert_eq!(response.status().as_u16(), 204);
    assert!(response.headers().contains_key("x-request-id"));

    let got = env.client.get_server(ZONE, &server.id).await;
    assert!(
        matches!(&got, Err(ScalewayError::NotFound { resource, resource_id })
            if resource == "instance_server" && *resource_id == server.id),
        "{got:?}"
    );
    let action = env
        .client
        .server_action(ZONE, &server.id, ServerAction::Poweroff)
        .await;
    assert!(matches!(&action, Err(e) if e.is_not_found()), "{action:?}");
    let delete = env.client.delete_server(ZONE, &server.id).await;
    assert!(matches!(&delete, Err(e) if e.is_not_found()), "{delete:?}");
    // Its dynamic IP is released and its root volume detached.
    let snapshot = env.sim.state();
    assert!(snapshot.ips.is_empty());
    assert_eq!(
        snapshot.volumes.first().map(|v| v.status.as_str()),
        Some("available")
    );
    // Deleting an unknown server through the admin API is a 404.
    let again = ok(http.post(&url).send().await, "admin delete again");
    assert_eq!(again.status().as_u16(), 404);
}

#[tokio::test]
async fn server_stopped_behind_our_back_cancels_its_boot() {
    let env = env().await;
    let server = create(&env, "vm-stop", "instance:stop").await;
    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron",
    );
    // Stopped while still starting: the boot never completes.
    assert!(env.sim.stop_server_behind_back(&server.id));
    tokio::time::sleep(STEP * 8).await;
    let stopped = ok(env.client.get_server(ZONE, &server.id).await, "get");
    assert_eq!(stopped.state, ServerState::Stopped);
    assert!(stopped.public_ips.is_empty());

    // And through the admin HTTP API, from running.
    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron",
    );
    wait_for(&env, &server.id, ServerState::Running).await;
    let url = format!("{}/_sim/servers/{}/stop", env.sim.base_url(), server.id);
    let response = ok(raw_http().post(&url).send().await, "admin stop");
    assert_eq!(response.status().as_u16(), 204);
    let stopped = ok(env.client.get_server(ZONE, &server.id).await, "get");
    assert_eq!(stopped.state, ServerState::Stopped);
    assert!(stopped.public_address().is_none());
}

#[tokio::test]
async fn stop_in_place_keeps_the_address_and_reboot_returns_to_running() {
    let env = slow_env().await;
    let server = create(&env, "vm-sip", "instance:sip").await;
    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron",
    );
    let (running, _) = wait_for(&env, &server.id, ServerState::Running).await;
    let address = running.public_address().map(str::to_string);

    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::StopInPlace)
            .await,
        "sip",
    );
    let (in_place, _) = wait_for(&env, &server.id, ServerState::StoppedInPlace).await;
    assert_eq!(in_place.public_address().map(str::to_string), address);
    assert!(in_place.allows(ServerAction::Poweron));
    assert!(in_place.allows(ServerAction::Poweroff));

    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron",
    );
    let (running, details) = wait_for(&env, &server.id, ServerState::Running).await;
    assert!(
        !details.contains(&"allocating node".to_string()),
        "node kept: {details:?}"
    );
    assert_eq!(running.public_address().map(str::to_string), address);

    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Reboot)
            .await,
        "reboot",
    );
    let rebooting = ok(env.client.get_server(ZONE, &server.id).await, "get");
    assert_eq!(rebooting.state_detail, "rebooting");
    let (running, _) = wait_for(&env, &server.id, ServerState::Running).await;
    assert_eq!(running.state_detail, "booted");
}

#[tokio::test]
async fn user_data_round_trip() {
    let env = env().await;
    let server = create(&env, "vm-ud", "instance:ud").await;
    let script = "#cloud-config\nruncmd:\n  - echo 'hello \u{e9}'\n";
    ok(
        env.client
            .set_user_data(ZONE, &server.id, "cloud-init", script)
            .await,
        "set",
    );
    let back = ok(
        env.client
            .get_user_data(ZONE, &server.id, "cloud-init")
            .await,
        "get",
    );
    assert_eq!(back, script);
    ok(
        env.client
            .delete_user_data(ZONE, &server.id, "cloud-init")
            .await,
        "delete",
    );
    let gone = env
        .client
        .get_user_data(ZONE, &server.id, "cloud-init")
        .await;
    assert!(matches!(&gone, Err(e) if e.is_not_found()), "{gone:?}");
}

#[tokio::test]
async fn update_server_changes_name_and_tags() {
    let env = env().await;
    let server = create(&env, "vm-upd", "instance:upd").await;
    let update = UpdateServerRequest {
        name: Some("vm-renamed".into()),
        tags: Some(vec!["instance:upd".into(), "drain".into()]),
        dynamic_ip_required: None,
    };
    let updated = ok(
        env.client.update_server(ZONE, &server.id, &update).await,
        "update",
    );
    assert_eq!(updated.name, "vm-renamed");
    assert!(updated.has_tag("drain"));
    assert_eq!(updated.id, server.id);
}

#[tokio::test]
async fn initial_faults_from_config_apply() {
    let faults = Faults {
        allocation_failures: 1,
        ..Faults::default()
    };
    let env = env_with(sim_config().with_faults(faults.clone())).await;
    assert_eq!(env.sim.faults(), faults);
    env.sim.update_faults(|f| f.allocation_failures = 0);
    env.sim.reset();
    assert_eq!(
        env.sim.faults(),
        faults,
        "reset restores the initial faults"
    );
    assert!(env.sim.state().calls.is_empty());
}
