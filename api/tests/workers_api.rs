//! Worker agents against a real control plane (HTTP on port 0, fresh database): registration
//! with the derived bootstrap token from the instance's address, worker tokens on heartbeats,
//! telemetry and the events that only changes cause, problem JSON on bad input, and the real
//! agent against the mock engine.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{TestApp, eventually};
use inferplane_api::{Settings, WorkerSettings};
use inferplane_domain::instance::{
    Instance, InstanceCommand as C, InstanceId, ReadinessCheck, RequestInstance, VllmMode,
};
use inferplane_domain::worker_credentials::{WorkerSecret, bootstrap_token, token_hash};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::{CommandContext, EventStore};
use inferplane_worker::agent::{Agent, AgentConfig, Credentials};
use inferplane_worker::engine::{EngineConfig, MockEngine};
use serde_json::{Value, json};
use uuid::Uuid;

const SECRET: &str = "worker-secret-for-tests-0123456789";
const MODEL: &str = "Qwen/Qwen2.5-0.5B-Instruct";

async fn spawn() -> TestApp {
    TestApp::spawn_with(Settings {
        workers: WorkerSettings {
            secret: Some(WorkerSecret::new(SECRET)),
            stale_after: Duration::from_secs(30),
            check_address: true,
            engine_port: 8000,
        },
        ..Settings::default()
    })
    .await
}

/// A distinct loopback address per test, as the simulator gives its VMs.
fn vm_ip() -> IpAddr {
    let n = Uuid::new_v4().as_u128();
    IpAddr::from([127, 77, (n % 250) as u8 + 1, ((n >> 8) % 250) as u8 + 2])
}

/// An instance in `starting` with public IP `ip`, recorded through the store.
async fn starting_instance(app: &TestApp, ip: IpAddr) -> InstanceId {
    let store = EventStore::new(app.db.pool.clone());
    let id = InstanceId::new_v7();
    let ctx = CommandContext::new(EventMetadata::new_command(Actor::processor("test")));
    let commands = vec![
        C::Request(RequestInstance {
            model_id: Uuid::from_u128(1),
            model_repo: MODEL.into(),
            model_required_vram_gb: 4,
            model_active: true,
            zone: "fr-par-2".into(),
            allowed_zones: vec![],
            instance_type: "L4-1-24G".into(),
            gpu_count: 1,
            vram_per_gpu_gb: 24,
            type_available_in_zone: true,
            hourly_price_micro_eur: 750_000,
            data_volume_gb: 50,
            vllm_mode: VllmMode::Mono,
        }),
        C::StartProvisioning {
            zone: "fr-par-2".into(),
            attempt: 1,
        },
        C::RecordServerCreated {
            server_id: "srv-1".into(),
            zone: "fr-par-2".into(),
            commercial_type: "L4-1-24G".into(),
        },
        C::RecordServerRunning {
            public_ip: ip.to_string(),
        },
        C::RecordSshAccessible {
            host_key_fingerprint: "SHA256:pinned".into(),
        },
        C::RecordInstallCompleted,
    ];
    for c in commands {
        store
            .execute::<Instance>(&id.to_string(), c, &(), &ctx)
            .await
            .unwrap();
    }
    id
}

async fn mark_ready(app: &TestApp, id: InstanceId) {
    let store = EventStore::new(app.db.pool.clone());
    let ctx = CommandContext::new(EventMetadata::new_command(Actor::processor("test")));
    let mut commands: Vec<C> = ReadinessCheck::ALL
        .into_iter()
        .map(|check| C::RecordReadinessCheck {
            check,
            ok: true,
            duration_ms: 1,
            detail: "ok".into(),
        })
        .collect();
    commands.push(C::MarkReady);
    for c in commands {
        store
            .execute::<Instance>(&id.to_string(), c, &(), &ctx)
            .await
            .unwrap();
    }
}

/// A client whose connections come from `ip`, as an agent on that VM.
fn client_from(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .build()
        .unwrap()
}

fn secret() -> WorkerSecret {
    WorkerSecret::new(SECRET)
}

