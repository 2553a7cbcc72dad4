//! Benchmark 5: 10,000 idle SSE clients on one server process: the server's resident memory
//! per client, and the delay from commit to receipt of one event by all of them.
//!
//! The server runs in this process; the clients run in a child process (this binary again,
//! `bench --sse-clients-worker`), because both ends of 10,000 connections need more file
//! descriptors than one process may hold. The child runs under `sh -c 'ulimit -n <hard>'`;
//! this process re-runs itself the same way when its own soft limit is too low.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use inferplane_store::EventStore;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::Config;
use super::fixtures::append_registration;
use super::fresh::{FreshDb, TestServer, start_server};
use super::stats::{Row, delays, ms, summarize};
use super::worker::TOKEN_ENV;

const TARGET_BYTES_PER_CLIENT: f64 = 10.0 * 1024.0;
const TARGET_P99_NS: i64 = 250_000_000;
/// Descriptors besides the clients' (database pool, listener, stdio, runtime).
const SPARE_FILES: u64 = 256;
const REEXEC_ENV: &str = "INFERPLANE_BENCH_FILES_RAISED";
/// Raises the soft open-files limit to the hard one, then runs "$0" "$@".
const RAISE_AND_EXEC: &str = r#"ulimit -n "$(ulimit -Hn)" && exec "$0" "$@""#;

/// (soft, hard) limit on open files of this process, from /proc/self/limits.
fn open_files_limit() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line.split_whitespace().skip(3);
    let mut parse = || fields.next().map(|v| v.parse().unwrap_or(u64::MAX));
    Some((parse()?, parse()?))
}

