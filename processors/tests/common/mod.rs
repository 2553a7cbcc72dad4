//! A control plane's lifecycle processors against the Scaleway simulator over real HTTP, on a
//! fresh database, with time compressed.
#![allow(dead_code)]

pub mod sshd;
pub mod vm;

use std::sync::Arc;
use std::time::Duration;

use inferplane_domain::instance::{
    Instance, InstanceCommand, InstanceId, InstanceState, InstanceStatus, RequestInstance, VllmMode,
};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_processors::{
    Installer, Lifecycle, LifecycleSettings, LocalInstaller, ProcessorRunner, RunnerSettings,
};
use inferplane_projections::ProjectionRunner;
use inferplane_scaleway::sim::{SimConfig, SimHandle, SimSnapshot, Simulator};
use inferplane_scaleway::{ScalewayClient, ScalewayConfig, SecretKey};
use inferplane_store::testing::TestDatabase;
use inferplane_store::{CommandContext, EventStore, Notifier};
use inferplane_worker::engine::EngineConfig;
use tokio::sync::watch;

pub const KEY: &str = "scw-test-secret-key-0123456789";

pub struct Harness {
    pub db: TestDatabase,
    pub store: EventStore,
    pub sim: SimHandle,
    pub lc: Arc<Lifecycle>,
    pub installer: Arc<LocalInstaller>,
}

/// A running set of processors (and the read models), as one `serve` process has them.
pub struct Process {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _notifier: Notifier,
}

