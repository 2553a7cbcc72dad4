//! Running projections: election, catch-up, wake-ups, and rebuilds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use inferplane_store::reader::{self, Filter};
use inferplane_store::{Cursor, EventTap, StoredEvent, WakeUps};
use sqlx::{Connection, PgConnection, PgPool, Row};
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
    /// The aggregate types whose events change the read model. The runner hands `apply` only
    /// those; a batch holding none of them writes nothing (the checkpoint follows lazily).
    fn aggregate_types(&self) -> &'static [&'static str];
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

/// Where a runner stands: how far it read, and what its checkpoint row says.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// The last event read (and applied, when it concerned the read model).
    read: Cursor,
    /// The checkpoint row; behind `read` only by events that changed nothing.
    persisted: Cursor,
    /// Events read since `persisted`.
    unpersisted: i64,
}

/// What one batch did.
struct Batch {
    read: usize,
    /// Committed events follow that are not below the horizon yet.
    held_back: bool,
}

/// Applies one batch after `pos.read` into `schema`, moving the checkpoint in the same
/// transaction (fenced on `pos.persisted`). Returns `None` when nothing was there. Fails with
/// [`Fenced`] when another runner moved the checkpoint first.
///
/// The batch is read through the process's [`EventTap`], before any transaction begins (a
/// transaction holding an xid would hold back every reader's horizon for as long as it
/// lasts). A batch with no event of the projection's aggregate types writes nothing: only the
/// in-memory position moves, and the checkpoint follows within [`LAZY_CHECKPOINT`] (reading
/// those events again after a crash is harmless, as they change nothing).
async fn apply_batch<P: Projection + ?Sized>(
    pool: &PgPool,
    tap: &EventTap,
    p: &P,
    schema: &str,
    pos: &mut Position,
    batch: i64,
) -> anyhow::Result<Option<Batch>> {
    let mut conn = pool.acquire().await?;
    let page = tap.read_after_checked(&mut conn, pos.read, batch).await?;
    let Some(last) = page.events.last().map(StoredEvent::cursor) else {
        return Ok(page.held_back.then_some(Batch {
            read: 0,
            held_back: true,
        }));
    };
    let read = page.events.len();
    let types = p.aggregate_types();
    let relevant: Vec<StoredEvent> = page
        .events
        .into_iter()
        .filter(|e| types.contains(&e.aggregate_type.as_str()))
        .collect();
    if relevant.is_empty() {
        pos.read = last;
        pos.unpersisted += read as i64;
        return Ok(Some(Batch {
            read,
            held_back: page.held_back,
        }));
    }
    let mut tx = conn.begin().await?;
    set_search_path(&mut tx, schema).await?;
    p.apply(&mut tx, &relevant).await?;
    move_checkpoint(
        &mut tx,
        p.name(),
        pos.persisted,
        last,
        pos.unpersisted + read as i64,
    )
    .await?;
    tx.commit().await?;
    *pos = Position {
        read: last,
        persisted: last,
        unpersisted: 0,
    };
    Ok(Some(Batch {
        read,
        held_back: page.held_back,
    }))
}

/// Moves the checkpoint from `from` to `to`, counting `seen` events; [`Fenced`] when the row
/// is no longer at `from`.
async fn move_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    from: Cursor,
    to: Cursor,
    seen: i64,
) -> anyhow::Result<()> {
    let moved = sqlx::query(
        "update projection_checkpoints
         set transaction_id = $2::text::xid8, position = $3, events_applied = events_applied + $4,
             updated_at = now()
         where name = $1 and transaction_id = $5::text::xid8 and position = $6",
    )
    .bind(name)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .bind(seen)
    .bind(from.transaction_id.to_string())
    .bind(from.position)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() != 1 {
        return Err(Fenced.into());
    }
    Ok(())
}

/// How long a woken projection waits before reading.
const COALESCE: Duration = Duration::from_millis(10);

/// Longest time the checkpoint stays behind events that changed nothing, once the runner is
/// idle (so the projection's reported lag reaches zero soon after the stream goes quiet).
const LAZY_CHECKPOINT: Duration = Duration::from_millis(100);

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
        let start = load_checkpoint(&self.pool, name).await?;
        let mut pos = Position {
            read: start,
            persisted: start,
            unpersisted: 0,
        };
        let mut persisted_at = std::time::Instant::now();
        loop {
            // Mark the wake-ups seen before reading, so an append during the read wakes us again.
            self.wakeups.borrow_and_update();
            let mut held_back = false;
            loop {
                let before = pos.persisted;
                match apply_batch(
                    &self.pool,
                    self.wakeups.tap(),
                    self.projection.as_ref(),
                    &schema,
                    &mut pos,
                    self.batch_size,
                )
                .await
                {
                    Ok(Some(batch)) => {
                        if pos.persisted != before {
                            persisted_at = std::time::Instant::now();
                        }
                        metrics::counter!("inferplane_projection_events_applied_total", "projection" => name).increment(batch.read as u64);
                        // A batch short of full read everything there was: wait for the next
                        // wake-up (and let what comes gather) rather than chase each append.
                        if batch.held_back || (batch.read as i64) < self.batch_size {
                            held_back = batch.held_back;
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) if e.is::<Fenced>() => {
                        let at = load_checkpoint(&self.pool, name).await?;
                        pos = Position {
                            read: at,
                            persisted: at,
                            unpersisted: 0,
                        };
                    }
                    Err(e) => return Err(e),
                }
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
            if held_back {
                tokio::time::sleep(HELD_BACK_RETRY).await;
                continue;
            }
            // Idle: a checkpoint left behind by events that changed nothing follows shortly.
            let pending = pos.persisted != pos.read;
            if pending && persisted_at.elapsed() >= LAZY_CHECKPOINT {
                match move_checkpoint(
                    &mut *self.pool.acquire().await?,
                    name,
                    pos.persisted,
                    pos.read,
                    pos.unpersisted,
                )
                .await
                {
                    Ok(()) => {}
                    Err(e) if e.is::<Fenced>() => {
                        let at = load_checkpoint(&self.pool, name).await?;
                        pos.read = at;
                    }
                    Err(e) => return Err(e),
                }
                pos.persisted = pos.read;
                pos.unpersisted = 0;
                persisted_at = std::time::Instant::now();
                continue;
            }
            let wait = if pending {
                LAZY_CHECKPOINT.saturating_sub(persisted_at.elapsed())
            } else {
                self.poll_interval
            };
            tokio::select! {
                _ = stopped(shutdown) => return Ok(()),
                _ = self.wakeups.changed() => {
                    // Let a burst of appends gather, so that it is applied in one transaction
                    // rather than one per append (read models may trail by this much).
                    tokio::time::sleep(COALESCE).await;
                }
                _ = tokio::time::sleep(wait) => {
                    if !pending {
                        // Still leading? A lost lock connection means someone else may lead now.
                        sqlx::query("select 1").execute(&mut lock_conn).await.context("lock connection lost")?;
                    }
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
