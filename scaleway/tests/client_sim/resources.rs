//! Lists and pagination, block volumes, flexible IPs and the product catalog.

use inferplane_scaleway::{
    Availability, CreateIpRequest, CreateServerRequest, CreateVolumeRequest, ListServersFilter,
    ListVolumesFilter, MicroEuros, ServerAction, ServerState, VolumeStatus,
};
use serde_json::Value;

use crate::lifecycle::wait_volume;
use crate::support::*;

#[tokio::test]
async fn list_servers_follows_pagination_and_filters_by_tags() {
    let env = env().await;
    for i in 0..120 {
        let mut request =
            CreateServerRequest::new(format!("batch-{i:03}"), "DEV1-S", IMAGE).tag("batch");
        if i % 24 == 0 {
            request = request.tag("special");
        }
        ok(env.client.create_server(ZONE, &request).await, "create");
    }
    create(&env, "other", "not-batch").await;

    let filter = ListServersFilter {
        per_page: Some(50),
        ..ListServersFilter::tagged("batch")
    };
    let all = ok(env.client.list_servers(ZONE, &filter).await, "list");
    assert_eq!(all.len(), 120);
    let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 120, "no duplicates, no gaps");
    assert_eq!(
        env.sim.state().calls("list_servers"),
        3,
        "pages of 50, 50, 20"
    );
    // Newest first.
    assert_eq!(all.first().map(|s| s.name.as_str()), Some("batch-119"));

    // Every tag must match.
    let special = ok(
        env.client
            .list_servers(
                ZONE,
                &ListServersFilter {
                    tags: vec!["batch".into(), "special".into()],
                    ..ListServersFilter::default()
                },
            )
            .await,
        "list special",
    );
    assert_eq!(special.len(), 5);
    assert!(
        special
            .iter()
            .all(|s| s.has_tag("special") && s.has_tag("batch"))
    );

    let by_name = ok(
        env.client
            .list_servers(
                ZONE,
                &ListServersFilter {
                    name: Some("batch-11".into()),
                    ..Default::default()
                },
            )
            .await,
        "by name",
    );
    assert_eq!(by_name.len(), 10);
    let gpu = ok(
        env.client
            .list_servers(
                ZONE,
                &ListServersFilter {
                    commercial_type: Some("L4-1-24G".into()),
                    ..Default::default()
                },
            )
            .await,
        "by type",
    );
    assert_eq!(gpu.len(), 1);
    let other_zone = ok(
        env.client
            .list_servers("fr-par-1", &ListServersFilter::default())
            .await,
        "zone",
    );
    assert!(other_zone.is_empty());
}

