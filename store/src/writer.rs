//! Group commit of appends: the appends of a store that arrive while one is being written
//! are written together, in one statement and one transaction.
//!
//! Every append transaction notifies (`events_notify`), and PostgreSQL serialises notifying
//! commits, WAL flush included: with twenty concurrent writers a one-row append took 11 ms
//! instead of 3.5 ms without the trigger
//! (docs/decisions/0017-group-commit-of-appends.md). One writer task per
//! [`EventStore`](crate::EventStore) (its clones share it) takes what has queued while its
//! previous statement ran and writes it as one multi-row INSERT: one commit, one flush and one notification for the whole group. Alone, an append is
//! written at once, exactly as before; under load, a burst of N appends costs one commit
//! instead of N queued ones.
//!
//! An append of many events (a bulk import, a usage batch) is written by its caller beside
//! the group: it amortises its own commit, and several of them keep running in parallel.
//!
//! Each append in a group keeps its own optimistic concurrency: a group never holds two appends
//! to the same aggregate (the second waits for the next group), and a group that fails (a
//! sequence already taken by another writer, a constraint) wrote nothing, so its halves are
//! written again the same way until the conflict reaches the append that caused it alone.
//! A failure that leaves the outcome unknown (the connection, a timeout) is reported to every
//! append of the group and never retried, so an append is never written twice nor reported
//! as a conflict with itself.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::commands::{AppendError, NewEvent, append_in};

/// Most appends written by one statement, unless [`set_append_group_max`] says otherwise.
///
/// PostgreSQL gives no reason for a bound (one statement, no subtransactions); a bound keeps
/// one statement short. Smaller groups make each event's statement shorter but make the
/// appends wait longer in the queue before their events exist: with 200 instances at once on
/// 2 CPUs (docs/benchmarks.md, lifecycle), 4 gives outcomes a queue wait of p50 63 ms and
/// all ready in 1.8 s, 64 gives 7.7 ms and 0.9 s.
pub const DEFAULT_APPEND_GROUP_MAX: usize = 64;

type QueueObserver = Box<dyn Fn(std::time::Duration) + Send + Sync>;

static QUEUE_OBSERVER: OnceLock<QueueObserver> = OnceLock::new();

/// Calls `observe` with the time each grouped append waited for the writer before its
/// statement began (what `inferplane_append_queue_seconds` records), for benchmarks. The
/// first observer set for the process is kept.
pub fn observe_append_queue(observe: impl Fn(std::time::Duration) + Send + Sync + 'static) {
    let _ = QUEUE_OBSERVER.set(Box::new(observe));
}

/// An append of at least this many events is written by its caller, beside the group: it
/// already amortises its commit, and bulk appends from several callers keep running in
/// parallel instead of queuing behind one writer.
const ALONE_FROM_EVENTS: usize = 32;

static GROUP_MAX: AtomicUsize = AtomicUsize::new(DEFAULT_APPEND_GROUP_MAX);

/// Sets the most appends one statement writes, for every store of this process (the
/// `--append-group-max` knob). 1 turns grouping off: each append is then written by its own
/// caller, concurrently with the others, as a single statement.
pub fn set_append_group_max(max: usize) {
    GROUP_MAX.store(max.max(1), Ordering::Relaxed);
}

fn group_max() -> usize {
    GROUP_MAX.load(Ordering::Relaxed)
}

/// What an append left: the global position of its last event and when it was recorded.
pub(crate) type Appended = (Option<i64>, Option<DateTime<Utc>>);

struct Request {
    aggregate_type: String,
    aggregate_id: String,
    version: i64,
    events: Vec<NewEvent>,
    metadata: serde_json::Value,
    queued: Instant,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

impl Request {
    fn new(
        aggregate_type: &str,
        aggregate_id: &str,
        version: i64,
        events: Vec<NewEvent>,
        metadata: serde_json::Value,
    ) -> (Self, oneshot::Receiver<Result<Appended, AppendError>>) {
        let (reply, answer) = oneshot::channel();
        let request = Self {
            aggregate_type: aggregate_type.to_string(),
            aggregate_id: aggregate_id.to_string(),
            version,
            events,
            metadata,
            queued: Instant::now(),
            reply,
        };
        (request, answer)
    }
}

/// A store's writer (shared by its clones): a queue in front of one task, started with the
/// first append.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    pool: PgPool,
    queue: Arc<OnceLock<mpsc::UnboundedSender<Request>>>,
}