async fn register(app: &TestApp, from: &reqwest::Client, body: &Value) -> reqwest::Response {
    from.post(app.url("/api/workers/register"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "problem JSON"
    );
    r.json().await.unwrap()
}

fn heartbeat_body(id: InstanceId, status: &str, models: &[&str]) -> Value {
    json!({
        "instance_id": id.0,
        "status": status,
        "agent_version": "test",
        "models": models,
        "waiting": 2,
        "running": 3,
        "kv_cache_usage": 0.25,
        "gpus": [{"index": 0, "utilization_pct": 50.0, "memory_used_mib": 1000.0,
                  "memory_total_mib": 24000.0, "temperature_c": 60.0, "power_w": 70.0}],
        "system": {"cpus": 8, "load1": 0.5}
    })
}

async fn event_types(app: &TestApp, id: InstanceId) -> Vec<String> {
    sqlx::query_scalar("select event_type from events where aggregate_id = $1 order by sequence")
        .bind(id.to_string())
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_worker_registers_once_from_its_address_and_heartbeats_with_its_own_token() {
    let app = spawn().await;
    let ip = vm_ip();
    let id = starting_instance(&app, ip).await;
    let vm = client_from(ip);
    let bootstrap = bootstrap_token(&secret(), id, 1);

    // A wrong bootstrap token, or another attempt's, is refused.
    for wrong in [
        bootstrap_token(&WorkerSecret::new("another-secret-0123456789"), id, 1),
        bootstrap_token(&secret(), id, 2),
    ] {
        let r = register(
            &app,
            &vm,
            &json!({"instance_id": id.0, "bootstrap_token": wrong}),
        )
        .await;
        assert_eq!(problem(r, 401).await["code"], "invalid-bootstrap-token");
    }
    // The right token from another address (this test's own 127.0.0.1) is refused.
    let body = json!({"instance_id": id.0, "bootstrap_token": bootstrap, "agent_version": "0.1.0"});
    let r = register(&app, &app.client, &body).await;
    assert_eq!(problem(r, 403).await["code"], "worker-address-mismatch");

    let r = register(&app, &vm, &body).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let registered: Value = r.json().await.unwrap();
    let token = registered["worker_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("wk_") && token.len() == 67, "{token}");
    assert_eq!(registered["install_attempt"], 1);

    // Once per install attempt: the same bootstrap token again is refused.
    let r = register(&app, &vm, &body).await;
    assert_eq!(problem(r, 409).await["code"], "worker-already-registered");

    // The registration is recorded with the token's hash only.
    let payload: Value = sqlx::query_scalar(
        "select payload from events where aggregate_id = $1 and event_type = 'WorkerRegistered'",
    )
    .bind(id.to_string())
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        payload["WorkerRegistered"]["token_hash"],
        token_hash(&token)
    );
    let leaked: i64 = sqlx::query_scalar(
        "select count(*) from events where payload::text like '%' || $1 || '%'
            or payload::text like '%' || $2 || '%'",
    )
    .bind(&token)
    .bind(&bootstrap)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0, "no token in any event");

    // Heartbeats need the worker token: none, a wrong one, the bootstrap token: 401.
    let hb = heartbeat_body(id, "ready", &[MODEL]);
    let url = app.url("/api/workers/heartbeat");
    let r = vm.post(&url).json(&hb).send().await.unwrap();
    assert_eq!(problem(r, 401).await["code"], "unknown-worker-token");
    for wrong in ["wk_0000", bootstrap.as_str(), common::TOKEN] {
        let r = vm
            .post(&url)
            .bearer_auth(wrong)
            .json(&hb)
            .send()
            .await
            .unwrap();
        assert_eq!(problem(r, 401).await["code"], "unknown-worker-token");
    }
    let r = vm
        .post(&url)
        .bearer_auth(&token)
        .json(&hb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["stale_after_ms"], 30_000);

    // Telemetry for the console, and for the gateway's query.
    let row: (String, Vec<String>, i32, i32) = sqlx::query_as(
        "select engine_url, models, waiting, running from worker_telemetry where instance_id = $1",
    )
    .bind(id.0)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (format!("http://{ip}:8000"), vec![MODEL.to_string()], 2, 3)
    );
    let w: Value = app
        .get(&format!("/api/workers/{}", id.0))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(w["fresh"], true);
    assert_eq!(w["status"], "ready");
    assert_eq!(w["kv_cache_usage"], 0.25);
    assert_eq!(w["gpus"][0]["memory_total_mib"], 24000.0);
    assert!(w["age_ms"].as_i64().unwrap() < 30_000);
    let list: Value = app
        .get("/api/workers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // The console's routes need the operator token; the worker token is not one.
    let r = vm
        .get(app.url("/api/workers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Events: the registration, then health and models once; the same heartbeat again adds none.
    let after_first = event_types(&app, id).await;
    assert!(after_first.ends_with(&[
        "WorkerRegistered".to_string(),
        "WorkerHealthChanged".to_string(),
        "WorkerModelsChanged".to_string()
    ]));
    for _ in 0..3 {
        let r = vm
            .post(&url)
            .bearer_auth(&token)
            .json(&hb)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(event_types(&app, id).await, after_first);
    // A change of status is an event.
    let down = heartbeat_body(id, "engine_down", &[]);
    let r = vm
        .post(&url)
        .bearer_auth(&token)
        .json(&down)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let types = event_types(&app, id).await;
    assert_eq!(
        &types[after_first.len()..],
        ["WorkerHealthChanged", "WorkerModelsChanged"]
    );
}

#[tokio::test]
async fn bad_input_on_the_worker_routes_gets_problem_json() {
    let app = spawn().await;
    let url = app.url("/api/workers/register");
    let send = |body: &'static str| {
        app.client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let p = problem(send("{not json").await.unwrap(), 400).await;
    assert_eq!(p["code"], "invalid-request");
    let p = problem(
        send(r#"{"instance_id": 12, "bootstrap_token": "x"}"#)
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "instance_id");
    let p = problem(
        send(r#"{"instance_id": "0192f0c1-0000-7000-8000-000000000000", "bootstrap_token": "x", "extra": 1}"#)
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("extra"), "{p}");
    // An unknown instance.
    let r = app
        .client
        .post(&url)
        .json(&json!({"instance_id": Uuid::now_v7(), "bootstrap_token": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 404).await["code"], "instance-not-found");
    // Not JSON at all, and a huge body.
    let r = app.client.post(&url).body("x").send().await.unwrap();
    assert_eq!(problem(r, 415).await["code"], "unsupported-media-type");
    let huge = format!(
        r#"{{"instance_id": "{}", "bootstrap_token": "{}"}}"#,
        Uuid::now_v7(),
        "a".repeat(2 * 1024 * 1024)
    );
    let r = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 413).await["code"], "body-too-large");

    // Heartbeats: wrong types are named; unknown instances are unknown tokens.
    let hb_url = app.url("/api/workers/heartbeat");
    let r = app
        .client
        .post(&hb_url)
        .bearer_auth("wk_x")
        .json(&json!({"instance_id": Uuid::now_v7(), "status": "dancing"}))
        .send()
        .await
        .unwrap();
    let p = problem(r, 400).await;
    assert_eq!(p["errors"][0]["field"], "status");
    let r = app
        .client
        .post(&hb_url)
        .bearer_auth("wk_x")
        .json(&json!({"instance_id": Uuid::now_v7(), "status": "ready", "waiting": -1}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["errors"][0]["field"], "waiting");
    let r = app
        .client
        .post(&hb_url)
        .bearer_auth("wk_x")
        .json(&json!({"instance_id": Uuid::now_v7(), "status": "ready"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 401).await["code"], "unknown-worker-token");
    // The console's routes: an unknown worker is a 404 problem.
    let r = app
        .get(&format!("/api/workers/{}", Uuid::now_v7()))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 404).await["code"], "not-found");
}

#[tokio::test]
async fn registration_is_refused_while_the_control_plane_has_no_worker_secret() {
    let app = TestApp::spawn().await;
    let ip = vm_ip();
    let id = starting_instance(&app, ip).await;
    let body = json!({"instance_id": id.0, "bootstrap_token": bootstrap_token(&secret(), id, 1)});
    let r = register(&app, &client_from(ip), &body).await;
    assert_eq!(
        problem(r, 503).await["code"],
        "worker-registration-disabled"
    );
}

fn agent_config(app: &TestApp, id: InstanceId, ip: IpAddr, engine: &str) -> AgentConfig {
    AgentConfig {
        instance_id: id.0,
        control_plane_url: app.base.clone(),
        engine_url: engine.to_string(),
        model: MODEL.into(),
        heartbeat_interval: Duration::from_millis(100),
        bootstrap_token: Some(bootstrap_token(&secret(), id, 1)),
        state_dir: None,
        source_ip: Some(ip),
        nvidia_smi: None,
        disk_path: "/".into(),
    }
}

#[tokio::test]
async fn the_agent_registers_and_reports_the_mock_engine_and_serves_its_own_endpoints() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = spawn().await;
    let ip = vm_ip();
    let id = starting_instance(&app, ip).await;
    let engine = MockEngine::start(EngineConfig::with_models([MODEL]))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let agent = Agent::start_on(listener, agent_config(&app, id, ip, &engine.base_url())).unwrap();

    let w: Value = eventually(|| async {
        let r = app
            .get(&format!("/api/workers/{}", id.0))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        (v["status"] == "ready").then_some(v)
    })
    .await;
    assert_eq!(w["models"], json!([MODEL]));
    assert_eq!(w["agent_version"], inferplane_worker::agent::AGENT_VERSION);
    assert!(w["system"]["memory_total_bytes"].as_u64().unwrap() > 0);
    // The heartbeat writes its row first, then records the changes it shows.
    eventually(|| async {
        let types = event_types(&app, id).await;
        [
            "WorkerRegistered",
            "WorkerHealthChanged",
            "WorkerModelsChanged",
        ]
        .iter()
        .all(|t| types.iter().any(|x| x == t))
        .then_some(())
    })
    .await;

    let base = format!("http://{}", agent.addr());
    let get = |path: &str| reqwest::get(format!("{base}{path}"));
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let info: Value = get("/info").await.unwrap().json().await.unwrap();
    assert_eq!(info["registered"], true);
    assert_eq!(info["status"], "ready");
    assert!(!info.to_string().contains("wk_"), "no token in /info");
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("inferplane_agent_registrations_ok_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("inferplane_agent_engine_ready 1"));

    // The engine dies: the agent says so, and /readyz follows.
    engine.shutdown().await.unwrap();
    eventually(|| async {
        let r = app
            .get(&format!("/api/workers/{}", id.0))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        (v["status"] == "engine_down").then_some(())
    })
    .await;
    assert_eq!(get("/readyz").await.unwrap().status(), 503);
    agent.shutdown().await;
}

#[tokio::test]
async fn an_agent_told_its_token_is_unknown_registers_again_and_backs_off_while_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = spawn().await;
    let ip = vm_ip();
    let id = starting_instance(&app, ip).await;
    mark_ready(&app, id).await;
    let engine = MockEngine::start(EngineConfig::with_models([MODEL]))
        .await
        .unwrap();
    // A token saved by an earlier life that the control plane never issued.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("worker-token"),
        serde_json::to_string(&Credentials {
            instance_id: id.0,
            install_attempt: 1,
            worker_token: "wk_forgotten".into(),
        })
        .unwrap(),
    )
    .unwrap();
    let mut config = agent_config(&app, id, ip, &engine.base_url());
    config.state_dir = Some(dir.path().to_path_buf());
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let agent = Agent::start_on(listener, config.clone()).unwrap();
    eventually(|| async {
        let r = app
            .get(&format!("/api/workers/{}", id.0))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    // The new worker token replaced the forgotten one in the state dir.
    let saved = std::fs::read_to_string(dir.path().join("worker-token")).unwrap();
    assert!(!saved.contains("wk_forgotten"));
    agent.shutdown().await;

    // A second agent with the same bootstrap token and no saved token is refused (one
    // registration per attempt) and keeps retrying with backoff, reporting why.
    config.state_dir = None;
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let second = Agent::start_on(listener, config).unwrap();
    let o = eventually(|| async {
        let o = second.observation().await;
        o.last_error.is_some().then_some(o)
    })
    .await;
    assert!(!o.registered);
    assert!(
        o.last_error
            .as_deref()
            .unwrap()
            .contains("worker-already-registered"),
        "{:?}",
        o.last_error
    );
    second.shutdown().await;
}

#[tokio::test]
async fn an_agent_retries_while_the_control_plane_is_down() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let engine = MockEngine::start(EngineConfig::with_models([MODEL]))
        .await
        .unwrap();
    let config = AgentConfig {
        instance_id: Uuid::now_v7(),
        control_plane_url: url,
        engine_url: engine.base_url(),
        model: MODEL.into(),
        heartbeat_interval: Duration::from_millis(100),
        bootstrap_token: Some("t".into()),
        state_dir: None,
        source_ip: None,
        nvidia_smi: None,
        disk_path: "/".into(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = Agent::start_on(listener, config).unwrap();
    let base = format!("http://{}", agent.addr());
    eventually(|| async {
        let m = reqwest::get(format!("{base}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        m.contains("inferplane_agent_registrations_failed_total 2")
            .then_some(())
    })
    .await;
    let o = agent.observation().await;
    assert!(o.last_error.unwrap().contains("unavailable"));
    // Its own endpoints still answer, and the engine is still observed.
    assert_eq!(
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    agent.shutdown().await;
}
