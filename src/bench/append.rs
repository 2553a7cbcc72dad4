//! Benchmark 1: commands per second through the domain, one event per command, against
//! one-row INSERT transactions into the same table with the same connection count.

use inferplane_domain::model::{Model, ModelCommand};
use inferplane_store::{CommandContext, EventStore};
use sqlx::PgPool;
use uuid::Uuid;

use super::Config;
use super::fixtures::{self, MODEL};
use super::fresh::FreshDb;
use super::stats::{Row, Throughput, drive, grouped};

/// Models each client walks through: it deactivates them all, then activates them all, and so
/// on, so every command appends exactly one event to an aggregate of 1 to a few events.
const MODELS_PER_CLIENT: u64 = 2_000;
const TARGET: f64 = 0.50;
const PREFIX: &str = "append";

pub async fn run(admin: &PgPool, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let db = FreshDb::create(admin, 2).await?;
    let result = measure(&db, cfg).await;
    db.drop().await;
    result
}

async fn measure(db: &FreshDb, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let total_clients: u64 = cfg.append_clients.iter().map(|&c| c as u64).sum();
    eprintln!(
        "append: registering {} models",
        total_clients * MODELS_PER_CLIENT
    );
    fixtures::register_models(&db.pool, PREFIX, total_clients * MODELS_PER_CLIENT).await?;
    let mut rows = Vec::new();
    let mut first_model = 0;
    for &clients in &cfg.append_clients {
        let plural = if clients == 1 { "client" } else { "clients" };
        eprintln!("append: raw INSERT, {clients} {plural}");
        let pool = db.raw_pool(clients as u32).await?;
        let raw = fixtures::counted(&pool, raw_inserts(&pool, clients, cfg)).await?;
        pool.close().await;
        eprintln!("append: domain commands, {clients} {plural}");
        let pool = db.pool(clients as u32).await?;
        let domain = fixtures::counted(&pool, commands(&pool, clients, first_model, cfg)).await?;
        pool.close().await;
        first_model += clients as u64 * MODELS_PER_CLIENT;
        let ratio = domain.rate() / raw.rate();
        let row = Row::new(
            format!("append, {clients} {plural}:"),
            format!("domain {} cmd/s", grouped(domain.rate())),
        )
        .baseline(
            format!("raw INSERT {} tx/s", grouped(raw.rate())),
            Some(ratio),
        )
        .target(format!("target >= {TARGET:.2}"), ratio >= TARGET);
        row.print();
        rows.push(row);
    }
    Ok(rows)
}

/// One-row INSERTs, each its own transaction, with the columns and values a deactivation
/// writes (metadata serialised per row, like the store does).
async fn raw_inserts(pool: &PgPool, clients: usize, cfg: &Config) -> anyhow::Result<Throughput> {
    let pool = pool.clone();
    drive(clients, cfg.warmup, cfg.duration, move |_, _| {
        let pool = pool.clone();
        async move {
            let event = fixtures::deactivated();
            sqlx::query(
                "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(MODEL)
            .bind(Uuid::new_v4().to_string())
            .bind(1i64)
            .bind(&event.event_type)
            .bind(&event.event_version)
            .bind(&event.payload)
            .bind(fixtures::metadata_json())
            .execute(&pool)
            .await?;
            Ok(1)
        }
    })
    .await
}

/// Deactivate/Activate commands through `EventStore::execute::<Model>`: load, decide, append.
async fn commands(
    pool: &PgPool,
    clients: usize,
    first_model: u64,
    cfg: &Config,
) -> anyhow::Result<Throughput> {
    let store = EventStore::new(pool.clone());
    drive(clients, cfg.warmup, cfg.duration, move |client, k| {
        let store = store.clone();
        async move {
            let model = first_model + client as u64 * MODELS_PER_CLIENT + k % MODELS_PER_CLIENT;
            let command = if (k / MODELS_PER_CLIENT).is_multiple_of(2) {
                ModelCommand::Deactivate
            } else {
                ModelCommand::Activate
            };
            let ctx = CommandContext::new(fixtures::metadata());
            let outcome = store
                .execute::<Model>(&fixtures::model_id(PREFIX, model), command, &(), &ctx)
                .await
                .map_err(|e| anyhow::anyhow!("command on bench model {model} failed: {e}"))?;
            anyhow::ensure!(
                outcome.events.len() == 1,
                "a command on bench model {model} appended {} events",
                outcome.events.len()
            );
            Ok(1)
        }
    })
    .await
}