impl GroupWriter {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            queue: Arc::new(OnceLock::new()),
        }
    }

    /// Appends `events` to one aggregate expected at `version`, with the appends queued beside
    /// it. Resolves once the events are committed (or refused).
    pub(crate) async fn append(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        version: i64,
        events: Cow<'_, [NewEvent]>,
        metadata: serde_json::Value,
    ) -> Result<Appended, AppendError> {
        if events.is_empty() {
            return Ok((None, None));
        }
        if group_max() == 1 || events.len() >= ALONE_FROM_EVENTS {
            // Written by the caller, from the caller's events (a bulk append is not copied).
            let mut conn = self.pool.acquire().await.map_err(AppendError::Db)?;
            return append_in(
                &mut conn,
                aggregate_type,
                aggregate_id,
                version,
                &events,
                &metadata,
            )
            .await;
        }
        let events = events.into_owned();
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(self.pool.clone(), rx));
            tx
        });
        let (request, answer) =
            Request::new(aggregate_type, aggregate_id, version, events, metadata);
        if let Err(mpsc::error::SendError(request)) = queue.send(request) {
            // The writer is gone with the runtime that started it: write directly.
            return write_one(&self.pool, &request).await;
        }
        answer
            .await
            .map_err(|_| AppendError::Db(sqlx::Error::WorkerCrashed))?
    }
}

async fn run(pool: PgPool, mut rx: mpsc::UnboundedReceiver<Request>) {
    // Appends deferred because their aggregate already had one in the group.
    let mut deferred: VecDeque<Request> = VecDeque::new();
    loop {
        if deferred.is_empty() {
            match rx.recv().await {
                Some(r) => deferred.push_back(r),
                None => return,
            }
        }
        while let Ok(r) = rx.try_recv() {
            deferred.push_back(r);
        }
        let mut group = Vec::new();
        let mut streams = HashSet::new();
        let mut later = VecDeque::new();
        let max = group_max();
        while let Some(r) = deferred.pop_front() {
            if group.len() >= max
                || !streams.insert((r.aggregate_type.clone(), r.aggregate_id.clone()))
            {
                later.push_back(r);
            } else {
                group.push(r);
            }
        }
        deferred = later;
        write(&pool, group).await;
    }
}

/// Writes a group and answers each of its appends.
async fn write(pool: &PgPool, mut group: Vec<Request>) {
    let started = Instant::now();
    for r in &group {
        let waited = started.duration_since(r.queued);
        metrics::histogram!("inferplane_append_queue_seconds").record(waited.as_secs_f64());
        if let Some(observe) = QUEUE_OBSERVER.get() {
            observe(waited);
        }
    }
    metrics::histogram!("inferplane_append_group_size").record(group.len() as f64);
    // Rows in one order for every writer (stores of other processes included), so that two
    // groups touching the same aggregates wait for each other instead of deadlocking.
    group.sort_by(|a, b| {
        (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
    });
    write_parts(pool, group).await;
}

/// Writes `group` as one statement; if PostgreSQL refuses it (a sequence already taken, a
/// constraint), nothing of it was written: each half is written again the same way, down to
/// single appends, so only the append at fault gets the refusal and one conflict costs a few
/// statements, not one per append. Any other failure (the pool, the connection, a timeout)
/// leaves the outcome unknown: every append of the group gets the error, none is written
/// again.
fn write_parts(pool: &PgPool, group: Vec<Request>) -> futures::future::BoxFuture<'_, ()> {
    Box::pin(async move {
        if group.len() == 1 {
            let r = group.into_iter().next().expect("one");
            let result = write_one(pool, &r).await;
            let _ = r.reply.send(result);
            return;
        }
        match write_group(pool, &group).await {
            Ok(mut appended) => {
                for r in group {
                    let result = appended
                        .remove(&(r.aggregate_type.clone(), r.aggregate_id.clone()))
                        .unwrap_or((None, None));
                    let _ = r.reply.send(Ok(result));
                }
            }
            Err(GroupError::Refused(e)) => {
                metrics::counter!("inferplane_append_group_fallbacks_total").increment(1);
                tracing::debug!(appends = group.len(), error = %e, "group append refused; writing its halves");
                let mut first = group;
                let second = first.split_off(first.len() / 2);
                write_parts(pool, first).await;
                write_parts(pool, second).await;
            }
            Err(GroupError::Unknown(e)) => {
                tracing::warn!(appends = group.len(), error = %e, "group append failed");
                for r in group {
                    let _ = r.reply.send(Err(AppendError::Unknown(e.clone())));
                }
            }
        }
    })
}

