//! The OpenAI-compatible gateway: `/v1` for API clients.
//!
//! - [`keys`]: the in-memory key table (no database read to check a key).
//! - [`directory`]: which workers serve which model, their load, and the choice of one.
//! - [`limits`]: per-key rate limits and monthly token budgets.
//! - [`meter`]: usage records, buffered and appended in batches.
//! - [`proxy`]: the `/v1` handlers: authentication, validation, routing with failover,
//!   streaming pass-through, usage.
//!
//! The gateway's tables follow the event stream: [`Gateway::load`] reads every relevant event
//! up to a cursor, then the process's live stream hub hands it each new batch
//! ([`Gateway::apply`]), so a revocation reaches every gateway process within milliseconds of
//! its commit.

pub mod directory;
pub mod error;
pub mod keys;
pub mod limits;
pub mod meter;
pub mod proxy;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use inferplane_domain::api_key::ApiKeyEvent;
use inferplane_domain::instance::InstanceEvent;
use inferplane_store::{Cursor, EventStore, StoredEvent};
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use uuid::Uuid;

pub use directory::Directory;
pub use error::OpenAiError;
pub use keys::KeyTable;
pub use meter::Meter;

/// Checks a presented operator token (the console uses it on `/v1`).
pub type OperatorCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Knobs of the gateway; defaults match the flags' documented defaults.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Largest request body on `/v1`.
    pub body_limit_bytes: usize,
    /// Workers tried for one request before giving up (only while nothing was sent back).
    pub max_attempts: u32,
    /// How long a failing worker is skipped.
    pub cooldown: Duration,
    /// Connecting to a worker.
    pub connect_timeout: Duration,
    /// Until the worker's answer starts (headers), and between two chunks of a stream.
    pub upstream_timeout: Duration,
    /// Port of the engine on each worker.
    pub engine_port: u16,
    /// Header whose value pins a session to one worker.
    pub session_header: HeaderName,
    /// Usage records are appended at least this often...
    pub flush_interval: Duration,
    /// ...or as soon as this many are waiting.
    pub flush_records: usize,
    /// How often worker telemetry (queue depth) and key budgets are re-read.
    pub refresh_interval: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 8 * 1024 * 1024,
            max_attempts: 3,
            cooldown: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            upstream_timeout: Duration::from_secs(300),
            engine_port: 8000,
            session_header: HeaderName::from_static("x-session-id"),
            flush_interval: Duration::from_secs(1),
            flush_records: 1000,
            refresh_interval: Duration::from_millis(500),
        }
    }
}

/// One gateway process's state.
pub struct Gateway {
    pub settings: GatewaySettings,
    pub keys: KeyTable,
    pub directory: Directory,
    pub limiter: limits::Limiter,
    pub meter: Meter,
    pub(crate) client: reqwest::Client,
    pub(crate) operator: Option<OperatorCheck>,
    pool: PgPool,
}

/// Aggregate types the gateway follows.
const FOLLOWED: &[&str] = &["api_key", "instance", "model"];

