//! Running projections: election, catch-up, wake-ups, and rebuilds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use inferplane_store::reader::{self, Filter};
use inferplane_store::{Cursor, StoredEvent, WakeUps};
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::watch;

/// A read model built from the global stream.
#[async_trait::async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the checkpoint's key and the schema's suffix.
    fn name(&self) -> &'static str;
    /// Bumped whenever `schema` or `apply` change meaning; a new version rebuilds the read
    /// model from the first event on start.
    fn version(&self) -> i32;
    /// DDL of the read model with unqualified names (run with the schema as `search_path`).
    fn schema(&self) -> &'static str;
    /// Applies a batch of events, in stream order. `search_path` is the projection's schema.
    /// Must only write through `conn`: the runner commits it with the checkpoint.
    async fn apply(&self, conn: &mut PgConnection, events: &[StoredEvent]) -> anyhow::Result<()>;
}

/// The schema that the API reads for a projection.
pub fn live_schema(name: &str) -> String {
    format!("rm_{name}")
}

fn next_schema(name: &str) -> String {
    format!("rm_{name}__next")
}

fn old_schema(name: &str) -> String {
    format!("rm_{name}__old")
}

/// Creates the projection's schema and checkpoint row if they do not exist yet.
/// Returns the version recorded in the checkpoint (which may differ from the code's).
pub async fn ensure_installed<P: Projection + ?Sized>(pool: &PgPool, p: &P) -> anyhow::Result<i32> {
    let mut tx = pool.begin().await?;
    // Serialise installers of the same projection across processes.
    sqlx::query("select pg_advisory_xact_lock(hashtext('install:' || $1))")
        .bind(p.name())
        .execute(&mut *tx)
        .await?;
    let existing: Option<i32> =
        sqlx::query_scalar("select version from projection_checkpoints where name = $1")
            .bind(p.name())
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(v) = existing {
        tx.commit().await?;
        return Ok(v);
    }
    let schema = live_schema(p.name());
    exec(&mut tx, format!("drop schema if exists {schema} cascade")).await?;
    create_schema(&mut tx, &schema, p).await?;
    sqlx::query("insert into projection_checkpoints (name, version) values ($1, $2)")
        .bind(p.name())
        .bind(p.version())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(p.version())
}

async fn create_schema<P: Projection + ?Sized>(
    conn: &mut PgConnection,
    schema: &str,
    p: &P,
) -> anyhow::Result<()> {
    exec(&mut *conn, format!("create schema {schema}")).await?;
    set_search_path(conn, schema).await?;
    // A plain string runs with the simple protocol, which allows several statements.
    sqlx::Executor::execute(&mut *conn, p.schema())
        .await
        .with_context(|| format!("creating the read model of {}", p.name()))?;
    Ok(())
}

/// Runs one owned statement (DDL built from trusted schema names).
async fn exec(conn: &mut PgConnection, sql: String) -> anyhow::Result<()> {
    sqlx::Executor::execute(conn, sql.as_str()).await?;
    Ok(())
}

async fn set_search_path(conn: &mut PgConnection, schema: &str) -> anyhow::Result<()> {
    sqlx::query("select set_config('search_path', $1, true)")
        .bind(format!("{schema}, public"))
        .execute(conn)
        .await?;
    Ok(())
}