/// Why a group statement did not answer.
enum GroupError {
    /// PostgreSQL refused the statement: nothing of it was written.
    Refused(sqlx::Error),
    /// Anything else: it may or may not have been written.
    Unknown(String),
}

/// Longest a group statement may take; past it the appends get an error (one hung
/// connection must not hold every append of the store).
const GROUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn write_one(pool: &PgPool, r: &Request) -> Result<Appended, AppendError> {
    let mut conn = pool.acquire().await.map_err(AppendError::Db)?;
    append_in(
        &mut conn,
        &r.aggregate_type,
        &r.aggregate_id,
        r.version,
        &r.events,
        &r.metadata,
    )
    .await
}

/// One multi-row INSERT for every event of the group, in the group's order (each append's
/// events keep their order, so positions grow with sequences within an aggregate). A
/// statement is atomic: refused, nothing of it was written.
async fn write_group(
    pool: &PgPool,
    group: &[Request],
) -> Result<HashMap<(String, String), Appended>, GroupError> {
    let rows: usize = group.iter().map(|r| r.events.len()).sum();
    let mut types = Vec::with_capacity(rows);
    let mut ids = Vec::with_capacity(rows);
    let mut sequences = Vec::with_capacity(rows);
    let mut event_types = Vec::with_capacity(rows);
    let mut versions = Vec::with_capacity(rows);
    let mut payloads = Vec::with_capacity(rows);
    let mut metadata = Vec::with_capacity(rows);
    for r in group {
        for (i, e) in r.events.iter().enumerate() {
            types.push(r.aggregate_type.as_str());
            ids.push(r.aggregate_id.as_str());
            sequences.push(r.version + 1 + i as i64);
            event_types.push(e.event_type.as_str());
            versions.push(e.event_version.as_str());
            payloads.push(&e.payload);
            metadata.push(&r.metadata);
        }
    }
    let inserted = sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         select * from unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
         returning aggregate_type, aggregate_id, position, recorded_at",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .bind(&event_types)
    .bind(&versions)
    .bind(&payloads)
    .bind(&metadata)
    .fetch_all(pool);
    let inserted = match tokio::time::timeout(GROUP_TIMEOUT, inserted).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e @ sqlx::Error::Database(_))) => return Err(GroupError::Refused(e)),
        Ok(Err(e)) => return Err(GroupError::Unknown(e.to_string())),
        Err(_) => {
            return Err(GroupError::Unknown(format!(
                "the append statement took longer than {GROUP_TIMEOUT:?}"
            )));
        }
    };
    let mut appended: HashMap<(String, String), Appended> = HashMap::new();
    let unknown = |e: sqlx::Error| GroupError::Unknown(e.to_string());
    for row in inserted {
        let key = (
            row.try_get("aggregate_type").map_err(unknown)?,
            row.try_get("aggregate_id").map_err(unknown)?,
        );
        let position: i64 = row.try_get("position").map_err(unknown)?;
        let recorded_at: DateTime<Utc> = row.try_get("recorded_at").map_err(unknown)?;
        let entry = appended.entry(key).or_insert((None, Some(recorded_at)));
        entry.0 = entry.0.max(Some(position));
    }
    debug_assert!(
        group
            .iter()
            .all(|r| appended.contains_key(&(r.aggregate_type.clone(), r.aggregate_id.clone())))
    );
    Ok(appended)
}