/// When the soft limit is too low for the fan-out's server side but the hard limit allows
/// it, re-runs the whole command with the soft limit raised. Returns true if it did (and the
/// re-run succeeded).
pub async fn rerun_with_more_files(cfg: &Config) -> anyhow::Result<bool> {
    let needed = cfg.fanout_clients as u64 + SPARE_FILES;
    let Some((soft, hard)) = open_files_limit() else {
        return Ok(false);
    };
    if soft >= needed || hard < needed || std::env::var_os(REEXEC_ENV).is_some() {
        return Ok(false);
    }
    eprintln!("bench: the open-files limit is {soft}; re-running with the hard limit {hard}");
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(RAISE_AND_EXEC)
        .arg(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env(REEXEC_ENV, "1")
        .status()
        .await?;
    anyhow::ensure!(
        status.success(),
        "the re-run with more open files failed ({status})"
    );
    Ok(true)
}

/// Resident memory of this process in bytes.
fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

pub async fn run(admin: &PgPool, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let needed = cfg.fanout_clients as u64 + SPARE_FILES;
    if let Some((soft, hard)) = open_files_limit() {
        anyhow::ensure!(
            soft >= needed,
            "{} clients need {needed} open files in the server process; the limit is {soft} (hard {hard}): raise it or pass --fanout-clients",
            cfg.fanout_clients
        );
    }
    let db = FreshDb::create(admin, 4).await?;
    let result = measure(&db, cfg).await;
    db.drop().await;
    result
}

async fn measure(db: &FreshDb, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let server = start_server(db.pool(10).await?).await?;
    let store = EventStore::new(db.pool.clone());
    // One event through the whole path first, so that lazily built parts exist before "before".
    append_registration(&store, "fanout-warmup", 0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_bytes()?;
    let mut child = spawn_worker(&server, cfg)?;
    let measured = with_worker(&mut child, &store, cfg, before).await;
    if child.try_wait()?.is_none() {
        child.kill().await?;
    }
    server.stop().await;
    measured
}

fn spawn_worker(server: &TestServer, cfg: &Config) -> anyhow::Result<Child> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(RAISE_AND_EXEC)
        .arg(std::env::current_exe()?)
        .args(["--log", "warn", "bench", "--sse-clients-worker"])
        .arg(server.addr.to_string())
        .arg("--worker-clients")
        .arg(cfg.fanout_clients.to_string())
        .arg("--worker-events")
        .arg(cfg.fanout_events.to_string())
        .env(TOKEN_ENV, &server.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the SSE client process")
}

async fn with_worker(
    child: &mut Child,
    store: &EventStore,
    cfg: &Config,
    rss_before: u64,
) -> anyhow::Result<Vec<Row>> {
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let clients = cfg.fanout_clients;
    eprintln!("fanout: connecting {clients} clients from a child process");
    let ready = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
        .await
        .context("the clients did not connect within 300 s")??
        .context("the client process ended")?;
    let connected: usize = ready
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected line from the client process: {ready:?}"))?;
    anyhow::ensure!(connected > 0, "no client connected: {ready}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per_client = rss_bytes()?.saturating_sub(rss_before) as f64 / connected as f64;

    let mut reader = tokio::spawn(async move {
        let (mut samples, mut cut, mut errors) = (Vec::new(), 0usize, Vec::new());
        while let Ok(Some(line)) = lines.next_line().await {
            let mut parts = line.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("r"), Some(p), Some(at)) => {
                    if let (Ok(p), Ok(at)) = (p.parse::<i64>(), at.parse::<i64>()) {
                        samples.push((p, at));
                    }
                }
                (Some("cut"), ..) => cut += 1,
                (Some("error"), ..) => errors.push(line.clone()),
                (Some("done"), ..) => break,
                _ => {}
            }
        }
        (samples, cut, errors)
    });
    eprintln!(
        "fanout: delivering {} events to {connected} clients",
        cfg.fanout_events
    );
    let mut commits = HashMap::new();
    for i in 0..cfg.fanout_events as u64 {
        let (position, at) = append_registration(store, "fanout", i).await?;
        commits.insert(position, at);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Clients stop on their own once they have every event; closing stdin stops the rest.
    let results = match tokio::time::timeout(Duration::from_secs(20), &mut reader).await {
        Ok(r) => r?,
        Err(_) => {
            drop(child.stdin.take());
            match tokio::time::timeout(Duration::from_secs(20), &mut reader).await {
                Ok(r) => r?,
                Err(_) => {
                    reader.abort();
                    anyhow::bail!("the client process did not report within 40 s");
                }
            }
        }
    };
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let (samples, cut, errors) = results;
    rows(cfg, connected, per_client, &samples, &commits, cut, &errors)
}

fn rows(
    cfg: &Config,
    connected: usize,
    per_client: f64,
    samples: &[(i64, i64)],
    commits: &HashMap<i64, i64>,
    cut: usize,
    errors: &[String],
) -> anyhow::Result<Vec<Row>> {
    let clients = cfg.fanout_clients;
    let memory = Row::new(
        format!("SSE fan-out, {clients} idle:"),
        format!("{:.1} KB per client", per_client / 1024.0),
    )
    .baseline(format!("{connected}/{clients} connected"), None)
    .target("target <= 10.0 KB", per_client <= TARGET_BYTES_PER_CLIENT);
    let delays = delays(samples, commits);
    let mut positions: Vec<_> = commits.keys().copied().collect();
    positions.sort_unstable();
    for p in positions {
        let one: Vec<(i64, i64)> = samples.iter().filter(|s| s.0 == p).copied().collect();
        if let Some(s) = summarize(super::stats::delays(&one, commits)) {
            eprintln!(
                "fanout: event {p}: {} clients, p50 {} p99 {} max {}",
                one.len(),
                ms(s.p50),
                ms(s.p99),
                ms(s.max)
            );
        }
    }
    let expected = clients * commits.len();
    let got = delays.len();
    let summary = summarize(delays).context("no fan-out client received anything")?;
    let latency = Row::new(
        format!("fan-out delivery, {clients}:"),
        format!(
            "p50 {} p99 {} max {}",
            ms(summary.p50),
            ms(summary.p99),
            ms(summary.max)
        ),
    )
    .target(
        format!("target p99 <= {}", ms(TARGET_P99_NS)),
        summary.p99 <= TARGET_P99_NS,
    );
    let mut note = String::new();
    if cut > 0 {
        note += &format!(", {cut} cut off");
    }
    if let Some(e) = errors.first() {
        note += &format!(", {} errors ({e})", errors.len());
    }
    let delivery = Row::new(
        format!("fan-out received, {clients}:"),
        format!("{got}/{expected} events{note}"),
    )
    .target("target all", got == expected)
    .correctness();
    for r in [&memory, &latency, &delivery] {
        r.print();
    }
    Ok(vec![memory, latency, delivery])
}