impl Process {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Killed: every task dropped wherever it was (between a provider call and its record).
    pub async fn kill(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub fn settings() -> LifecycleSettings {
    LifecycleSettings {
        provider_poll_interval: Duration::from_millis(15),
        provisioning_timeout: Duration::from_secs(60),
        max_power_on_attempts: 5,
        max_provider_errors: 6,
        ssh_wait_timeout: Duration::from_secs(20),
        bootstrap_timeout: Duration::from_secs(20),
        readiness_timeout: Duration::from_secs(20),
        readiness_probe_interval: Duration::from_millis(20),
        watchdog_interval: Duration::from_millis(100),
        reconcile_interval: Duration::from_millis(300),
        orphan_grace: Duration::from_secs(0),
        image: "ubuntu_jammy_gpu_os_12".into(),
        engine_port: 8000,
        // No agents run here (no control plane): a long window keeps ready instances ready.
        worker_stale_after: Duration::from_secs(3600),
        worker_secret: None,
        control_plane_url: None,
        agent_heartbeat_interval: Duration::from_secs(5),
    }
}

pub fn runner_settings() -> RunnerSettings {
    RunnerSettings {
        poll_interval: Duration::from_millis(200),
        batch_size: 500,
        concurrency: 64,
        step_timeout: Duration::from_secs(30),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(300),
        reactions: None,
    }
}

impl Harness {
    pub async fn new(sim: SimConfig) -> Self {
        Self::with_settings(sim, settings()).await
    }

    pub async fn with_settings(sim: SimConfig, settings: LifecycleSettings) -> Self {
        Self::with_installer(sim, settings, None).await
    }

    /// With `installer` instead of the local one (which is still built, unused).
    pub async fn with_installer(
        sim: SimConfig,
        settings: LifecycleSettings,
        installer: Option<Arc<dyn Installer>>,
    ) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDatabase::new().await;
        let store = EventStore::new(db.pool.clone());
        let sim = Simulator::start(
            sim.with_step(Duration::from_millis(5))
                .with_secret_key(SecretKey::new(KEY)),
        )
        .await
        .expect("simulator");
        let local = Arc::new(LocalInstaller::new(
            settings.engine_port,
            EngineConfig {
                ttft_ms: 1,
                itl_ms: 1,
                ..EngineConfig::default()
            },
        ));
        let lc = Arc::new(Lifecycle {
            store: store.clone(),
            cloud: client(&sim),
            settings,
            installer: installer.unwrap_or_else(|| local.clone()),
            zones: vec!["fr-par-1".into(), "fr-par-2".into(), "nl-ams-1".into()],
            instances: Default::default(),
        });
        Self {
            db,
            store,
            sim,
            lc,
            installer: local,
        }
    }

    /// Starts every lifecycle processor and every projection, on their own pool and LISTEN
    /// connection, as a separate process would.
    pub async fn process(&self) -> Process {
        let pool = self.db.second_pool(20).await;
        let notifier = Notifier::spawn(pool.clone());
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for projection in inferplane_projections::all() {
            inferplane_projections::ensure_installed(&pool, projection.as_ref())
                .await
                .unwrap();
            let runner = ProjectionRunner {
                projection,
                pool: pool.clone(),
                wakeups: notifier.subscribe(),
                poll_interval: Duration::from_millis(200),
                batch_size: 500,
            };
            tasks.push(tokio::spawn(runner.run(stopped.clone())));
        }
        for processor in self.lc.processors() {
            let runner = ProcessorRunner {
                processor,
                pool: pool.clone(),
                wakeups: notifier.subscribe(),
                settings: runner_settings(),
            };
            tasks.push(tokio::spawn(runner.run(stopped.clone())));
        }
        Process {
            stop,
            tasks,
            _notifier: notifier,
        }
    }

    /// Requests an L4-1-24G instance for a 16 GB model in `zone`, falling back to `fallback`.
    pub async fn request(&self, zone: &str, fallback: &[&str]) -> InstanceId {
        let id = InstanceId::new_v7();
        let mut allowed = vec![zone.to_string()];
        allowed.extend(fallback.iter().map(|z| z.to_string()));
        let cmd = InstanceCommand::Request(RequestInstance {
            model_id: uuid::Uuid::now_v7(),
            model_repo: "org/test-model-8b".into(),
            model_required_vram_gb: 16,
            model_active: true,
            zone: zone.into(),
            allowed_zones: allowed,
            instance_type: "L4-1-24G".into(),
            gpu_count: 1,
            vram_per_gpu_gb: 24,
            type_available_in_zone: true,
            hourly_price_micro_eur: 750_000,
            data_volume_gb: 50,
            vllm_mode: VllmMode::Mono,
        });
        self.command(id, cmd).await;
        id
    }

    pub async fn command(&self, id: InstanceId, cmd: InstanceCommand) {
        let ctx = CommandContext::new(EventMetadata::new_command(Actor::operator("test")));
        self.store
            .execute::<Instance>(&id.to_string(), cmd, &(), &ctx)
            .await
            .expect("command accepted");
    }

    pub async fn terminate(&self, id: InstanceId) {
        self.command(
            id,
            InstanceCommand::Terminate {
                reason: Some("test".into()),
            },
        )
        .await;
    }

    pub async fn state(&self, id: InstanceId) -> InstanceState {
        self.store
            .load::<Instance>(&id.to_string(), None)
            .await
            .unwrap()
            .aggregate
            .state
            .expect("instance exists")
    }

    /// Waits until the instance is in `status` (panics on timeout, showing where it is).
    pub async fn wait_for(
        &self,
        id: InstanceId,
        status: InstanceStatus,
        secs: u64,
    ) -> InstanceState {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.state(id).await;
            if s.status == status {
                return s;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "instance {id} is {} (failure {:?}), not {} after {secs} s",
                    s.status.as_str(),
                    s.failure,
                    status.as_str()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn snapshot(&self) -> SimSnapshot {
        self.sim.state()
    }

    /// Waits until the simulator holds no server and no volume.
    pub async fn wait_empty(&self, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.snapshot();
            if s.servers.is_empty() && s.volumes.is_empty() {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "left at the provider: servers {:?}, volumes {:?}",
                    s.servers
                        .iter()
                        .map(|s| (&s.id, &s.state, &s.tags))
                        .collect::<Vec<_>>(),
                    s.volumes
                        .iter()
                        .map(|v| (&v.id, &v.status, &v.tags))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Event types of the instance, in order.
    pub async fn event_types(&self, id: InstanceId) -> Vec<String> {
        sqlx::query_scalar(
            "select event_type from events where aggregate_id = $1 order by sequence",
        )
        .bind(id.to_string())
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }
}

pub fn client(sim: &SimHandle) -> ScalewayClient {
    ScalewayClient::new(
        ScalewayConfig::new(SecretKey::new(KEY), "11111111-2222-3333-4444-555555555555")
            .with_base_url(sim.base_url())
            .with_default_zone("fr-par-1")
            .with_request_timeout(Duration::from_secs(5)),
    )
    .expect("client")
}
