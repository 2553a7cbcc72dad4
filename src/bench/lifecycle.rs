//! Benchmark 6: the instance lifecycle at scale against the Scaleway simulator.
//!
//! N instances are requested at once; the lifecycle processors drive each to ready (provider
//! calls, bootstrap of the simulated VM, readiness probes of its engine), then all are
//! terminated and the simulator must hold nothing. The baseline, measured in the same run
//! against a simulator of its own, is a script making the same provider calls directly with
//! the same client (volume, server, attach, power-on, poll until running, start the VM's
//! engine and warm it up; then power off, poll until stopped, delete server and volumes), all
//! instances concurrently: what the lifecycle would cost with no event store, no processors
//! and no records. The processors' reaction time is measured from the event that woke a
//! subject (its `recorded_at`: when its append statement began, so the append's own statement
//! and commit count) to the start of the step it caused.
//!
//! Both sides first take a few instances up and down (`--lifecycle-warmup`, 20 by default)
//! and are measured on the next round: a control plane in service has its database
//! connections' caches, its HTTP clients' connections and its allocator warm, and the first
//! round of a fresh process pays for all of them at once (0 measures that cold start).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::try_join_all;
use inferplane_domain::instance::{
    Instance, InstanceCommand, InstanceId, RequestInstance, VllmMode,
};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_processors::{
    Lifecycle, LifecycleSettings, LocalInstaller, ProcessorRunner, ReactionObserver, RunnerSettings,
};
use inferplane_projections::ProjectionRunner;
use inferplane_scaleway::sim::{SimConfig, SimHandle, Simulator};
use inferplane_scaleway::{
    CreateServerRequest, CreateVolumeRequest, ScalewayClient, SecretKey, ServerAction, ServerState,
    VolumeTemplate,
};
use inferplane_store::{CommandContext, EventStore, Notifier};
use inferplane_worker::engine::{EngineConfig, MockEngine};
use sqlx::PgPool;
use tokio::sync::watch;

use super::Config;
use super::fresh::FreshDb;
use super::stats::{Row, ms, summarize};

const TARGET_P99_MS: f64 = 50.0;
const KEY: &str = "bench-simulator-secret-key";
const PROJECT: &str = "00000000-0000-4000-8000-0000000be7c4";
const ZONES: [&str; 3] = ["fr-par-1", "fr-par-2", "nl-ams-1"];
const GB: u64 = 1_000_000_000;

pub async fn run(admin: &PgPool, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let db = FreshDb::create(admin, 40).await?;
    let result = measure(&db, cfg).await;
    db.drop().await;
    result
}

fn sim_config(cfg: &Config) -> SimConfig {
    SimConfig::default()
        .with_step(Duration::from_millis(cfg.lifecycle_step_ms))
        .with_secret_key(SecretKey::new(KEY))
        .with_gpu_quota_per_zone(10_000)
}

fn client(sim: &SimHandle) -> anyhow::Result<ScalewayClient> {
    crate::lifecycle::client(
        sim.base_url(),
        SecretKey::new(KEY),
        PROJECT,
        "fr-par-1",
        Duration::from_secs(30),
    )
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        ttft_ms: 1,
        itl_ms: 1,
        ..EngineConfig::default()
    }
}

