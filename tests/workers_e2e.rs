//! The whole worker story in one process, over real HTTP: the control plane's API, the
//! lifecycle processors against the Scaleway simulator, and each simulated VM's mock engine and
//! worker agent. A VM whose agent dies goes stale and unavailable; a reinstall starts a new
//! agent that registers for the new attempt and brings the instance back to ready; the
//! termination removes the worker's telemetry.

use std::sync::Arc;
use std::time::Duration;

use inferplane_api::{OperatorToken, Settings, WorkerSettings};
use inferplane_domain::instance::{
    Instance, InstanceCommand, InstanceId, InstanceState, InstanceStatus, RequestInstance, VllmMode,
};
use inferplane_domain::worker_credentials::WorkerSecret;
use inferplane_domain::{Actor, EventMetadata};
use inferplane_processors::{
    AgentLaunch, Lifecycle, LifecycleSettings, LocalInstaller, ProcessorRunner, RunnerSettings,
};
use inferplane_scaleway::sim::{SimConfig, Simulator};
use inferplane_scaleway::{ScalewayClient, ScalewayConfig, SecretKey};
use inferplane_store::testing::TestDatabase;
use inferplane_store::{CommandContext, EventStore};
use inferplane_worker::engine::EngineConfig;

const OPERATOR: &str = "operator-token-for-e2e-0123456789";
const KEY: &str = "scw-e2e-secret-key-0123456789";

async fn state(store: &EventStore, id: InstanceId) -> InstanceState {
    store
        .load::<Instance>(&id.to_string(), None)
        .await
        .unwrap()
        .aggregate
        .state
        .unwrap()
}

/// Waits until the agent of install attempt `attempt` has registered.
async fn wait_registered(store: &EventStore, id: InstanceId, attempt: u32) -> InstanceState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = state(store, id).await;
        if s.worker.as_ref().is_some_and(|w| w.attempt == attempt) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agent registered for attempt {attempt}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_for(store: &EventStore, id: InstanceId, status: InstanceStatus) -> InstanceState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let s = state(store, id).await;
        if s.status == status {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instance is {} ({:?}), not {status}",
            s.status,
            s.failure
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_agent_makes_its_vm_unavailable_and_a_reinstall_brings_a_new_agent_and_ready() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDatabase::new().await;
    let secret = WorkerSecret::new("worker-secret-for-e2e-0123456789");
    let stale_after = Duration::from_millis(1500);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut server = inferplane_api::start(
        db.pool.clone(),
        listener,
        OperatorToken::new(OPERATOR),
        Settings {
            workers: WorkerSettings {
                secret: Some(secret.clone()),
                stale_after,
                check_address: true,
                engine_port: 8000,
            },
            ..Settings::default()
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    let sim = Simulator::start(
        SimConfig::default()
            .with_step(Duration::from_millis(5))
            .with_secret_key(SecretKey::new(KEY)),
    )
    .await
    .unwrap();
    let settings = LifecycleSettings {
        provider_poll_interval: Duration::from_millis(15),
        readiness_probe_interval: Duration::from_millis(20),
        watchdog_interval: Duration::from_millis(100),
        worker_stale_after: stale_after,
        worker_secret: Some(secret),
        control_plane_url: Some(base.clone()),
        agent_heartbeat_interval: Duration::from_millis(150),
        orphan_grace: Duration::from_secs(600),
        ..LifecycleSettings::default()
    };
    let installer = Arc::new(
        LocalInstaller::new(
            8000,
            EngineConfig {
                ttft_ms: 1,
                itl_ms: 1,
                ..EngineConfig::default()
            },
        )
        .with_agents(AgentLaunch::from_settings(&settings)),
    );
    let store = EventStore::new(db.pool.clone());
    let lc = Arc::new(Lifecycle {
        store: store.clone(),
        cloud: ScalewayClient::new(
            ScalewayConfig::new(SecretKey::new(KEY), "11111111-2222-3333-4444-555555555555")
                .with_base_url(sim.base_url())
                .with_default_zone("fr-par-2")
                .with_request_timeout(Duration::from_secs(5)),
        )
        .unwrap(),
        settings,
        installer: installer.clone(),
        zones: vec!["fr-par-2".into()],
        instances: Default::default(),
    });
    for processor in lc.processors() {
        let runner = ProcessorRunner {
            processor,
            pool: db.pool.clone(),
            wakeups: server.wakeups(),
            settings: RunnerSettings {
                poll_interval: Duration::from_millis(200),
                backoff_base: Duration::from_millis(20),
                backoff_max: Duration::from_millis(300),
                ..RunnerSettings::default()
            },
        };
        server.spawn_part("processor", move |stop| runner.run(stop));
    }

    let id = InstanceId::new_v7();
    let ctx = CommandContext::new(EventMetadata::new_command(Actor::operator("test")));
    let request = InstanceCommand::Request(RequestInstance {
        model_id: uuid::Uuid::now_v7(),
        model_repo: "org/test-model-8b".into(),
        model_required_vram_gb: 16,
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
    });
    store
        .execute::<Instance>(&id.to_string(), request, &(), &ctx)
        .await
        .unwrap();
    let ready = wait_for(&store, id, InstanceStatus::Ready).await;
    // The agent registers on its own schedule, just before or just after the readiness checks
    // pass (readiness probes the engine, not the agent).
    let registered = wait_registered(&store, id, 1).await;
    assert_eq!(registered.worker.map(|w| w.attempt), Some(1));
    assert!(ready.install.phases.iter().any(|p| p.name == "agent_start"));

    // The agent heartbeats; the instance stays ready for longer than the window.
    tokio::time::sleep(stale_after * 2).await;
    assert_eq!(state(&store, id).await.status, InstanceStatus::Ready);
    assert_eq!(installer.agents_running().await, 1);

    // The agent dies: stale, unavailable, with the age in the reason.
    assert!(installer.kill_agent(id).await);
    let s = wait_for(&store, id, InstanceStatus::Unavailable).await;
    let reason = s.unavailable_reason.unwrap();
    assert!(
        reason.starts_with("worker heartbeat stale for "),
        "{reason}"
    );

    // The operator reinstalls: a new attempt, a new agent, a new registration, ready again.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/instances/{id}/reinstall"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let s = wait_for(&store, id, InstanceStatus::Ready).await;
    assert_eq!(s.install.attempt, 2);
    wait_registered(&store, id, 2).await;
    let registrations: i64 = sqlx::query_scalar(
        "select count(*) from events where aggregate_id = $1 and event_type = 'WorkerRegistered'",
    )
    .bind(id.to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(registrations, 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let w: serde_json::Value = http
            .get(format!("{base}/api/workers/{id}"))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if w["install_attempt"] == 2 && w["fresh"] == true && w["status"] == "ready" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{w}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Still ready a window later: the new agent heartbeats.
    tokio::time::sleep(stale_after * 2).await;
    assert_eq!(state(&store, id).await.status, InstanceStatus::Ready);

    // Terminated: the agent and the engine are gone, and so is the telemetry row.
    store
        .execute::<Instance>(
            &id.to_string(),
            InstanceCommand::Terminate { reason: None },
            &(),
            &ctx,
        )
        .await
        .unwrap();
    wait_for(&store, id, InstanceStatus::Terminated).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows: i64 = sqlx::query_scalar("select count(*) from worker_telemetry")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if rows == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "telemetry left behind"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(installer.agents_running().await, 0);
    server.shutdown().await;
    let _ = sim.shutdown().await;
}
