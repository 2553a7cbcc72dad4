//! Realistic model events and the setup writes that are not themselves measured.

use anyhow::Context;
use inferplane_domain::model::{ModelChanges, ModelEvent, ModelId, ModelRegistered, ModelTask};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::{EventStore, NewEvent};
use sqlx::PgPool;

use super::stats::{Throughput, now_ns};

/// The model aggregate's type in the store.
pub const MODEL: &str = "model";

/// Metadata of one command, as the API would record it.
pub fn metadata() -> EventMetadata {
    let mut m = EventMetadata::new_command(Actor::operator("admin"));
    m.request_id = Some(uuid::Uuid::new_v4().to_string());
    m
}

pub fn metadata_json() -> serde_json::Value {
    serde_json::to_value(metadata()).unwrap_or_default()
}

fn repo(prefix: &str, i: u64) -> String {
    format!("bench-{prefix}/model-{i:07}")
}

/// The aggregate id of bench model `i` of a benchmark.
pub fn model_id(prefix: &str, i: u64) -> String {
    ModelId::for_repo(&repo(prefix, i)).to_string()
}

fn new_event(event: &ModelEvent) -> NewEvent {
    let event_type = match event {
        ModelEvent::ModelRegistered(_) => "ModelRegistered",
        ModelEvent::ModelUpdated(_) => "ModelUpdated",
        ModelEvent::ModelActivated => "ModelActivated",
        ModelEvent::ModelDeactivated => "ModelDeactivated",
    };
    NewEvent {
        event_type: event_type.into(),
        event_version: "1".into(),
        payload: serde_json::to_value(event).unwrap_or_default(),
    }
}

/// The registration of bench model `i`, active.
pub fn registered(prefix: &str, i: u64) -> NewEvent {
    new_event(&ModelEvent::ModelRegistered(ModelRegistered {
        hf_repo_id: repo(prefix, i),
        display_name: format!("Bench model {i} Instruct"),
        parameter_count: 7_000_000_000 + i,
        required_vram_gb: 24,
        context_length: 32_768,
        data_volume_gb: 40,
        data_volume_computed: true,
        task: ModelTask::Generate,
        active: true,
    }))
}

/// Update number `rev` of bench model `i`: a new display name and context length.
pub fn updated(i: u64, rev: u64) -> NewEvent {
    new_event(&ModelEvent::ModelUpdated(ModelChanges {
        display_name: Some(format!("Bench model {i} Instruct, revision {rev}")),
        context_length: Some(if rev.is_multiple_of(2) {
            32_768
        } else {
            65_536
        }),
        ..ModelChanges::default()
    }))
}

/// The payload of a deactivation, for raw inserts shaped like the domain's.
pub fn deactivated() -> NewEvent {
    new_event(&ModelEvent::ModelDeactivated)
}

/// Setup only: writes model events of many aggregates, `(aggregate id, sequence, event)`, in
/// one transaction with one INSERT.
pub async fn insert_rows(pool: &PgPool, rows: &[(String, i64, NewEvent)]) -> anyhow::Result<()> {
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         select $1, a, s, t, v, p, $7
         from unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[]) as e(a, s, t, v, p)",
    )
    .bind(MODEL)
    .bind(rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.event_type.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.event_version.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| &r.2.payload).collect::<Vec<_>>())
    .bind(metadata_json())
    .execute(pool)
    .await
    .context("writing setup events")?;
    Ok(())
}

/// Setup only: registers bench models `0..count` of `prefix`, 1,000 per transaction.
pub async fn register_models(pool: &PgPool, prefix: &str, count: u64) -> anyhow::Result<()> {
    let mut next = 0;
    while next < count {
        let end = (next + 1_000).min(count);
        let rows: Vec<_> = (next..end)
            .map(|i| (model_id(prefix, i), 1, registered(prefix, i)))
            .collect();
        insert_rows(pool, &rows).await?;
        next = end;
    }
    Ok(())
}

/// Registers bench model `i` through the store, one event in one transaction. Returns its
/// position and the wall-clock time at which the commit was acknowledged.
pub async fn append_registration(
    store: &EventStore,
    prefix: &str,
    i: u64,
) -> anyhow::Result<(i64, i64)> {
    let id = model_id(prefix, i);
    let position = store
        .append(MODEL, &id, 0, &[registered(prefix, i)], &metadata())
        .await?
        .context("the append returned no position")?;
    Ok((position, now_ns()))
}

pub async fn count_events(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from events")
        .fetch_one(pool)
        .await?)
}

/// Runs `load` and checks that the table grew by exactly the events it reported.
pub async fn counted(
    pool: &PgPool,
    load: impl Future<Output = anyhow::Result<Throughput>>,
) -> anyhow::Result<Throughput> {
    let before = count_events(pool).await?;
    let t = load.await?;
    let added = count_events(pool).await? - before;
    anyhow::ensure!(
        added == t.total as i64,
        "{} events reported but {added} written",
        t.total
    );
    Ok(t)
}