#[tokio::test]
async fn list_headers_and_state_filter() {
    let env = env().await;
    let a = create(&env, "a", "hdr").await;
    create(&env, "b", "hdr").await;
    create(&env, "c", "hdr").await;
    ok(
        env.client
            .server_action(ZONE, &a.id, ServerAction::Poweron)
            .await,
        "poweron",
    );
    wait_for(&env, &a.id, ServerState::Running).await;
    let running = ok(
        env.client
            .list_servers(
                ZONE,
                &ListServersFilter {
                    state: Some(ServerState::Running),
                    ..Default::default()
                },
            )
            .await,
        "running",
    );
    assert_eq!(
        running.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![a.id.as_str()]
    );

    let url = format!(
        "{}/instance/v1/zones/{ZONE}/servers?per_page=2&tags=hdr",
        env.sim.base_url()
    );
    let response = ok(
        raw_http()
            .get(&url)
            .header("X-Auth-Token", KEY)
            .send()
            .await,
        "raw list",
    );
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    assert_eq!(
        headers.get("x-total-count").and_then(|v| v.to_str().ok()),
        Some("3")
    );
    let link = headers
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(link.contains("page=2>; rel=\"next\""), "{link}");
    assert!(link.contains("rel=\"last\""), "{link}");
    assert!(headers.contains_key("x-request-id"));
    let body: Value = ok(response.json().await, "body");
    assert_eq!(body["total_count"], 3);
    assert_eq!(body["servers"].as_array().map(Vec::len), Some(2));

    let url = format!(
        "{}/instance/v1/zones/{ZONE}/servers?per_page=101",
        env.sim.base_url()
    );
    let response = ok(
        raw_http()
            .get(&url)
            .header("X-Auth-Token", KEY)
            .send()
            .await,
        "raw list",
    );
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn block_volumes_create_list_attach_detach_delete() {
    let env = env().await;
    let created = ok(
        env.client
            .create_volume(
                ZONE,
                &CreateVolumeRequest::new("data-1", 150_000_000_000).tag("instance:v"),
            )
            .await,
        "create",
    );
    assert_eq!(created.status, VolumeStatus::Creating);
    assert_eq!(created.size, 150_000_000_000);
    assert_eq!(created.project_id, PROJECT);
    assert_eq!(created.volume_type, "sbs_5k");
    assert_eq!(created.specs.as_ref().and_then(|s| s.perf_iops), Some(5000));
    assert_eq!(created.tags, vec!["instance:v"]);
    wait_volume(&env, &created.id, VolumeStatus::Available).await;

    for i in 0..6 {
        ok(
            env.client
                .create_volume(
                    ZONE,
                    &CreateVolumeRequest::new(format!("bulk-{i}"), 1_000_000_000).tag("bulk"),
                )
                .await,
            "create bulk",
        );
    }
    let bulk = ok(
        env.client
            .list_volumes(
                ZONE,
                &ListVolumesFilter {
                    page_size: Some(4),
                    ..ListVolumesFilter::tagged("bulk")
                },
            )
            .await,
        "list bulk",
    );
    assert_eq!(bulk.len(), 6);
    assert_eq!(env.sim.state().calls("list_volumes"), 2);
    let tagged = ok(
        env.client
            .list_volumes(ZONE, &ListVolumesFilter::tagged("instance:v"))
            .await,
        "list",
    );
    assert_eq!(
        tagged.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        vec![created.id.as_str()]
    );
    let foreign = ok(
        env.client
            .list_volumes(
                ZONE,
                &ListVolumesFilter {
                    project_id: Some("someone-else".into()),
                    ..Default::default()
                },
            )
            .await,
        "other project",
    );
    assert!(foreign.is_empty());

    let server = create(&env, "vm-v", "instance:v").await;
    let with_volume = ok(
        env.client
            .attach_volume(ZONE, &server.id, &created.id)
            .await,
        "attach",
    );
    let entry = with_volume.volumes.values().find(|v| v.id == created.id);
    assert_eq!(entry.map(|v| v.volume_type.as_str()), Some("sbs_volume"));
    let attached = ok(env.client.get_volume(ZONE, &created.id).await, "get");
    assert_eq!(attached.status, VolumeStatus::InUse);
    assert_eq!(attached.attached_server_id(), Some(server.id.as_str()));

    let without = ok(
        env.client
            .detach_volume(ZONE, &server.id, &created.id)
            .await,
        "detach",
    );
    assert!(without.volumes.values().all(|v| v.id != created.id));
    let detached = ok(env.client.get_volume(ZONE, &created.id).await, "get");
    assert_eq!(detached.status, VolumeStatus::Available);
    assert!(detached.last_detached_at.is_some());
    ok(env.client.delete_volume(ZONE, &created.id).await, "delete");
}

#[tokio::test]
async fn flexible_ips_attach_to_servers() {
    let env = env().await;
    let ip = ok(
        env.client
            .create_ip(ZONE, &CreateIpRequest::default())
            .await,
        "create ip",
    );
    assert_eq!(ip.state, "detached");
    assert_eq!(ip.ip_type, "routed_ipv4");
    assert!(ip.server.is_none());
    assert_eq!(ip.project, PROJECT);

    let server = create(&env, "vm-ip", "ip").await;
    let attached = ok(
        env.client.attach_ip(ZONE, &ip.id, &server.id).await,
        "attach",
    );
    assert_eq!(attached.state, "attached");
    assert_eq!(
        attached.server.as_ref().map(|s| s.id.as_str()),
        Some(server.id.as_str())
    );
    let fetched = ok(env.client.get_server(ZONE, &server.id).await, "get server");
    assert_eq!(fetched.public_address(), Some(ip.address.as_str()));
    assert_eq!(fetched.public_ips.first().map(|p| p.dynamic), Some(false));

    // With a flexible IP, power-on draws no dynamic one; power-off keeps the flexible one.
    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron",
    );
    let (running, _) = wait_for(&env, &server.id, ServerState::Running).await;
    assert_eq!(running.public_ips.len(), 1);
    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweroff)
            .await,
        "poweroff",
    );
    let (stopped, _) = wait_for(&env, &server.id, ServerState::Stopped).await;
    assert_eq!(stopped.public_address(), Some(ip.address.as_str()));

    let detached = ok(env.client.detach_ip(ZONE, &ip.id).await, "detach");
    assert_eq!(detached.state, "detached");
    let fetched = ok(env.client.get_server(ZONE, &server.id).await, "get server");
    assert!(fetched.public_ips.is_empty());
    ok(env.client.delete_ip(ZONE, &ip.id).await, "delete");
    assert!(matches!(env.client.get_ip(ZONE, &ip.id).await, Err(e) if e.is_not_found()));
}

