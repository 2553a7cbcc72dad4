//! `inferplane bench`: measures the event store, the projections and the live stream against
//! raw PostgreSQL measured in the same run, each benchmark in a fresh database of its own
//! (`bench_<uuid>`, dropped at the end) so that real data is never touched.
//! See docs/benchmarks.md for what each benchmark measures and why its baseline is fair.
#![allow(clippy::print_stdout)]

mod append;
mod batch;
mod fanout;
mod fixtures;
mod fresh;
mod gateway;
mod latency;
mod lifecycle;
mod rebuild;
mod sse_client;
mod stats;
mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use sqlx::PgPool;

use crate::cli::DbArgs;
use crate::database::Database;
use stats::Row;

/// The benchmarks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchName {
    /// One event per command through the domain vs one-row INSERT transactions.
    Append,
    /// 100 events per transaction through the store vs a multi-row INSERT.
    Batch,
    /// Commit to receipt by 100 SSE clients of a real server.
    SseLatency,
    /// Rebuild of the model catalog vs reading the same events.
    Rebuild,
    /// Memory and delivery latency of 10,000 idle SSE clients.
    Fanout,
    /// 200 instances requested at once to ready and terminated, against the Scaleway
    /// simulator, vs the same provider calls made directly.
    Lifecycle,
    /// The /v1 gateway (auth, rate limits, metering) vs the engine called directly.
    Gateway,
}

const ALL: [BenchName; 7] = [
    BenchName::Append,
    BenchName::Batch,
    BenchName::SseLatency,
    BenchName::Rebuild,
    BenchName::Fanout,
    BenchName::Lifecycle,
    BenchName::Gateway,
];

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Run only these benchmarks (comma-separated); all of them when unset.
    #[arg(long, env = "INFERPLANE_BENCH_ONLY", value_enum, value_delimiter = ',')]
    pub only: Vec<BenchName>,
    /// Smaller sizes for a smoke run (CI): 2 s runs, 100,000 events to rebuild, 1,000 fan-out
    /// clients. Explicit size flags still win.
    #[arg(long, env = "INFERPLANE_BENCH_QUICK")]
    pub quick: bool,
    /// Measured seconds of each throughput run and of the latency run [default: 5; 2 with --quick].
    #[arg(long, env = "INFERPLANE_BENCH_DURATION_SECS")]
    pub duration_secs: Option<f64>,
    /// Client counts of the append benchmark.
    #[arg(long, env = "INFERPLANE_BENCH_APPEND_CLIENTS", value_delimiter = ',', default_values_t = [1, 8])]
    pub append_clients: Vec<usize>,
    /// Events per transaction of the batch benchmark.
    #[arg(long, env = "INFERPLANE_BENCH_BATCH_EVENTS", default_value_t = 100)]
    pub batch_events: usize,
    /// Concurrent clients of the batch benchmark.
    #[arg(long, env = "INFERPLANE_BENCH_BATCH_CLIENTS", default_value_t = 4)]
    pub batch_clients: usize,
    /// SSE clients of the latency benchmark.
    #[arg(long, env = "INFERPLANE_BENCH_LATENCY_CLIENTS", default_value_t = 100)]
    pub latency_clients: usize,
    /// Appends per second (one event each) during the latency benchmark.
    #[arg(long, env = "INFERPLANE_BENCH_LATENCY_RATE", default_value_t = 500)]
    pub latency_rate: u32,
    /// Events the projection is rebuilt from [default: 1000000; 100000 with --quick].
    #[arg(long, env = "INFERPLANE_BENCH_REBUILD_EVENTS")]
    pub rebuild_events: Option<u64>,
    /// Events per model in the rebuild data (one registration, then updates).
    #[arg(
        long,
        env = "INFERPLANE_BENCH_REBUILD_EVENTS_PER_MODEL",
        default_value_t = 100
    )]
    pub rebuild_events_per_model: u64,
    /// Write each model's whole history in one block (the projection's easy case) instead of
    /// interleaving all models round after round.
    #[arg(long, env = "INFERPLANE_BENCH_REBUILD_GROUPED")]
    pub rebuild_grouped: bool,
    /// Idle SSE clients of the fan-out benchmark [default: 10000; 1000 with --quick].
    #[arg(long, env = "INFERPLANE_BENCH_FANOUT_CLIENTS")]
    pub fanout_clients: Option<usize>,
    /// Events delivered to every fan-out client (one every 500 ms).
    #[arg(long, env = "INFERPLANE_BENCH_FANOUT_EVENTS", default_value_t = 5)]
    pub fanout_events: usize,
    /// Requests each way in the gateway's latency runs [default: 3000; 500 with --quick].
    #[arg(long, env = "INFERPLANE_BENCH_GATEWAY_SAMPLES")]
    pub gateway_samples: Option<usize>,
    /// Concurrent clients of the gateway's throughput runs against the instant engine.
    #[arg(long, env = "INFERPLANE_BENCH_GATEWAY_CLIENTS", default_value_t = 32)]
    pub gateway_clients: usize,
    /// Instances of the lifecycle benchmark [default: 200; 50 with --quick].
    #[arg(long, env = "INFERPLANE_BENCH_LIFECYCLE_INSTANCES")]
    pub lifecycle_instances: Option<usize>,
    /// Instances taken up and down before the lifecycle benchmark's measured round, by the
    /// control plane and by the direct-calls baseline alike (0: measure a cold start).
    #[arg(long, env = "INFERPLANE_BENCH_LIFECYCLE_WARMUP", default_value_t = 20)]
    pub lifecycle_warmup: usize,
    /// Duration of each simulated provider state step in the lifecycle benchmark, in ms.
    #[arg(long, env = "INFERPLANE_BENCH_LIFECYCLE_STEP_MS", default_value_t = 20)]
    pub lifecycle_step_ms: u64,
    /// Database connections of the control plane in the lifecycle benchmark.
    #[arg(long, env = "INFERPLANE_BENCH_LIFECYCLE_POOL", default_value_t = 40)]
    pub lifecycle_pool: u32,
    /// Steps each processor runs at once in the lifecycle benchmark.
    #[arg(
        long,
        env = "INFERPLANE_BENCH_LIFECYCLE_CONCURRENCY",
        default_value_t = 256
    )]
    pub lifecycle_concurrency: usize,
    /// Internal: run as the fan-out benchmark's client process against this server.
    #[arg(long, hide = true)]
    pub sse_clients_worker: Option<SocketAddr>,
    /// Internal: connections the client process opens.
    #[arg(long, hide = true, default_value_t = 0)]
    pub worker_clients: usize,
    /// Internal: events each connection waits for.
    #[arg(long, hide = true, default_value_t = 0)]
    pub worker_events: usize,
}