async fn load_checkpoint(pool: &PgPool, name: &str) -> anyhow::Result<Cursor> {
    let row = sqlx::query(
        "select transaction_id::text::bigint as txid, position from projection_checkpoints where name = $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await?;
    Ok(Cursor {
        transaction_id: row.try_get("txid")?,
        position: row.try_get("position")?,
    })
}

/// Applies one batch after `cursor` into `schema`, moving the checkpoint from `cursor` in the
/// same transaction. Returns the new cursor and the number of events, or `None` when nothing
/// was there. Fails with [`Fenced`] when another runner moved the checkpoint first.
async fn apply_batch<P: Projection + ?Sized>(
    pool: &PgPool,
    p: &P,
    schema: &str,
    cursor: Cursor,
    batch: i64,
) -> anyhow::Result<Option<(Cursor, usize)>> {
    let mut tx = pool.begin().await?;
    // Read before writing: the transaction has no xid yet, so it does not hold back its own
    // horizon.
    let events = reader::read_after(&mut tx, cursor, &Filter::default(), batch).await?;
    let Some(last) = events.last().map(StoredEvent::cursor) else {
        return Ok(None);
    };
    set_search_path(&mut tx, schema).await?;
    p.apply(&mut tx, &events).await?;
    let moved = sqlx::query(
        "update projection_checkpoints
         set transaction_id = $2::text::xid8, position = $3, events_applied = events_applied + $4,
             updated_at = now()
         where name = $1 and transaction_id = $5::text::xid8 and position = $6",
    )
    .bind(p.name())
    .bind(last.transaction_id.to_string())
    .bind(last.position)
    .bind(events.len() as i64)
    .bind(cursor.transaction_id.to_string())
    .bind(cursor.position)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() != 1 {
        tx.rollback().await?;
        return Err(Fenced.into());
    }
    tx.commit().await?;
    Ok(Some((last, events.len())))
}

/// Another runner (or a rebuild) moved the checkpoint: this runner's batch was rolled back.
#[derive(Debug, thiserror::Error)]
#[error("the checkpoint was moved by another runner")]
pub struct Fenced;

/// Resolves once `shutdown` is true (or its sender is gone), whether or not the change was
/// already seen.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// How soon to look again when committed events wait behind an older open transaction.
const HELD_BACK_RETRY: Duration = Duration::from_millis(10);

/// Keeps one projection current in this process, when this process wins its election.
pub struct ProjectionRunner {
    pub projection: Arc<dyn Projection>,
    pub pool: PgPool,
    pub wakeups: WakeUps,
    /// Fallback when no notification arrives (and the standby's retry interval).
    pub poll_interval: Duration,
    pub batch_size: i64,
}

impl ProjectionRunner {
    /// Runs until `shutdown` turns true. Only the process holding the projection's advisory
    /// lock applies events; the others wait as standbys and take over if it goes away.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.projection.name();
        while !*shutdown.borrow() {
            match self.lead(&mut shutdown).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(
                        projection = name,
                        error = format!("{e:#}"),
                        "projection runner failed; retrying"
                    );
                    metrics::gauge!("inferplane_projection_leader", "projection" => name).set(0.0);
                }
            }
            tokio::select! {
                _ = stopped(&mut shutdown) => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    async fn lead(&mut self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let name = self.projection.name();
        // The session lock lives on a connection of its own, held for as long as we lead.
        let mut lock_conn = self.pool.acquire().await?.detach();
        let won: bool =
            sqlx::query_scalar("select pg_try_advisory_lock(hashtext('projection:' || $1))")
                .bind(name)
                .fetch_one(&mut lock_conn)
                .await?;
        if !won {
            return Ok(());
        }
        tracing::info!(projection = name, "leading projection");
        metrics::gauge!("inferplane_projection_leader", "projection" => name).set(1.0);
        let recorded = ensure_installed(&self.pool, self.projection.as_ref()).await?;
        if recorded > self.projection.version() {
            // A newer binary built this read model: an older one (still running during a
            // rolling upgrade) must neither rebuild it back nor write into it.
            tracing::warn!(
                projection = name,
                recorded,
                code = self.projection.version(),
                "read model built by a newer version; not leading it"
            );
            metrics::gauge!("inferplane_projection_leader", "projection" => name).set(0.0);
            // Let the newer version lead, and look again only every 30 s.
            drop(lock_conn);
            tokio::select! {
                _ = stopped(shutdown) => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
            return Ok(());
        }
        if recorded < self.projection.version() {
            tracing::info!(
                projection = name,
                from = recorded,
                to = self.projection.version(),
                "new projection version: rebuilding"
            );
            let projection = self.projection.clone();
            rebuild_logged(self.pool.clone(), projection).await?;
        }
        let schema = live_schema(name);
        let mut cursor = load_checkpoint(&self.pool, name).await?;
        loop {
            // Mark the wake-ups seen before reading, so an append during the read wakes us again.
            self.wakeups.borrow_and_update();
            loop {
                match apply_batch(
                    &self.pool,
                    self.projection.as_ref(),
                    &schema,
                    cursor,
                    self.batch_size,
                )
                .await
                {
                    Ok(Some((next, n))) => {
                        cursor = next;
                        metrics::counter!("inferplane_projection_events_applied_total", "projection" => name).increment(n as u64);
                    }
                    Ok(None) => break,
                    Err(e) if e.is::<Fenced>() => {
                        cursor = load_checkpoint(&self.pool, name).await?;
                    }
                    Err(e) => return Err(e),
                }
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
            if reader::held_back(&mut *self.pool.acquire().await?, cursor).await? {
                tokio::time::sleep(HELD_BACK_RETRY).await;
                continue;
            }
            tokio::select! {
                _ = stopped(shutdown) => return Ok(()),
                _ = self.wakeups.changed() => {}
                _ = tokio::time::sleep(self.poll_interval) => {
                    // Still leading? A lost lock connection means someone else may lead now.
                    sqlx::query("select 1").execute(&mut lock_conn).await.context("lock connection lost")?;
                }
            }
        }
    }
}

/// Rebuilds with progress in the log; owns its arguments so the future is `Send` for any
/// caller (borrowed closures here trip a known limitation of auto-trait inference).
fn rebuild_logged(
    pool: PgPool,
    projection: Arc<dyn Projection>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<u64>> + Send>> {
    Box::pin(async move {
        let name = projection.name();
        let log = move |p: RebuildProgress| {
            tracing::info!(
                projection = name,
                applied = p.applied,
                total = p.total,
                "rebuilding"
            );
        };
        rebuild(&pool, projection.as_ref(), 5_000, &log).await
    })
}

/// How far a rebuild got.
#[derive(Debug, Clone, Copy)]
pub struct RebuildProgress {
    pub applied: u64,
    /// Events in the store when the rebuild started (it also applies later ones).
    pub total: u64,
}

/// Rebuilds a projection from the first event into a fresh schema while the live one keeps
/// serving, then swaps them in one short transaction that fences the live runner.
pub async fn rebuild(
    pool: &PgPool,
    p: &dyn Projection,
    batch: i64,
    progress: &(dyn Fn(RebuildProgress) + Send + Sync),
) -> anyhow::Result<u64> {
    ensure_installed(pool, p).await?;
    let (live, next, old) = (
        live_schema(p.name()),
        next_schema(p.name()),
        old_schema(p.name()),
    );
    let mut tx = pool.begin().await?;
    let total: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&mut *tx)
        .await?;
    exec(&mut tx, format!("drop schema if exists {next} cascade")).await?;
    create_schema(&mut tx, &next, p).await?;
    tx.commit().await?;

    let mut cursor = Cursor::START;
    let mut applied = 0u64;
    loop {
        let mut tx = pool.begin().await?;
        let events = reader::read_after(&mut tx, cursor, &Filter::default(), batch).await?;
        let Some(last) = events.last().map(StoredEvent::cursor) else {
            break;
        };
        set_search_path(&mut tx, &next).await?;
        p.apply(&mut tx, &events).await?;
        tx.commit().await?;
        cursor = last;
        applied += events.len() as u64;
        progress(RebuildProgress {
            applied,
            total: total as u64,
        });
    }

    // The swap: hold the checkpoint row so the live runner cannot commit a batch meanwhile,
    // apply what arrived since, then exchange the schemas.
    let mut tx = pool.begin().await?;
    sqlx::query("select 1 from projection_checkpoints where name = $1 for update")
        .bind(p.name())
        .execute(&mut *tx)
        .await?;
    loop {
        let events = reader::read_after(&mut tx, cursor, &Filter::default(), batch).await?;
        let Some(last) = events.last().map(StoredEvent::cursor) else {
            break;
        };
        set_search_path(&mut tx, &next).await?;
        p.apply(&mut tx, &events).await?;
        cursor = last;
        applied += events.len() as u64;
    }
    exec(&mut tx, format!("drop schema if exists {old} cascade")).await?;
    exec(&mut tx, format!("alter schema {live} rename to {old}")).await?;
    exec(&mut tx, format!("alter schema {next} rename to {live}")).await?;
    sqlx::query(
        "update projection_checkpoints
         set version = $2, transaction_id = $3::text::xid8, position = $4, events_applied = $5,
             updated_at = now()
         where name = $1",
    )
    .bind(p.name())
    .bind(p.version())
    .bind(cursor.transaction_id.to_string())
    .bind(cursor.position)
    .bind(applied as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    progress(RebuildProgress {
        applied,
        total: total as u64,
    });
    // A live runner may still hold locks on the old tables until its fenced batch rolls back.
    let mut tx = pool.begin().await?;
    exec(&mut tx, format!("drop schema if exists {old} cascade")).await?;
    tx.commit().await?;
    Ok(applied)
}
