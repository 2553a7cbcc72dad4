//! The SQL of the worker routes: credentials looked up in the event log, telemetry in
//! `worker_telemetry` (see `migrations/20261130000002_workers.sql`).

use std::time::Duration;

use inferplane_worker::agent::protocol::Heartbeat;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// The events that decide whether a worker token is valid: the latest of them must be the
/// registration (a reinstall, a termination or a failure revokes it).
const CREDENTIAL_EVENTS: [&str; 4] = [
    "WorkerRegistered",
    "ReinstallRequested",
    "TerminationRequested",
    "InstanceFailed",
];

/// What a heartbeat is checked against.
pub struct Credential {
    /// SHA-256 (hex) of the valid worker token; `None` when no token is valid.
    pub token_hash: Option<String>,
    pub install_attempt: i32,
    pub public_ip: Option<String>,
    /// The instance's status in the read model (may lag the store by a moment).
    pub instance_status: Option<String>,
}

/// The instance's current worker credential, from the event log itself (one indexed look-up
/// per heartbeat, no copy of the token hash to keep in sync).
pub async fn credential(pool: &PgPool, id: Uuid) -> sqlx::Result<Credential> {
    let row: (Option<serde_json::Value>, Option<String>, Option<String>) = sqlx::query_as(
        "select
            (select payload from events
              where aggregate_type = 'instance' and aggregate_id = $1 and event_type = any($2)
              order by sequence desc limit 1),
            (select payload->'ServerStarted'->>'public_ip' from events
              where aggregate_type = 'instance' and aggregate_id = $1
                and event_type = 'ServerStarted'
              order by sequence desc limit 1),
            (select status from rm_instances.instances where id = $3)",
    )
    .bind(id.to_string())
    .bind(&CREDENTIAL_EVENTS[..])
    .bind(id)
    .fetch_one(pool)
    .await?;
    let registered = row.0.as_ref().and_then(|p| p.get("WorkerRegistered"));
    Ok(Credential {
        token_hash: registered
            .and_then(|r| r["token_hash"].as_str())
            .map(str::to_string),
        install_attempt: registered.and_then(|r| r["attempt"].as_i64()).unwrap_or(1) as i32,
        public_ip: row.1,
        instance_status: row.2,
    })
}

/// The row as it was before a heartbeat overwrote it.
pub struct Previous {
    pub status: String,
    pub models: Vec<String>,
    pub age: Duration,
}

/// Writes the heartbeat; returns the row as it was before (`None` for the first heartbeat).
pub async fn record(
    pool: &PgPool,
    hb: &Heartbeat,
    engine_url: &str,
    install_attempt: i32,
) -> sqlx::Result<Option<Previous>> {
    let gpus = serde_json::to_value(&hb.gpus).unwrap_or_default();
    let system = serde_json::to_value(&hb.system).unwrap_or_default();
    let agent_version: String = hb.agent_version.chars().take(64).collect();
    let kv = hb.kv_cache_usage.filter(|v| v.is_finite());
    // Data-modifying CTEs run to completion; `prev` sees the row as it was before.
    let row: Option<(String, Vec<String>, f64)> = sqlx::query_as(
        "with prev as (
            select status, models, extract(epoch from now() - last_heartbeat_at)::float8 as age
              from worker_telemetry where instance_id = $1
         ), up as (
            insert into worker_telemetry (instance_id, engine_url, models, status, waiting,
                running, kv_cache_usage, gpus, system, agent_version, install_attempt,
                last_heartbeat_at, heartbeats)
            values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), 1)
            on conflict (instance_id) do update set
                engine_url = excluded.engine_url, models = excluded.models,
                status = excluded.status, waiting = excluded.waiting,
                running = excluded.running, kv_cache_usage = excluded.kv_cache_usage,
                gpus = excluded.gpus, system = excluded.system,
                agent_version = excluded.agent_version,
                install_attempt = excluded.install_attempt,
                registered_at = case when worker_telemetry.install_attempt = excluded.install_attempt
                                     then worker_telemetry.registered_at else now() end,
                last_heartbeat_at = now(),
                heartbeats = worker_telemetry.heartbeats + 1
            returning 1
         )
         select status, models, age from prev",
    )
    .bind(hb.instance_id)
    .bind(engine_url)
    .bind(&hb.models)
    .bind(hb.status.as_str())
    .bind(i32::try_from(hb.waiting).unwrap_or(i32::MAX))
    .bind(i32::try_from(hb.running).unwrap_or(i32::MAX))
    .bind(kv)
    .bind(gpus)
    .bind(system)
    .bind(agent_version)
    .bind(install_attempt)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(status, models, age)| Previous {
        status,
        models,
        age: Duration::from_secs_f64(age.max(0.0)),
    }))
}

/// One worker as the console sees it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct WorkerRow {
    pub instance_id: Uuid,
    pub instance_status: Option<String>,
    pub model: Option<String>,
    pub engine_url: String,
    pub status: String,
    pub models: Vec<String>,
    pub waiting: i32,
    pub running: i32,
    pub kv_cache_usage: Option<f64>,
    pub gpus: serde_json::Value,
    pub system: serde_json::Value,
    pub agent_version: String,
    pub install_attempt: i32,
    pub heartbeats: i64,
    pub registered_at: chrono::DateTime<chrono::Utc>,
    pub last_heartbeat_at: chrono::DateTime<chrono::Utc>,
    /// Milliseconds since the last heartbeat.
    pub age_ms: i64,
    /// The last heartbeat is within the stale window.
    pub fresh: bool,
}

const SELECT: &str = "select t.instance_id, i.status as instance_status, i.model_repo as model,
        t.engine_url, t.status, t.models, t.waiting, t.running, t.kv_cache_usage, t.gpus,
        t.system, t.agent_version, t.install_attempt, t.heartbeats, t.registered_at,
        t.last_heartbeat_at,
        (extract(epoch from now() - t.last_heartbeat_at) * 1000)::int8 as age_ms,
        t.last_heartbeat_at >= now() - make_interval(secs => $1) as fresh
   from worker_telemetry t left join rm_instances.instances i on i.id = t.instance_id";

pub async fn list(pool: &PgPool, stale_after: Duration) -> sqlx::Result<Vec<WorkerRow>> {
    sqlx::query_as(&format!("{SELECT} order by t.instance_id"))
        .bind(stale_after.as_secs_f64())
        .fetch_all(pool)
        .await
}

pub async fn get(
    pool: &PgPool,
    stale_after: Duration,
    id: Uuid,
) -> sqlx::Result<Option<WorkerRow>> {
    sqlx::query_as(&format!("{SELECT} where t.instance_id = $2"))
        .bind(stale_after.as_secs_f64())
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Workers of instances still in service, by freshness: `(fresh, stale)`.
pub async fn freshness(pool: &PgPool, stale_after: Duration) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "select count(*) filter (where t.last_heartbeat_at >= now() - make_interval(secs => $1)),
                count(*) filter (where t.last_heartbeat_at < now() - make_interval(secs => $1))
           from worker_telemetry t join rm_instances.instances i on i.id = t.instance_id
          where i.status in ('installing', 'starting', 'ready', 'unavailable', 'draining')",
    )
    .bind(stale_after.as_secs_f64())
    .fetch_one(pool)
    .await
}