async fn measure(db: &FreshDb, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let n = cfg.lifecycle_instances;
    eprintln!("lifecycle: baseline, {n} instances through direct provider calls");
    let baseline_sim = Simulator::start(sim_config(cfg)).await?;
    if cfg.lifecycle_warmup > 0 {
        direct(&baseline_sim, cfg.lifecycle_warmup, cfg).await?;
    }
    let baseline = direct(&baseline_sim, n, cfg).await?;
    let _ = baseline_sim.shutdown().await;

    eprintln!("lifecycle: {n} instances through the control plane");
    let sim = Simulator::start(sim_config(cfg)).await?;
    let measured = control_plane(db, &sim, n, cfg).await?;
    let left = sim.state();
    let _ = sim.shutdown().await;

    let ready_ratio = baseline.up.as_secs_f64() / measured.up.as_secs_f64();
    let down_ratio = baseline.down.as_secs_f64() / measured.down.as_secs_f64();
    let reaction = summarize(measured.reactions.clone()).context("no reaction measured")?;
    let p99_ms = reaction.p99 as f64 / 1e6;
    let orphans = left.servers.len() + left.volumes.len();
    Ok(vec![
        Row::new(
            format!("lifecycle: {n} requested -> ready"),
            format!("{:.2} s", measured.up.as_secs_f64()),
        )
        .baseline(
            format!("direct calls {:.2} s", baseline.up.as_secs_f64()),
            Some(ready_ratio),
        ),
        Row::new(
            format!("lifecycle: {n} terminate -> gone"),
            format!("{:.2} s", measured.down.as_secs_f64()),
        )
        .baseline(
            format!("direct calls {:.2} s", baseline.down.as_secs_f64()),
            Some(down_ratio),
        ),
        Row::new(
            "lifecycle: processor reaction",
            format!(
                "p50 {} p99 {} max {} ({} steps)",
                ms(reaction.p50),
                ms(reaction.p99),
                ms(reaction.max),
                measured.reactions.len()
            ),
        )
        .target("p99 <= 50 ms", p99_ms <= TARGET_P99_MS),
        match summarize(measured.queued.clone()) {
            Some(q) => Row::new(
                "lifecycle: outcome queued for its append",
                format!(
                    "p50 {} p99 {} max {} ({} appends)",
                    ms(q.p50),
                    ms(q.p99),
                    ms(q.max),
                    measured.queued.len()
                ),
            ),
            None => Row::new(
                "lifecycle: outcome queued for its append",
                "none (appends not grouped)",
            ),
        },
        Row::new(
            "lifecycle: left at the provider",
            format!(
                "{} servers, {} volumes",
                left.servers.len(),
                left.volumes.len()
            ),
        )
        .target("nothing", orphans == 0)
        .correctness(),
    ])
}

struct Timings {
    up: Duration,
    down: Duration,
    reactions: Vec<i64>,
    /// How long each grouped append waited for its store's writer (ns): time an outcome spent
    /// before its event existed, which the ready time includes and the reaction does not.
    queued: Vec<i64>,
}

/// Appends' waits for the group writer, collected while the control plane runs.
static QUEUED: Mutex<Option<Vec<i64>>> = Mutex::new(None);

fn collect_queue_waits(on: bool) -> Vec<i64> {
    inferplane_store::observe_append_queue(|d| {
        if let Ok(mut q) = QUEUED.lock()
            && let Some(q) = q.as_mut()
        {
            q.push(d.as_nanos() as i64);
        }
    });
    let mut q = QUEUED.lock().unwrap_or_else(|e| e.into_inner());
    let taken = q.take().unwrap_or_default();
    if on {
        *q = Some(Vec::new());
    }
    taken
}

/// The same provider calls, made directly and concurrently.
async fn direct(sim: &SimHandle, n: usize, cfg: &Config) -> anyhow::Result<Timings> {
    let cloud = Arc::new(client(sim)?);
    let poll = Duration::from_millis(cfg.lifecycle_step_ms.max(5));
    let started = Instant::now();
    let ups = (0..n).map(|i| {
        let cloud = cloud.clone();
        async move {
            let zone = ZONES[i % 3];
            let tag = format!("bench-{i}");
            let volume = cloud
                .create_volume(
                    zone,
                    &CreateVolumeRequest {
                        name: format!("bench-{i}-data"),
                        project_id: None,
                        size: 100 * GB,
                        perf_iops: None,
                        tags: vec![tag.clone()],
                    },
                )
                .await?;
            let server = cloud
                .create_server(
                    zone,
                    &CreateServerRequest::new(format!("bench-{i}"), "L4-1-24G", "ubuntu")
                        .volume(0, VolumeTemplate::sbs(20 * GB))
                        .tag(tag),
                )
                .await?;
            loop {
                match cloud.attach_volume(zone, &server.id, &volume.id).await {
                    Ok(_) => break,
                    Err(inferplane_scaleway::ScalewayError::TransientState { .. }) => {
                        tokio::time::sleep(poll).await
                    }
                    Err(e) => return Err(anyhow::Error::new(e)),
                }
            }
            cloud
                .server_action(zone, &server.id, ServerAction::Poweron)
                .await?;
            let ip = loop {
                let s = cloud.get_server(zone, &server.id).await?;
                if s.state == ServerState::Running
                    && let Some(ip) = s.public_address()
                {
                    break ip.to_string();
                }
                tokio::time::sleep(poll).await;
            };
            let listener = tokio::net::TcpListener::bind((ip.as_str(), 8000)).await?;
            let engine = MockEngine::start_on(listener, engine_config())?;
            let warm = reqwest::Client::new()
                .post(format!("{}/v1/chat/completions", engine.base_url()))
                .json(&serde_json::json!({"model": "mock-llm", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}))
                .send()
                .await?;
            anyhow::ensure!(warm.status().is_success(), "warm-up answered {}", warm.status());
            let root: Vec<String> = s_volumes(&cloud, zone, &server.id).await?;
            anyhow::Ok((zone, server.id, volume.id, root, engine))
        }
    });
    let vms = try_join_all(ups).await?;
    let up = started.elapsed();

    let started = Instant::now();
    let downs = vms.into_iter().map(|(zone, server, volume, root, engine)| {
        let cloud = cloud.clone();
        async move {
            drop(engine);
            cloud
                .server_action(zone, &server, ServerAction::Poweroff)
                .await?;
            loop {
                let s = cloud.get_server(zone, &server).await?;
                if s.state == ServerState::Stopped {
                    break;
                }
                tokio::time::sleep(poll).await;
            }
            cloud.delete_server(zone, &server).await?;
            for v in root.iter().chain(std::iter::once(&volume)) {
                match cloud.delete_volume(zone, v).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(anyhow::Error::new(e)),
                }
            }
            anyhow::Ok(())
        }
    });
    try_join_all(downs).await?;
    let down = started.elapsed();
    let left = sim.state();
    anyhow::ensure!(
        left.servers.is_empty() && left.volumes.is_empty(),
        "the baseline left resources behind"
    );
    Ok(Timings {
        up,
        down,
        reactions: Vec::new(),
        queued: Vec::new(),
    })
}

