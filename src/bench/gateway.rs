//! Benchmark 7: the `/v1` gateway against the engine it proxies, in the same run.
//!
//! One mock vLLM engine on 127.0.0.1, one control-plane process with the gateway, an API key
//! (authentication, rate-limit bookkeeping and usage metering all on). Measured:
//! - **added latency**: one client, requests alternating between the engine directly and the
//!   gateway (so both see the same machine noise); p50 and p99 of each, and the difference;
//! - **time to first chunk** of a stream, direct vs through the gateway;
//! - **throughput**: closed loop with many clients, direct vs through the gateway, for
//!   non-streaming and streaming requests, with an engine that answers at once (the gateway's
//!   own cost dominates) — the harshest case on a machine whose cores are shared by the load
//!   generator, the gateway and the engine.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use inferplane_domain::api_key::{ApiKey, ApiKeyCommand, KeyLimits};
use inferplane_domain::catalog::Provider;
use inferplane_domain::instance::{InstanceEvent, InstanceRequested, VllmMode};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_gateway::GatewaySettings;
use inferplane_store::{CommandContext, EventStore, NewEvent};
use inferplane_worker::engine::{EngineConfig, MockEngine};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::Config;
use super::fresh::{FreshDb, start_server_with};
use super::stats::{Row, drive, grouped, ms, summarize};

const MODEL: &str = "bench/gateway-model";
/// Served by an engine with vLLM-like timing and batch size (the engine-bound runs).
const GPU_MODEL: &str = "bench/gpu-like-model";
/// Sequences the GPU-like engine runs at once, and its timing (the mock's defaults).
const GPU_SEQS: u32 = 16;

pub async fn run(admin: &PgPool, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let db = FreshDb::create(admin, 20).await?;
    let result = measure(&db, cfg).await;
    db.drop().await;
    result
}

