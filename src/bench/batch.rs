//! Benchmark 2: events per second appended 100 per transaction through `EventStore::append`,
//! against one multi-row INSERT of the same 100 rows per statement.

use std::sync::Arc;

use inferplane_store::{EventStore, NewEvent};
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use super::Config;
use super::fixtures::{self, MODEL};
use super::fresh::FreshDb;
use super::stats::{Row, Throughput, drive, grouped};

const TARGET: f64 = 0.70;

pub async fn run(admin: &PgPool, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let db = FreshDb::create(admin, cfg.batch_clients as u32).await?;
    let result = measure(&db, cfg).await;
    db.drop().await;
    result
}

/// The history of one model: its registration, then updates.
fn history(len: usize) -> Vec<NewEvent> {
    (0..len as u64)
        .map(|rev| {
            if rev == 0 {
                fixtures::registered("batch", 0)
            } else {
                fixtures::updated(0, rev)
            }
        })
        .collect()
}

async fn measure(db: &FreshDb, cfg: &Config) -> anyhow::Result<Vec<Row>> {
    let events = Arc::new(history(cfg.batch_events));
    let (clients, n) = (cfg.batch_clients, cfg.batch_events);
    let raw_pool = db.raw_pool(clients as u32).await?;
    eprintln!("batch: raw INSERT ... VALUES of {n} rows, {clients} clients");
    let values = raw(&raw_pool, events.clone(), Form::Values, cfg);
    let values = fixtures::counted(&raw_pool, values).await?;
    eprintln!("batch: raw INSERT ... SELECT FROM unnest of {n} rows, {clients} clients");
    let unnest = raw(&raw_pool, events.clone(), Form::Unnest, cfg);
    let unnest = fixtures::counted(&raw_pool, unnest).await?;
    raw_pool.close().await;
    eprintln!("batch: EventStore::append, {clients} clients");
    let store = fixtures::counted(&db.pool, store(&db.pool, events, cfg)).await?;
    eprintln!(
        "batch: raw VALUES {} events/s, raw unnest {} events/s",
        grouped(values.rate()),
        grouped(unnest.rate())
    );
    // The baseline is the faster of the two plain-SQL forms.
    let (form, raw) = if unnest.rate() >= values.rate() {
        ("unnest", unnest)
    } else {
        ("VALUES", values)
    };
    let ratio = store.rate() / raw.rate();
    let row = Row::new(
        format!("batch append, {n}/tx, {clients} clients:"),
        format!("store {} events/s", grouped(store.rate())),
    )
    .baseline(
        format!("raw {form} {} events/s", grouped(raw.rate())),
        Some(ratio),
    )
    .target(format!("target >= {TARGET:.2}"), ratio >= TARGET);
    row.print();
    Ok(vec![row])
}

/// The two plain-SQL forms of a multi-row INSERT.
#[derive(Clone, Copy)]
enum Form {
    /// `insert ... values (...), (...), ...`: 7 parameters per row.
    Values,
    /// `insert ... select from unnest($arrays)`: 7 parameters in all.
    Unnest,
}

/// A new aggregate's whole history per statement, in a transaction of its own (autocommit).
async fn raw(
    pool: &PgPool,
    events: Arc<Vec<NewEvent>>,
    form: Form,
    cfg: &Config,
) -> anyhow::Result<Throughput> {
    let pool = pool.clone();
    drive(cfg.batch_clients, cfg.warmup, cfg.duration, move |_, _| {
        let (pool, events) = (pool.clone(), events.clone());
        async move {
            let id = Uuid::new_v4().to_string();
            let metadata = fixtures::metadata_json();
            match form {
                Form::Values => {
                    let mut q = QueryBuilder::new(
                        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) ",
                    );
                    q.push_values(events.iter().enumerate(), |mut b, (i, e)| {
                        b.push_bind(MODEL)
                            .push_bind(id.as_str())
                            .push_bind(i as i64 + 1)
                            .push_bind(e.event_type.as_str())
                            .push_bind(e.event_version.as_str())
                            .push_bind(&e.payload)
                            .push_bind(&metadata);
                    });
                    q.build().execute(&pool).await?;
                }
                Form::Unnest => {
                    let sequences: Vec<i64> = (1..=events.len() as i64).collect();
                    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
                    let versions: Vec<&str> =
                        events.iter().map(|e| e.event_version.as_str()).collect();
                    let payloads: Vec<&serde_json::Value> =
                        events.iter().map(|e| &e.payload).collect();
                    sqlx::query(
                        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                         select $1, $2, s, t, v, p, $7
                         from unnest($3::bigint[], $4::text[], $5::text[], $6::jsonb[]) as e(s, t, v, p)",
                    )
                    .bind(MODEL)
                    .bind(&id)
                    .bind(&sequences)
                    .bind(types)
                    .bind(versions)
                    .bind(payloads)
                    .bind(&metadata)
                    .execute(&pool)
                    .await?;
                }
            }
            Ok(events.len() as u64)
        }
    })
    .await
}

/// The same rows through the store: a transaction, one INSERT (unnest), commit.
async fn store(
    pool: &PgPool,
    events: Arc<Vec<NewEvent>>,
    cfg: &Config,
) -> anyhow::Result<Throughput> {
    let store = EventStore::new(pool.clone());
    drive(cfg.batch_clients, cfg.warmup, cfg.duration, move |_, _| {
        let (store, events) = (store.clone(), events.clone());
        async move {
            let id = Uuid::new_v4().to_string();
            store
                .append(MODEL, &id, 0, &events, &fixtures::metadata())
                .await?;
            Ok(events.len() as u64)
        }
    })
    .await
}
