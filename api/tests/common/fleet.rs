//! Workers for gateway tests: real mock vLLM engines on loopback addresses (127.0.0.x, one
//! port for all, as real workers share the engine port), and instances recorded as ready at
//! those addresses through the event store.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use inferplane_domain::catalog::Provider;
use inferplane_domain::instance::{InstanceEvent, InstanceRequested, VllmMode};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::{EventStore, NewEvent};
use inferplane_worker::engine::{EngineConfig, EngineHandle, MockEngine};
use sqlx::PgPool;
use uuid::Uuid;

/// Loopback addresses handed out so far (tests in one binary run in parallel).
static NEXT_IP: AtomicU8 = AtomicU8::new(2);

pub struct Fleet {
    pub port: u16,
    pub workers: Vec<(Uuid, EngineHandle)>,
}

fn next_ip() -> Ipv4Addr {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    // 127.0.<pid-derived>.<n>: distinct per test binary and per worker.
    let third = (std::process::id() % 200) as u8 + 20;
    Ipv4Addr::new(127, 0, third, n.max(2))
}

/// A port free on a fresh loopback address.
pub async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(next_ip()), 0))
        .await
        .unwrap();
    l.local_addr().unwrap().port()
}

pub fn engine_config(model: &str) -> EngineConfig {
    let mut c = EngineConfig::with_models([model]);
    c.ttft_ms = 5;
    c.itl_ms = 1;
    c
}

impl Fleet {
    pub async fn new() -> Self {
        Self {
            port: free_port().await,
            workers: Vec::new(),
        }
    }

    /// Starts an engine serving `config` and records a ready instance at its address.
    pub async fn add(&mut self, pool: &PgPool, config: EngineConfig) -> Uuid {
        let model = config.served_model_names[0].clone();
        let (listener, ip) = loop {
            let ip = next_ip();
            if let Ok(l) =
                tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(ip), self.port)).await
            {
                break (l, ip);
            }
        };
        let engine = MockEngine::start_on(listener, config).unwrap();
        let id = Uuid::now_v7();
        record_ready(pool, id, &model, &ip.to_string()).await;
        self.workers.push((id, engine));
        id
    }

    pub fn engine(&self, id: Uuid) -> &EngineHandle {
        &self.workers.iter().find(|(i, _)| *i == id).unwrap().1
    }
}

async fn append(pool: &PgPool, id: Uuid, version: i64, events: Vec<InstanceEvent>) {
    let store = EventStore::new(pool.clone());
    let new: Vec<NewEvent> = events
        .into_iter()
        .map(|e| NewEvent {
            event_type: e.name().to_string(),
            event_version: "1".into(),
            payload: serde_json::to_value(&e).unwrap(),
        })
        .collect();
    store
        .append(
            "instance",
            &id.to_string(),
            version,
            &new,
            &EventMetadata::new_command(Actor::system("test")),
        )
        .await
        .unwrap();
}

/// Records an instance of `model` as requested, running at `ip`, and ready.
pub async fn record_ready(pool: &PgPool, id: Uuid, model: &str, ip: &str) {
    append(
        pool,
        id,
        0,
        vec![
            InstanceEvent::InstanceRequested(InstanceRequested {
                model_id: Uuid::now_v7(),
                model_repo: model.to_string(),
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
                public_ip: ip.to_string(),
            },
            InstanceEvent::InstanceReady,
        ],
    )
    .await;
}

/// Records that instance `id` (at `version`) started draining.
pub async fn record_drain(pool: &PgPool, id: Uuid, version: i64) {
    append(pool, id, version, vec![InstanceEvent::DrainStarted]).await;
}

/// Sums a counter over every series of an engine's /metrics.
pub async fn engine_counter(engine: &EngineHandle, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", engine.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub const WAIT: Duration = Duration::from_secs(20);
