//! Typed errors: out of stock, quotas, not found, invalid arguments, authentication,
//! preconditions and transient states, each from the simulator's real-shaped answers.

use inferplane_scaleway::sim::{Faults, StockFault};
use inferplane_scaleway::{
    Availability, CreateServerRequest, CreateVolumeRequest, ScalewayConfig, ScalewayError,
    SecretKey, ServerAction, ServerState, VolumeStatus, VolumeTemplate,
};
use serde_json::{Value, json};

use crate::lifecycle::wait_volume;
use crate::support::*;

fn out_of_stock(zone: &str, commercial_type: &str) -> Faults {
    Faults {
        out_of_stock: vec![StockFault {
            zone: zone.into(),
            commercial_type: commercial_type.into(),
        }],
        ..Faults::default()
    }
}

#[tokio::test]
async fn out_of_stock_on_create_and_on_poweron() {
    let env = env().await;
    let existing = create(&env, "vm-before", "instance:oos").await;
    ok(env.sim.set_faults(out_of_stock(ZONE, "L4-1-24G")), "faults");

    let err = env
        .client
        .create_server(ZONE, &gpu_request("vm-oos", "instance:oos"))
        .await;
    assert!(
        matches!(&err, Err(ScalewayError::OutOfStock { resource, .. }) if resource == "L4-1-24G"),
        "{err:?}"
    );
    assert!(matches!(&err, Err(e) if e.is_capacity() && !e.is_retryable()));
    // Other zones and types are unaffected.
    ok(
        env.client
            .create_server("nl-ams-1", &gpu_request("vm-ams", "x"))
            .await,
        "other zone",
    );
    let other_type = CreateServerRequest::new("vm-l40s", "L40S-1-48G", IMAGE);
    ok(
        env.client.create_server(ZONE, &other_type).await,
        "other type",
    );

    // A server created before the shortage cannot be powered on either.
    let err = env
        .client
        .server_action(ZONE, &existing.id, ServerAction::Poweron)
        .await;
    assert!(
        matches!(&err, Err(ScalewayError::OutOfStock { .. })),
        "{err:?}"
    );
    let server = ok(env.client.get_server(ZONE, &existing.id).await, "get");
    assert_eq!(server.state, ServerState::Stopped);

    // The catalog reports the shortage in that zone only.
    let levels = ok(env.client.server_availability(ZONE).await, "availability");
    assert_eq!(levels.get("L4-1-24G"), Some(&Availability::Shortage));
    assert_eq!(levels.get("L4-2-24G"), Some(&Availability::Available));
    let elsewhere = ok(
        env.client.server_availability("fr-par-1").await,
        "availability",
    );
    assert_eq!(elsewhere.get("L4-1-24G"), Some(&Availability::Available));
}

#[tokio::test]
async fn quota_of_gpu_servers_per_zone() {
    let env = env_with(sim_config().with_gpu_quota_per_zone(1)).await;
    create(&env, "vm-1", "q").await;
    let err = env
        .client
        .create_server(ZONE, &gpu_request("vm-2", "q"))
        .await;
    let Err(ScalewayError::QuotasExceeded { details }) = &err else {
        panic!("expected quotas_exceeded, got {err:?}");
    };
    assert_eq!(details.len(), 1);
    assert_eq!((details[0].quota, details[0].current), (1, 1));
    assert!(!details[0].resource.is_empty());
    // CPU types do not count against the GPU quota; other zones have their own.
    let cpu = CreateServerRequest::new("cpu", "DEV1-S", IMAGE);
    ok(env.client.create_server(ZONE, &cpu).await, "cpu server");
    ok(
        env.client
            .create_server("fr-par-1", &gpu_request("vm-3", "q"))
            .await,
        "other zone",
    );
    // The runtime override wins over the configured quota.
    env.sim
        .update_faults(|f| f.quota_gpu_servers_per_zone = Some(5));
    ok(
        env.client
            .create_server(ZONE, &gpu_request("vm-4", "q"))
            .await,
        "raised quota",
    );
}