impl Gateway {
    pub fn new(
        pool: PgPool,
        settings: GatewaySettings,
        operator: Option<OperatorCheck>,
    ) -> anyhow::Result<Arc<Self>> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1024)
            .pool_idle_timeout(Duration::from_secs(60))
            .http1_only()
            .build()?;
        Ok(Arc::new(Self {
            directory: Directory::new(settings.engine_port),
            meter: Meter::new(settings.flush_records),
            keys: KeyTable::default(),
            limiter: limits::Limiter::default(),
            client,
            operator,
            pool,
            settings,
        }))
    }

    /// Whether the gateway cares about this event at all.
    pub fn follows(e: &StoredEvent) -> bool {
        match e.aggregate_type.as_str() {
            "api_key" => true,
            "instance" => directory::ROUTING_EVENTS.contains(&e.event_type.as_str()),
            "model" => e.event_type == "ModelRegistered",
            _ => false,
        }
    }

    /// Applies one event of the global stream (others are ignored).
    pub fn apply(&self, e: &StoredEvent) {
        if !Self::follows(e) {
            return;
        }
        let Ok(id) = e.aggregate_id.parse::<Uuid>() else {
            return;
        };
        match e.aggregate_type.as_str() {
            "api_key" => match e.decode::<ApiKeyEvent>() {
                Ok(event) => self.keys.apply(id, e.sequence, event),
                Err(err) => {
                    tracing::error!(position = e.position, error = %err, "undecodable API key event")
                }
            },
            "instance" => match e.decode::<InstanceEvent>() {
                Ok(event) => self.directory.apply_instance(id, &event),
                Err(err) => {
                    tracing::error!(position = e.position, error = %err, "undecodable instance event")
                }
            },
            "model" => {
                if let Some(repo) = e
                    .payload
                    .get("ModelRegistered")
                    .and_then(|r| r.get("hf_repo_id"))
                    .and_then(|r| r.as_str())
                {
                    self.directory.add_catalog_model(repo);
                }
            }
            _ => {}
        }
    }

    /// Rebuilds the tables from every relevant event up to `upto` (everything up to a cursor
    /// the live hub has published is committed).
    pub async fn load(&self, upto: Cursor) -> anyhow::Result<u64> {
        self.keys.clear();
        self.directory.clear();
        let types: Vec<&str> = directory::ROUTING_EVENTS
            .iter()
            .copied()
            .chain(["ModelRegistered"])
            .collect();
        let mut after = Cursor::START;
        let mut n = 0u64;
        loop {
            let rows = sqlx::query(
                "select position, transaction_id::text::bigint as txid, aggregate_type, aggregate_id,
                        sequence, event_type, event_version, payload, metadata, recorded_at
                 from events
                 where (transaction_id::text::bigint, position) > ($1, $2)
                   and (transaction_id::text::bigint, position) <= ($3, $4)
                   and aggregate_type = any($5)
                   and (aggregate_type = 'api_key' or event_type = any($6))
                 order by transaction_id, position
                 limit 5000",
            )
            .bind(after.transaction_id)
            .bind(after.position)
            .bind(upto.transaction_id)
            .bind(upto.position)
            .bind(FOLLOWED)
            .bind(&types)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(n);
            }
            for r in &rows {
                let e = inferplane_store::reader::decode(r)?;
                after = e.cursor();
                self.apply(&e);
                n += 1;
            }
        }
    }

    /// Re-reads worker queue depths (reported by worker agents) and this month's token totals
    /// per key (for budgets).
    pub async fn refresh(&self) -> anyhow::Result<()> {
        match sqlx::query("select instance_id, waiting from worker_telemetry")
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => {
                for r in rows {
                    let id: Uuid = r.try_get("instance_id")?;
                    let waiting: i32 = r.try_get("waiting")?;
                    self.directory.set_waiting(id, waiting.max(0) as u32);
                }
            }
            // No worker agent has ever reported on this database.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {}
            Err(e) => return Err(e.into()),
        }
        let rows = sqlx::query(
            "select key_id, sum(prompt_tokens + completion_tokens)::bigint as tokens
             from rm_usage.hourly
             where bucket_start >= date_trunc('month', now() at time zone 'utc') at time zone 'utc'
             group by key_id",
        )
        .fetch_all(&self.pool)
        .await;
        match rows {
            Ok(rows) => {
                let totals: HashMap<Uuid, i64> = rows
                    .iter()
                    .filter_map(|r| Some((r.try_get("key_id").ok()?, r.try_get("tokens").ok()?)))
                    .collect();
                self.limiter.set_month_totals(&totals);
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Runs the background loops (usage flusher, refresh) until `stop`; the flusher drains the
    /// usage buffer before it returns.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let flusher = tokio::spawn(self.meter.clone().run(
            EventStore::new(self.pool.clone()),
            self.settings.flush_interval,
            stop.clone(),
        ));
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "gateway refresh failed; retrying");
            }
            self.publish_worker_metrics();
            tokio::select! {
                _ = tokio::time::sleep(self.settings.refresh_interval) => {}
                _ = stop.changed() => break,
            }
        }
        let _ = flusher.await;
    }

    fn publish_worker_metrics(&self) {
        for (id, _model, load, cooling) in self.directory.snapshot() {
            let instance = id.to_string();
            metrics::gauge!("inferplane_gateway_worker_load", "instance" => instance.clone())
                .set(f64::from(load));
            metrics::gauge!("inferplane_gateway_worker_cooling_down", "instance" => instance)
                .set(if cooling { 1.0 } else { 0.0 });
        }
    }
}