async fn ready_instance(pool: &PgPool, model: &str, ip: &str) -> anyhow::Result<()> {
    let events = [
        InstanceEvent::InstanceRequested(InstanceRequested {
            model_id: Uuid::now_v7(),
            model_repo: model.into(),
            model_required_vram_gb: 16,
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
        InstanceEvent::ServerStarted {
            public_ip: ip.into(),
        },
        InstanceEvent::InstanceReady,
    ];
    let new: Vec<NewEvent> = events
        .iter()
        .map(|e| {
            Ok(NewEvent {
                event_type: e.name().to_string(),
                event_version: "1".into(),
                payload: serde_json::to_value(e)?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    EventStore::new(pool.clone())
        .append(
            "instance",
            &Uuid::now_v7().to_string(),
            0,
            &new,
            &EventMetadata::new_command(Actor::system("bench")),
        )
        .await?;
    Ok(())
}

async fn create_key(pool: &PgPool) -> anyhow::Result<(Uuid, String)> {
    let (key, secret) = inferplane_api::routes::keys::generate_key();
    let id = Uuid::now_v7();
    EventStore::new(pool.clone())
        .execute::<ApiKey>(
            &id.to_string(),
            ApiKeyCommand::Create {
                name: "bench".into(),
                secret,
                // Limits far above the load: the bookkeeping runs, nothing is refused.
                limits: KeyLimits {
                    rpm_limit: Some(1_000_000_000),
                    tpm_limit: Some(1_000_000_000),
                    ..KeyLimits::default()
                },
                now: chrono::Utc::now(),
            },
            &(),
            &CommandContext::new(EventMetadata::new_command(Actor::system("bench"))),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((id, key))
}

fn body(stream: bool) -> axum::body::Bytes {
    body_for(MODEL, stream)
}

fn body_for(model: &str, stream: bool) -> axum::body::Bytes {
    serde_json::to_vec(&json!({
        "model": model,
        "messages": [{"role": "user", "content": "measure the gateway"}],
        "max_tokens": 8,
        "stream": stream,
    }))
    .unwrap_or_default()
    .into()
}

/// One request; returns the time to the first body chunk and the total time.
async fn one(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: axum::body::Bytes,
) -> anyhow::Result<(Duration, Duration)> {
    let start = Instant::now();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await?;
    anyhow::ensure!(r.status().is_success(), "status {}", r.status());
    let mut s = r.bytes_stream();
    let mut first = None;
    while let Some(chunk) = s.next().await {
        chunk?;
        first.get_or_insert_with(|| start.elapsed());
    }
    Ok((first.unwrap_or_else(|| start.elapsed()), start.elapsed()))
}

fn ns(d: Duration) -> i64 {
    d.as_nanos() as i64
}

async fn measure(db: &FreshDb, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let engine = MockEngine::start_on(
        listener,
        EngineConfig {
            served_model_names: vec![MODEL.into()],
            ttft_ms: 0,
            itl_ms: 0,
            max_num_seqs: 1024,
            max_waiting: 4096,
            ..EngineConfig::default()
        },
    )
    .context("starting the engine")?;
    // A second engine on another loopback address, same port (workers share the engine port).
    let gpu_listener = tokio::net::TcpListener::bind(("127.0.0.2", port))
        .await
        .context("binding 127.0.0.2 for the GPU-like engine")?;
    let gpu_engine = MockEngine::start_on(
        gpu_listener,
        EngineConfig {
            served_model_names: vec![GPU_MODEL.into()],
            max_num_seqs: GPU_SEQS,
            max_waiting: 4096,
            ..EngineConfig::default()
        },
    )
    .context("starting the GPU-like engine")?;
    let settings = inferplane_api::Settings {
        gateway: GatewaySettings {
            engine_port: port,
            ..GatewaySettings::default()
        },
        ..inferplane_api::Settings::default()
    };
    let server = start_server_with(db.pool(20).await?, settings).await?;
    ready_instance(&db.pool, MODEL, "127.0.0.1").await?;
    ready_instance(&db.pool, GPU_MODEL, "127.0.0.2").await?;
    let (key_id, key) = create_key(&db.pool).await?;
    let gw = server.server.state.gateway.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (gw.directory.served_models().len() < 2 || gw.keys.version_of(key_id) == 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let direct = format!("{}/v1/chat/completions", engine.base_url());
    let via = format!("http://{}/v1/chat/completions", server.addr);
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()?;
    let gpu_direct = format!("{}/v1/chat/completions", gpu_engine.base_url());
    let mut result = run_all(cfg, &client, &direct, &via, &key).await;
    if let Ok(rows) = result.as_mut() {
        match engine_bound(cfg, &client, &gpu_direct, &via, &key).await {
            Ok(more) => rows.extend(more),
            Err(e) => result = Err(e),
        }
    }
    let (recorded, flushed) = gw.meter.counts();
    eprintln!("gateway: {recorded} usage records, {flushed} flushed before stop");
    server.stop().await;
    let _ = engine.shutdown().await;
    let _ = gpu_engine.shutdown().await;
    result
}

/// Throughput when the engine is the bottleneck, as a GPU is: the mock's vLLM-like timing
/// (50 ms to the first token, 10 ms per token, 16 tokens) and 16 sequences at once, with four
/// times as many clients. The gateway must not lower what the engine delivers.
async fn engine_bound(
    cfg: &Config,
    client: &reqwest::Client,
    direct: &str,
    via: &str,
    key: &str,
) -> anyhow::Result<Vec<Row>> {
    let clients = GPU_SEQS as usize * 4;
    let mut rows = Vec::new();
    for stream in [false, true] {
        let kind = if stream { "streaming" } else { "non-streaming" };
        eprintln!("gateway: engine-bound throughput, {kind}, {clients} clients");
        let rate = |url: String, key: Option<String>| {
            let client = client.clone();
            drive(clients, cfg.warmup, cfg.duration, move |_, _| {
                let (client, url, key) = (client.clone(), url.clone(), key.clone());
                async move {
                    one(&client, &url, key.as_deref(), body_for(GPU_MODEL, stream)).await?;
                    Ok(1)
                }
            })
        };
        let d = rate(direct.to_string(), None).await?;
        let g = rate(via.to_string(), Some(key.to_string())).await?;
        let ratio = g.rate() / d.rate();
        rows.push(
            Row::new(
                format!("gateway throughput, GPU-like engine, {kind}"),
                format!("{:.1} req/s", g.rate()),
            )
            .baseline(format!("direct {:.1} req/s", d.rate()), Some(ratio))
            .target(">= 0.80 of direct", ratio >= 0.8),
        );
    }
    Ok(rows)
}

async fn run_all(
    cfg: &Config,
    client: &reqwest::Client,
    direct: &str,
    via: &str,
    key: &str,
) -> anyhow::Result<Vec<Row>> {
    let samples = cfg.gateway_samples;
    eprintln!("gateway: added latency, {samples} requests each way, alternating");
    // Warm both paths (connections, caches).
    for _ in 0..200 {
        one(client, direct, None, body(false)).await?;
        one(client, via, Some(key), body(false)).await?;
    }
    let mut rows = Vec::new();
    for stream in [false, true] {
        let (mut d_total, mut g_total, mut d_first, mut g_first) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..samples {
            let (f, t) = one(client, direct, None, body(stream)).await?;
            d_first.push(ns(f));
            d_total.push(ns(t));
            let (f, t) = one(client, via, Some(key), body(stream)).await?;
            g_first.push(ns(f));
            g_total.push(ns(t));
        }
        let kind = if stream { "streaming" } else { "non-streaming" };
        let (d, g) = (
            summarize(d_total).context("no samples")?,
            summarize(g_total).context("no samples")?,
        );
        let (p50, p99) = (g.p50 - d.p50, g.p99 - d.p99);
        rows.push(
            Row::new(
                format!("gateway added p50, {kind}"),
                format!("{} (via {})", ms(p50), ms(g.p50)),
            )
            .baseline(format!("direct {}", ms(d.p50)), None)
            .target("<= 1 ms", p50 <= 1_000_000),
        );
        rows.push(
            Row::new(
                format!("gateway added p99, {kind}"),
                format!("{} (via {})", ms(p99), ms(g.p99)),
            )
            .baseline(format!("direct {}", ms(d.p99)), None)
            .target("<= 5 ms", p99 <= 5_000_000),
        );
        if stream {
            let (d, g) = (
                summarize(d_first).context("no samples")?,
                summarize(g_first).context("no samples")?,
            );
            let added = g.p50 - d.p50;
            rows.push(
                Row::new(
                    "gateway time to first chunk, p50",
                    format!("{} added (via {})", ms(added), ms(g.p50)),
                )
                .baseline(format!("direct {}", ms(d.p50)), None)
                .target("<= 2 ms added", added <= 2_000_000),
            );
        }
    }
    let clients = cfg.gateway_clients;
    for stream in [false, true] {
        let kind = if stream { "streaming" } else { "non-streaming" };
        eprintln!("gateway: throughput, {kind}, {clients} clients");
        let rate = |url: String, key: Option<String>| {
            let client = client.clone();
            let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let t = times.clone();
            let run = drive(clients, cfg.warmup, cfg.duration, move |_, _| {
                let (client, url, key, t) = (client.clone(), url.clone(), key.clone(), t.clone());
                async move {
                    let (_, total) = one(&client, &url, key.as_deref(), body(stream)).await?;
                    t.lock().unwrap_or_else(|e| e.into_inner()).push(ns(total));
                    Ok(1)
                }
            });
            async move {
                let r = run.await?;
                let samples = std::mem::take(&mut *times.lock().unwrap_or_else(|e| e.into_inner()));
                anyhow::Ok((r, summarize(samples)))
            }
        };
        let (d, d_lat) = rate(direct.to_string(), None).await?;
        let (g, g_lat) = rate(via.to_string(), Some(key.to_string())).await?;
        if let (Some(d), Some(g)) = (d_lat, g_lat) {
            println!(
                "gateway under load, {kind}: p50 {} p99 {} max {} (direct p50 {} p99 {} max {})",
                ms(g.p50),
                ms(g.p99),
                ms(g.max),
                ms(d.p50),
                ms(d.p99),
                ms(d.max)
            );
        }
        let ratio = g.rate() / d.rate();
        rows.push(
            Row::new(
                format!("gateway throughput, instant engine, {kind}"),
                format!("{} req/s", grouped(g.rate())),
            )
            .baseline(format!("direct {} req/s", grouped(d.rate())), Some(ratio))
            .target(">= 0.80 of direct", ratio >= 0.8),
        );
    }
    Ok(rows)
}