#[tokio::test]
async fn not_found_for_unknown_resources() {
    let env = env().await;
    let id = "11111111-1111-4111-8111-111111111111";
    let err = env.client.get_server(ZONE, id).await;
    assert!(
        matches!(&err, Err(ScalewayError::NotFound { resource, resource_id }) if resource == "instance_server" && resource_id == id),
        "{err:?}"
    );
    let err = env.client.get_volume(ZONE, id).await;
    assert!(
        matches!(&err, Err(ScalewayError::NotFound { resource, .. }) if resource == "volume"),
        "{err:?}"
    );
    assert!(matches!(env.client.get_ip(ZONE, id).await, Err(e) if e.is_not_found()));
    assert!(matches!(env.client.delete_volume(ZONE, id).await, Err(e) if e.is_not_found()));
    // A server of another zone is not found in this one.
    let server = create(&env, "vm-z", "z").await;
    assert!(
        matches!(env.client.get_server("fr-par-1", &server.id).await, Err(e) if e.is_not_found())
    );
}

fn details_of<T: std::fmt::Debug>(
    result: Result<T, ScalewayError>,
) -> Vec<inferplane_scaleway::error::InvalidArgument> {
    match result {
        Err(ScalewayError::InvalidArguments { details, .. }) => details,
        other => panic!("expected invalid_arguments, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_arguments_are_detailed() {
    let env = env().await;

    let unknown = CreateServerRequest::new("vm", "L5-1-24G", IMAGE);
    let details = details_of(env.client.create_server(ZONE, &unknown).await);
    assert_eq!(details[0].argument_name, "commercial_type");
    assert_eq!(details[0].reason, "constraint");

    let local_on_l4 = gpu_request("vm", "t").volume(0, VolumeTemplate::local(20_000_000_000));
    let details = details_of(env.client.create_server(ZONE, &local_on_l4).await);
    assert_eq!(details[0].argument_name, "volumes.0.volume_type");
    assert!(details[0].help_message.contains("no local storage"));

    let details = details_of(
        env.client
            .create_server("xx-nowhere-9", &gpu_request("vm", "t"))
            .await,
    );
    assert_eq!(details[0].argument_name, "zone");

    let mut nameless = gpu_request("", "t");
    nameless.image = None;
    let details = details_of(env.client.create_server(ZONE, &nameless).await);
    let names: Vec<&str> = details.iter().map(|d| d.argument_name.as_str()).collect();
    assert!(
        names.contains(&"name") && names.contains(&"image"),
        "{names:?}"
    );

    let tiny = CreateVolumeRequest::new("tiny", 10);
    let details = details_of(env.client.create_volume(ZONE, &tiny).await);
    assert_eq!(details[0].argument_name, "from_empty.size");
}

#[tokio::test]
async fn project_and_organization_are_exclusive() {
    let env = env().await;
    let http = raw_http();
    let url = format!("{}/instance/v1/zones/{ZONE}/servers", env.sim.base_url());
    for body in [
        json!({"name": "a", "commercial_type": "L4-1-24G", "image": IMAGE, "project": PROJECT, "organization": PROJECT}),
        json!({"name": "a", "commercial_type": "L4-1-24G", "image": IMAGE}),
    ] {
        let response = ok(
            http.post(&url)
                .header("X-Auth-Token", KEY)
                .json(&body)
                .send()
                .await,
            "raw create",
        );
        assert_eq!(response.status().as_u16(), 400);
        assert!(response.headers().contains_key("x-request-id"));
        let error: Value = ok(response.json().await, "error body");
        assert_eq!(error["type"], "invalid_arguments");
        assert_eq!(error["details"][0]["argument_name"], "project");
    }
    // Organization alone is accepted (the default project carries the organization's id).
    let body = json!({"name": "a", "commercial_type": "L4-1-24G", "image": IMAGE, "organization": PROJECT});
    let response = ok(
        http.post(&url)
            .header("X-Auth-Token", KEY)
            .json(&body)
            .send()
            .await,
        "raw create",
    );
    assert_eq!(response.status().as_u16(), 201);
    // Malformed JSON is an invalid_arguments answer too, not a bare 4xx.
    let response = ok(
        http.post(&url)
            .header("X-Auth-Token", KEY)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await,
        "raw create",
    );
    assert_eq!(response.status().as_u16(), 400);
    let error: Value = ok(response.json().await, "error body");
    assert_eq!(error["type"], "invalid_arguments");
}

#[tokio::test]
async fn authentication_is_denied_for_a_wrong_or_missing_key() {
    let env = env().await;
    let wrong = client_for(ScalewayConfig {
        secret_key: SecretKey::new("scw-wrong-key"),
        ..client_config(env.sim.base_url())
    });
    let err = wrong.get_server(ZONE, "whatever").await;
    assert!(
        matches!(&err, Err(ScalewayError::DeniedAuthentication { .. })),
        "{err:?}"
    );
    let err = wrong.list_servers(ZONE, &Default::default()).await;
    assert!(
        matches!(&err, Err(ScalewayError::DeniedAuthentication { .. })),
        "{err:?}"
    );
    assert_eq!(
        env.sim.state().calls("list_servers"),
        0,
        "refused before counting"
    );

    let response = ok(
        raw_http()
            .get(format!(
                "{}/instance/v1/zones/{ZONE}/servers",
                env.sim.base_url()
            ))
            .send()
            .await,
        "raw",
    );
    assert_eq!(response.status().as_u16(), 401);
    let error: Value = ok(response.json().await, "error body");
    assert_eq!(error["type"], "denied_authentication");

    // Without a configured key, any non-empty token is accepted.
    let open = env_with(inferplane_scaleway::sim::SimConfig::default().with_step(STEP)).await;
    let anyone = client_for(ScalewayConfig {
        secret_key: SecretKey::new("anything"),
        ..client_config(open.sim.base_url())
    });
    ok(
        anyone.list_servers(ZONE, &Default::default()).await,
        "open simulator",
    );
}

#[tokio::test]
async fn state_conflicts_are_preconditions_or_transient_states() {
    let env = slow_env().await;
    let server = create(&env, "vm-pre", "pre").await;

    // Powering off a stopped server.
    let err = env
        .client
        .server_action(ZONE, &server.id, ServerAction::Poweroff)
        .await;
    assert!(
        matches!(&err, Err(ScalewayError::PreconditionFailed { message }) if message == "server should be running"),
        "{err:?}"
    );
    ok(
        env.client
            .server_action(ZONE, &server.id, ServerAction::Poweron)
            .await,
        "poweron",
    );
    // Acting while it starts.
    let err = env
        .client
        .server_action(ZONE, &server.id, ServerAction::Poweroff)
        .await;
    assert!(
        matches!(&err, Err(ScalewayError::TransientState { current_state, .. }) if current_state == "starting"),
        "{err:?}"
    );
    wait_for(&env, &server.id, ServerState::Running).await;
    // Powering on a running server, deleting a running server.
    let err = env
        .client
        .server_action(ZONE, &server.id, ServerAction::Poweron)
        .await;
    assert!(
        matches!(&err, Err(ScalewayError::PreconditionFailed { message }) if message == "server should be stopped"),
        "{err:?}"
    );
    let err = env.client.delete_server(ZONE, &server.id).await;
    assert!(
        matches!(&err, Err(ScalewayError::PreconditionFailed { message }) if message == "server should be stopped"),
        "{err:?}"
    );
    assert!(
        ok(env.client.get_server(ZONE, &server.id).await, "still there").state
            == ServerState::Running
    );
}

#[tokio::test]
async fn volume_delete_is_refused_while_in_use() {
    let env = slow_env().await;
    let server = create(&env, "vm-vol", "vol").await;
    let volume = ok(
        env.client
            .create_volume(ZONE, &CreateVolumeRequest::new("data", 100_000_000_000))
            .await,
        "create volume",
    );
    // Still creating: transient.
    let err = env.client.delete_volume(ZONE, &volume.id).await;
    assert!(
        matches!(&err, Err(ScalewayError::TransientState { .. })),
        "{err:?}"
    );
    wait_volume(&env, &volume.id, VolumeStatus::Available).await;

    ok(
        env.client.attach_volume(ZONE, &server.id, &volume.id).await,
        "attach",
    );
    let err = env.client.delete_volume(ZONE, &volume.id).await;
    assert!(
        matches!(&err, Err(ScalewayError::PreconditionFailed { message }) if message.contains(&server.id)),
        "{err:?}"
    );
    // Attaching it a second time is refused too.
    let err = env.client.attach_volume(ZONE, &server.id, &volume.id).await;
    assert!(
        matches!(&err, Err(ScalewayError::PreconditionFailed { .. })),
        "{err:?}"
    );

    ok(
        env.client.detach_volume(ZONE, &server.id, &volume.id).await,
        "detach",
    );
    ok(env.client.delete_volume(ZONE, &volume.id).await, "delete");
    assert!(matches!(env.client.get_volume(ZONE, &volume.id).await, Err(e) if e.is_not_found()));
}