/// Sizes of one run, after `--quick` and explicit flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub warmup: Duration,
    pub duration: Duration,
    pub append_clients: Vec<usize>,
    pub batch_events: usize,
    pub batch_clients: usize,
    pub latency_clients: usize,
    pub latency_rate: u32,
    pub rebuild_events: u64,
    pub rebuild_events_per_model: u64,
    pub rebuild_grouped: bool,
    pub fanout_clients: usize,
    pub fanout_events: usize,
    pub lifecycle_instances: usize,
    pub lifecycle_warmup: usize,
    pub lifecycle_step_ms: u64,
    pub lifecycle_pool: u32,
    pub lifecycle_concurrency: usize,
    /// Requests each way in the gateway's latency runs.
    pub gateway_samples: usize,
    /// Clients of the gateway's throughput runs.
    pub gateway_clients: usize,
}

impl Config {
    fn new(a: &BenchArgs) -> Self {
        let q = a.quick;
        let secs = a
            .duration_secs
            .unwrap_or(if q { 2.0 } else { 5.0 })
            .max(0.1);
        Self {
            warmup: Duration::from_millis(if q { 500 } else { 1000 }),
            duration: Duration::from_secs_f64(secs),
            append_clients: a.append_clients.iter().map(|&c| c.max(1)).collect(),
            batch_events: a.batch_events.max(1),
            batch_clients: a.batch_clients.max(1),
            latency_clients: a.latency_clients.max(1),
            latency_rate: a.latency_rate.max(1),
            rebuild_events: a
                .rebuild_events
                .unwrap_or(if q { 100_000 } else { 1_000_000 })
                .max(1),
            rebuild_events_per_model: a.rebuild_events_per_model.max(1),
            rebuild_grouped: a.rebuild_grouped,
            fanout_clients: a.fanout_clients.unwrap_or(if q { 1_000 } else { 10_000 }),
            fanout_events: a.fanout_events.max(1),
            lifecycle_instances: a
                .lifecycle_instances
                .unwrap_or(if q { 50 } else { 200 })
                .clamp(1, 250),
            lifecycle_warmup: a.lifecycle_warmup.min(50),
            lifecycle_step_ms: a.lifecycle_step_ms.max(1),
            lifecycle_pool: a.lifecycle_pool.clamp(2, 90),
            lifecycle_concurrency: a.lifecycle_concurrency.max(1),
            gateway_samples: a
                .gateway_samples
                .unwrap_or(if q { 500 } else { 3000 })
                .max(10),
            gateway_clients: a.gateway_clients.max(1),
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.sse_clients_worker {
        return worker::run(addr, args.worker_clients, args.worker_events).await;
    }
    let cfg = Config::new(&args);
    let selected: Vec<BenchName> = if args.only.is_empty() {
        ALL.to_vec()
    } else {
        ALL.into_iter().filter(|b| args.only.contains(b)).collect()
    };
    if selected.contains(&BenchName::Fanout) && fanout::rerun_with_more_files(&cfg).await? {
        return Ok(());
    }
    let db = Database::open(&args.db).await?;
    header(&db, &args, &cfg).await?;
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
    for bench in selected {
        let name = bench
            .to_possible_value()
            .map_or("?".into(), |v| v.get_name().to_owned());
        eprintln!("bench: running {name}");
        println!("\n== {name} ==");
        match run_one(bench, &db.pool, &cfg).await {
            Ok(r) => rows.extend(r),
            Err(e) => {
                println!("{name}: ERROR {e:#}");
                errors.push(name);
            }
        }
    }
    println!("\n== summary ==");
    for row in &rows {
        row.print();
    }
    let misses = rows.iter().filter(|r| !r.pass).count();
    println!("{} results, {misses} missed their target", rows.len());
    db.close(false).await?;
    let lost: Vec<&str> = rows
        .iter()
        .filter(|r| r.correctness && !r.pass)
        .map(|r| r.label.as_str())
        .collect();
    if !errors.is_empty() {
        anyhow::bail!("benchmarks failed: {}", errors.join(", "));
    }
    if !lost.is_empty() {
        anyhow::bail!("events were not delivered: {}", lost.join("; "));
    }
    Ok(())
}

async fn run_one(bench: BenchName, admin: &PgPool, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    // Boxed: the benchmarks' futures are large and only one runs at a time.
    match bench {
        BenchName::Append => Box::pin(append::run(admin, cfg)).await,
        BenchName::Batch => Box::pin(batch::run(admin, cfg)).await,
        BenchName::SseLatency => Box::pin(latency::run(admin, cfg)).await,
        BenchName::Rebuild => Box::pin(rebuild::run(admin, cfg)).await,
        BenchName::Fanout => Box::pin(fanout::run(admin, cfg)).await,
        BenchName::Lifecycle => Box::pin(lifecycle::run(admin, cfg)).await,
        BenchName::Gateway => Box::pin(gateway::run(admin, cfg)).await,
    }
}

/// When, where and on what the figures were measured.
async fn header(db: &Database, args: &BenchArgs, cfg: &Config) -> anyhow::Result<()> {
    let version: String = sqlx::query_scalar("show server_version")
        .fetch_one(&db.pool)
        .await?;
    let fsync: String = sqlx::query_scalar("show fsync").fetch_one(&db.pool).await?;
    let sync_commit: String = sqlx::query_scalar("show synchronous_commit")
        .fetch_one(&db.pool)
        .await?;
    let opts = db.pool.connect_options();
    let source = if db.is_private() {
        format!(
            "private cluster under {}",
            args.db.data_dir.join("postgres").display()
        )
    } else {
        format!("DATABASE_URL ({}:{})", opts.get_host(), opts.get_port())
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "inferplane bench {} ({}), {} UTC, {cpus} CPUs",
        env!("CARGO_PKG_VERSION"),
        if args.quick { "quick" } else { "full" },
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
    );
    println!("PostgreSQL {version} via {source}; fsync={fsync}, synchronous_commit={sync_commit}");
    println!(
        "each benchmark runs in a fresh database bench_<uuid>; runs last {:.1} s after {:.1} s of warm-up",
        cfg.duration.as_secs_f64(),
        cfg.warmup.as_secs_f64(),
    );
    Ok(())
}
