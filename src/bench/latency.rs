//! Benchmark 3: delay from an append's commit to its receipt by each of 100 SSE clients of a
//! real server (`inferplane_api::start`), at a paced 500 appends per second. Baseline: the
//! delay from commit to a raw LISTEN connection's receipt of the NOTIFY, the floor of any
//! push design on PostgreSQL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use inferplane_store::EventStore;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::Config;
use super::fixtures::append_registration;
use super::fresh::{FreshDb, TestServer, start_server};
use super::sse_client::{Received, connect_many};
use super::stats::{Row, delays, ms, now_ns, summarize};

const TARGET_P99_NS: i64 = 20_000_000;
const LISTEN_SAMPLES: u64 = 500;

pub async fn run(admin: &PgPool, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let db = FreshDb::create(admin, 4).await?;
    let result = measure(&db, cfg).await;
    db.drop().await;
    result
}

async fn measure(db: &FreshDb, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    eprintln!("sse-latency: commit to raw LISTEN, {LISTEN_SAMPLES} appends");
    let listen = summarize(listen_baseline(&db.pool).await?).context("no LISTEN samples")?;
    let server = start_server(db.pool(10).await?).await?;
    let delivered = deliver(db, &server, cfg).await;
    server.stop().await;
    let (received, commits, rate) = delivered?;

    let clients = cfg.latency_clients;
    let all: Vec<(i64, i64)> = received.iter().flat_map(|r| r.samples.clone()).collect();
    let samples = delays(&all, &commits);
    let expected = clients * commits.len();
    let got = samples.len();
    let mut problems = String::new();
    let cut = received.iter().filter(|r| r.cut_off).count();
    if cut > 0 {
        problems += &format!(", {cut} clients cut off");
    }
    if let Some(e) = received.iter().find_map(|r| r.error.as_ref()) {
        problems += &format!(", error: {e}");
    }
    let summary = summarize(samples).context("no SSE client received anything")?;
    let latency = Row::new(
        format!("commit-to-SSE, {clients} clients:"),
        format!(
            "p50 {} p99 {} max {}",
            ms(summary.p50),
            ms(summary.p99),
            ms(summary.max)
        ),
    )
    .baseline(
        format!("raw LISTEN p50 {} p99 {}", ms(listen.p50), ms(listen.p99)),
        None,
    )
    .target(
        format!("target p99 <= {}", ms(TARGET_P99_NS)),
        summary.p99 <= TARGET_P99_NS,
    );
    let delivery = Row::new(
        format!("SSE delivery, {clients} clients:"),
        format!("received {got}/{expected} events{problems}"),
    )
    .baseline(format!("appended at {rate:.0} events/s"), None)
    .target("target all", got == expected)
    .correctness();
    latency.print();
    delivery.print();
    Ok(vec![latency, delivery])
}

/// Commit-acknowledged to NOTIFY-received delays of appends made one at a time.
async fn listen_baseline(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(inferplane_store::NOTIFY_CHANNEL).await?;
    let store = EventStore::new(pool.clone());
    let mut samples = Vec::new();
    for i in 0..LISTEN_SAMPLES {
        let (_, committed) = append_registration(&store, "listen", i).await?;
        tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .context("no NOTIFY within 5 s")??;
        samples.push(now_ns() - committed);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(samples)
}

type Delivered = (Vec<Received>, HashMap<i64, i64>, f64);

/// Connects the clients, appends at the paced rate, and gathers what every client received.
async fn deliver(db: &FreshDb, server: &TestServer, cfg: &Config) -> anyhow::Result<Delivered> {
    let total = (f64::from(cfg.latency_rate) * cfg.duration.as_secs_f64()).round() as u64;
    let (clients, errors) = connect_many(
        server.addr,
        &server.token,
        cfg.latency_clients,
        50,
        "sse-latency",
    )
    .await;
    if let Some(e) = errors.first() {
        anyhow::bail!("{} SSE clients could not connect: {e}", errors.len());
    }
    let (stop, stopped) = watch::channel(false);
    let mut readers = JoinSet::new();
    for mut c in clients {
        let stopped = stopped.clone();
        readers.spawn(async move { (c.collect(total as usize, stopped).await, c) });
    }
    eprintln!(
        "sse-latency: {} appends at {}/s to {} clients",
        total, cfg.latency_rate, cfg.latency_clients
    );
    let started = Instant::now();
    let commits = paced(&EventStore::new(db.pool.clone()), total, cfg.latency_rate).await?;
    let rate = total as f64 / started.elapsed().as_secs_f64();
    // Stragglers get 5 s more, then every client stops with what it has.
    let grace = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(grace);
    let (mut received, mut connections) = (Vec::new(), Vec::new());
    loop {
        tokio::select! {
            joined = readers.join_next() => match joined {
                Some(r) => {
                    let (r, c) = r?;
                    received.push(r);
                    // Kept open until every client is done.
                    connections.push(c);
                }
                None => break,
            },
            _ = &mut grace, if !*stop.borrow() => {
                let _ = stop.send(true);
            }
        }
    }
    Ok((received, commits, rate))
}

/// Appends `total` registrations at `rate` per second, each in its own task so that a slow
/// commit does not delay the next one. Returns each position's commit time.
async fn paced(store: &EventStore, total: u64, rate: u32) -> anyhow::Result<HashMap<i64, i64>> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut appends = JoinSet::new();
    let mut commits = HashMap::new();
    for i in 0..total {
        tick.tick().await;
        let store = store.clone();
        appends.spawn(async move { append_registration(&store, "latency", i).await });
        while let Some(done) = appends.try_join_next() {
            let (position, at) = done??;
            commits.insert(position, at);
        }
    }
    while let Some(done) = appends.join_next().await {
        let (position, at) = done??;
        commits.insert(position, at);
    }
    Ok(commits)
}