async fn s_volumes(
    cloud: &ScalewayClient,
    zone: &str,
    server: &str,
) -> anyhow::Result<Vec<String>> {
    let s = cloud.get_server(zone, server).await?;
    Ok(s.volumes
        .values()
        .filter(|v| v.volume_type == "sbs_volume")
        .map(|v| v.id.clone())
        .collect())
}

/// The control plane: requests through the store, processors doing the rest.
async fn control_plane(
    db: &FreshDb,
    sim: &SimHandle,
    n: usize,
    cfg: &Config,
) -> anyhow::Result<Timings> {
    let poll = Duration::from_millis(cfg.lifecycle_step_ms.max(5));
    let settings = LifecycleSettings {
        provider_poll_interval: poll,
        readiness_probe_interval: poll,
        watchdog_interval: Duration::from_secs(30),
        reconcile_interval: Duration::from_secs(600),
        ..LifecycleSettings::default()
    };
    let store = EventStore::new(db.pool.clone());
    let lc = Arc::new(Lifecycle {
        store: store.clone(),
        cloud: client(sim)?,
        settings,
        installer: Arc::new(LocalInstaller::new(8000, engine_config())),
        zones: ZONES.iter().map(|z| z.to_string()).collect(),
        instances: Default::default(),
    });
    let samples = Arc::new(Mutex::new(Vec::<(&'static str, i64)>::new()));
    let observer = {
        let samples = samples.clone();
        ReactionObserver(Arc::new(move |processor, d| {
            if let Ok(mut s) = samples.lock() {
                s.push((processor, d.as_nanos() as i64));
            }
        }))
    };
    let pool = db.pool(cfg.lifecycle_pool).await?;
    let notifier = Notifier::spawn(pool.clone());
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    for projection in inferplane_projections::all() {
        inferplane_projections::ensure_installed(&pool, projection.as_ref()).await?;
        let runner = ProjectionRunner {
            projection,
            pool: pool.clone(),
            wakeups: notifier.subscribe(),
            poll_interval: Duration::from_secs(1),
            batch_size: 1000,
        };
        tasks.push(tokio::spawn(runner.run(stopped.clone())));
    }
    for processor in lc.processors() {
        let runner = ProcessorRunner {
            processor,
            pool: pool.clone(),
            wakeups: notifier.subscribe(),
            settings: RunnerSettings {
                concurrency: cfg.lifecycle_concurrency,
                poll_interval: Duration::from_secs(1),
                reactions: Some(observer.clone()),
                ..RunnerSettings::default()
            },
        };
        tasks.push(tokio::spawn(runner.run(stopped.clone())));
    }
    // Let every runner take its lead before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A running control plane has its connections open: open the pools' connections before
    // the clock starts (the runners hold some, so take what comes within a moment).
    for p in [&pool, &db.pool] {
        let mut conns = Vec::new();
        while let Ok(Ok(c)) = tokio::time::timeout(Duration::from_millis(100), p.acquire()).await {
            conns.push(c);
        }
    }

    if cfg.lifecycle_warmup > 0 {
        // A control plane that has run before: its connections' caches, its HTTP clients'
        // connections and its allocator warm, as they are in service.
        let w = cfg.lifecycle_warmup;
        eprintln!("lifecycle: warm-up, {w} instances up and down");
        up_and_down(&store, w).await?;
        if let Ok(mut s) = samples.lock() {
            s.clear();
        }
    }
    collect_queue_waits(true);
    let (up, down) = up_and_down(&store, n).await?;
    let reactions_up = samples.lock().map(|s| s.len()).unwrap_or(0);
    eprintln!(
        "lifecycle: {n} ready in {:.2} s, gone in {:.2} s ({reactions_up} steps)",
        up.as_secs_f64(),
        down.as_secs_f64()
    );
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    drop(notifier);
    pool.close().await;
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    print_breakdown(&samples);
    let reactions = samples.into_iter().map(|(_, d)| d).collect();
    Ok(Timings {
        up,
        down,
        reactions,
        queued: collect_queue_waits(false),
    })
}

/// Requests `n` instances at once and waits until all are ready, then terminates them all
/// and waits until all are gone: the time of each half.
async fn up_and_down(store: &EventStore, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let ids: Vec<InstanceId> = (0..n).map(|_| InstanceId::new_v7()).collect();
    try_join_all(ids.iter().enumerate().map(|(i, id)| {
        let store = store.clone();
        async move {
            let cmd = InstanceCommand::Request(RequestInstance {
                model_id: uuid::Uuid::from_u128(7),
                model_repo: "mock-llm/bench-8b".into(),
                model_required_vram_gb: 16,
                model_active: true,
                zone: ZONES[i % 3].into(),
                allowed_zones: vec![],
                instance_type: "L4-1-24G".into(),
                gpu_count: 1,
                vram_per_gpu_gb: 24,
                type_available_in_zone: true,
                hourly_price_micro_eur: 750_000,
                data_volume_gb: 100,
                vllm_mode: VllmMode::Mono,
            });
            command(&store, *id, cmd).await
        }
    }))
    .await?;
    wait_all(store, &ids, "InstanceReady", Duration::from_secs(300)).await?;
    let up = started.elapsed();

    let started = Instant::now();
    try_join_all(ids.iter().map(|id| {
        let store = store.clone();
        async move {
            command(
                &store,
                *id,
                InstanceCommand::Terminate {
                    reason: Some("bench".into()),
                },
            )
            .await
        }
    }))
    .await?;
    wait_all(store, &ids, "InstanceTerminated", Duration::from_secs(300)).await?;
    Ok((up, started.elapsed()))
}

/// Reaction time per processor, on stderr: where to look when the total misses.
fn print_breakdown(samples: &[(&'static str, i64)]) {
    let mut names: Vec<&str> = samples.iter().map(|(p, _)| *p).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let of: Vec<i64> = samples
            .iter()
            .filter(|(p, _)| *p == name)
            .map(|(_, d)| *d)
            .collect();
        let count = of.len();
        if let Some(s) = summarize(of) {
            eprintln!(
                "lifecycle: reaction of {name}: p50 {} p99 {} max {} ({} steps)",
                ms(s.p50),
                ms(s.p99),
                ms(s.max),
                count
            );
        }
    }
}

async fn command(store: &EventStore, id: InstanceId, cmd: InstanceCommand) -> anyhow::Result<()> {
    let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("bench")));
    store
        .execute::<Instance>(&id.to_string(), cmd, &(), &ctx)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Waits until every instance has recorded `reached` (one query per look, so that the
/// waiting adds next to nothing to the database's load); fails on a failed instance or the
/// deadline.
async fn wait_all(
    store: &EventStore,
    ids: &[InstanceId],
    reached: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    loop {
        let (done, failed): (i64, Option<String>) = sqlx::query_as(
            "select count(distinct aggregate_id) filter (where event_type = $2),
                    min(aggregate_id) filter (where event_type = 'InstanceFailed')
             from events
             where aggregate_type = 'instance' and aggregate_id = any($1)
               and event_type in ($2, 'InstanceFailed')",
        )
        .bind(&ids)
        .bind(reached)
        .fetch_one(store.pool())
        .await?;
        if let Some(id) = failed {
            anyhow::bail!("instance {id} failed");
        }
        if done as usize >= ids.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{} instances without {reached} in time",
                ids.len() - done as usize
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
