//! Benchmark 4: rebuild speed of the `model_catalog` projection over a million model events,
//! against the speed of merely reading the same events with the same reader and batch size.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use inferplane_projections::RebuildProgress;
use inferplane_store::reader::{self, Filter};
use inferplane_store::{Cursor, StoredEvent};
use sqlx::PgPool;

use super::Config;
use super::fixtures::{self, insert_rows};
use super::fresh::FreshDb;
use super::stats::{Row, grouped};

const TARGET: f64 = 50_000.0;
const BATCH: i64 = 5_000;
const EVENTS_PER_TX: u64 = 1_000;

pub async fn run(admin: &PgPool, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let db = FreshDb::create(admin, 4).await?;
    let result = measure(&db, cfg).await;
    db.drop().await;
    result
}

async fn measure(db: &FreshDb, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let models = (cfg.rebuild_events / cfg.rebuild_events_per_model).max(1);
    let events = models * cfg.rebuild_events_per_model;
    setup(&db.pool, models, events, cfg.rebuild_grouped).await?;

    eprintln!("rebuild: reading {events} events, {BATCH} per query");
    let started = Instant::now();
    let read = read_all(&db.pool).await?;
    let read_rate = read as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(read == events, "read {read} of {events} events");

    let projection =
        inferplane_projections::by_name("model_catalog").context("no model_catalog projection")?;
    let last = Mutex::new(Instant::now());
    let progress = |p: RebuildProgress| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_secs(2) {
            *last = Instant::now();
            eprintln!("rebuild: {}/{} events applied", p.applied, p.total);
        }
    };
    let started = Instant::now();
    let applied =
        inferplane_projections::rebuild(&db.pool, projection.as_ref(), BATCH, &progress).await?;
    let rebuild_rate = applied as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(
        applied == events,
        "rebuilt from {applied} of {events} events"
    );
    let rows: i64 = sqlx::query_scalar("select count(*) from rm_model_catalog.models")
        .fetch_one(&db.pool)
        .await?;
    anyhow::ensure!(
        rows as u64 == models,
        "{rows} models in the read model, not {models}"
    );

    let row = Row::new(
        format!(
            "rebuild model_catalog, {}{}:",
            short(events),
            if cfg.rebuild_grouped { " grouped" } else { "" }
        ),
        format!("{} events/s", grouped(rebuild_rate)),
    )
    .baseline(
        format!("read_after only {} events/s", grouped(read_rate)),
        Some(rebuild_rate / read_rate),
    )
    .target(
        format!("target >= {} events/s", grouped(TARGET)),
        rebuild_rate >= TARGET,
    );
    row.print();
    Ok(vec![row])
}

fn short(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M events", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k events", n / 1_000),
        n => format!("{n} events"),
    }
}

/// Writes `events` model events, 1,000 per transaction, interleaved as a live catalog would
/// see them: every model registered, then each updated in turn, round after round, so that
/// each read batch touches thousands of distinct models (the projection's hard case). With
/// `by_model`, each model's history is written in one block instead (the easy case).
async fn setup(pool: &PgPool, models: u64, events: u64, by_model: bool) -> anyhow::Result<()> {
    let layout = if by_model { "grouped" } else { "interleaved" };
    eprintln!("rebuild: writing {events} events of {models} models, {layout}");
    let per_model = events / models;
    let written = std::sync::atomic::AtomicU64::new(0);
    let chunks = events.div_ceil(EVENTS_PER_TX);
    let started = Instant::now();
    futures::stream::iter(0..chunks)
        .map(|c| {
            let rows: Vec<_> = (c * EVENTS_PER_TX..((c + 1) * EVENTS_PER_TX).min(events))
                .map(|n| {
                    let (round, model) = if by_model {
                        (n % per_model, n / per_model)
                    } else {
                        (n / models, n % models)
                    };
                    let event = if round == 0 {
                        fixtures::registered("rebuild", model)
                    } else {
                        fixtures::updated(model, round)
                    };
                    (
                        fixtures::model_id("rebuild", model),
                        round as i64 + 1,
                        event,
                    )
                })
                .collect();
            let written = &written;
            async move {
                insert_rows(pool, &rows).await?;
                let n = written.fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if (n / 100_000) != ((n + rows.len() as u64) / 100_000) {
                    eprintln!("rebuild: {} events written", n + rows.len() as u64);
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(2)
        .try_collect::<()>()
        .await?;
    eprintln!(
        "rebuild: setup took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Fresh statistics, as a database that has been running would have.
    sqlx::query("vacuum analyze events").execute(pool).await?;
    Ok(())
}

/// Reads the whole stream with the rebuild's reader and batch size; returns the event count.
async fn read_all(pool: &PgPool) -> anyhow::Result<u64> {
    let mut conn = pool.acquire().await?;
    let (mut cursor, mut n) = (Cursor::START, 0u64);
    loop {
        let events = reader::read_after(&mut conn, cursor, &Filter::default(), BATCH).await?;
        let Some(last) = events.last().map(StoredEvent::cursor) else {
            return Ok(n);
        };
        cursor = last;
        n += events.len() as u64;
    }
}