#[tokio::test]
async fn products_carry_exact_prices_and_gpu_details() {
    let env = env().await;
    let products = ok(env.client.list_server_products(ZONE).await, "products");
    let find = |name: &str| products.iter().find(|p| p.commercial_type == name).cloned();
    let Some(l4) = find("L4-1-24G") else {
        panic!("L4-1-24G listed: {products:?}");
    };
    assert_eq!(l4.hourly_price, MicroEuros(750_000));
    assert_eq!(l4.gpu, 1);
    assert_eq!(l4.ncpus, 8);
    assert_eq!(l4.ram, 48 << 30);
    let gpu = l4.gpu_info.as_ref();
    assert_eq!(gpu.map(|g| g.gpu_name.as_str()), Some("L4"));
    assert_eq!(gpu.map(|g| g.gpu_memory), Some(24 << 30));
    assert_eq!(
        find("RENDER-S").map(|p| p.hourly_price),
        Some(MicroEuros(1_242_600))
    );
    assert_eq!(
        find("H100-SXM-8-80G").map(|p| p.hourly_price),
        Some(MicroEuros(23_030_000))
    );
    assert_eq!(
        find("L40S-8-48G").map(|p| (p.gpu, p.hourly_price)),
        Some((8, MicroEuros(11_200_000)))
    );
    assert_eq!(find("DEV1-S").map(|p| p.gpu_info.is_none()), Some(true));
    for name in [
        "L4-2-24G",
        "L4-4-24G",
        "L4-8-24G",
        "L40S-1-48G",
        "L40S-2-48G",
        "L40S-4-48G",
        "H100-1-80G",
        "H100-2-80G",
        "H100-SXM-2-80G",
        "H100-SXM-4-80G",
    ] {
        assert!(find(name).is_some(), "{name} listed");
    }

    // The prices travel as JSON numbers with their exact decimal text.
    let url = format!(
        "{}/instance/v1/zones/{ZONE}/products/servers",
        env.sim.base_url()
    );
    let response = ok(
        raw_http()
            .get(&url)
            .header("X-Auth-Token", KEY)
            .send()
            .await,
        "raw",
    );
    let text = ok(response.text().await, "text");
    assert!(
        text.contains("\"hourly_price\":1.2426"),
        "exact text in the body"
    );

    let levels = ok(env.client.server_availability(ZONE).await, "availability");
    assert_eq!(levels.len(), products.len());
    assert!(levels.values().all(|a| *a == Availability::Available));
}
