//! Running process managers: election, the durable work list, and dispatch.
//!
//! A [`Processor`] is woken by events and acts on *subjects* (an instance, a zone). The runner
//! turns the events after the processor's checkpoint into rows of `processor_work`, moving the
//! checkpoint in the same transaction, then runs [`Processor::step`] for each due subject, at
//! most one step per subject at a time and a bounded number at once.
//!
//! Steps are level-triggered: a step looks at the subject as it is *now* (the aggregate loaded
//! from the store, the resource as the provider reports it) and does the next thing needed,
//! rather than replaying what one event asked for. A step that records an outcome causes an
//! event, which wakes the subject again, so a subject moves forward one step per event until a
//! step reports it [`Next::Done`]. A row leaves the work list only then, and only if no event
//! woke the subject while that step ran; so after a crash at any point the next leader repeats
//! the unfinished step, and the step's own idempotency (provider resources tagged with the
//! instance and looked up before any create) keeps it from doubling a side effect.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use inferplane_domain::{Actor, DEFAULT_TENANT, EventMetadata};
use inferplane_store::reader::{self, Filter};
use inferplane_store::{Cursor, StoredEvent, WakeUps};
use sqlx::{PgPool, Row};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

/// What a step asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing left to do for the subject until an event wakes it again.
    Done,
    /// Look again after this long (polling a provider, a periodic check, a backoff).
    After(Duration),
}

/// One due subject, as the work list holds it.
#[derive(Debug, Clone)]
pub struct Work {
    pub processor: &'static str,
    pub subject: String,
    pub generation: i64,
    /// Steps that failed in a row before this one.
    pub failures: i32,
    /// The event that last woke the subject, if an event did.
    pub trigger_position: Option<i64>,
    pub trigger_recorded_at: Option<DateTime<Utc>>,
    pub correlation_id: Option<Uuid>,
    /// When the subject entered the work list (the start of the current piece of work).
    pub since: DateTime<Utc>,
}

impl Work {
    /// Metadata for what this step records: the processor as actor, the waking event as cause,
    /// the correlation of the user's intention that started it all.
    pub fn metadata(&self) -> EventMetadata {
        let correlation_id = self.correlation_id.unwrap_or_else(Uuid::now_v7);
        EventMetadata {
            correlation_id,
            causation_id: match self.trigger_position {
                Some(p) => format!("event:{p}"),
                None => format!("processor:{}", self.processor),
            },
            actor: Actor::processor(self.processor),
            request_id: Some(format!(
                "{}:{}:{}",
                self.processor, self.subject, self.generation
            )),
            tenant_id: DEFAULT_TENANT,
        }
    }

    /// How long the subject has been in the work list.
    pub fn age(&self) -> Duration {
        (Utc::now() - self.since).to_std().unwrap_or_default()
    }
}

/// A process manager: reacts to events, performs one kind of side effect, records outcomes.
#[async_trait::async_trait]
pub trait Processor: Send + Sync + 'static {
    /// Stable name: the checkpoint's key, the actor of what it records, a metrics label.
    fn name(&self) -> &'static str;
    /// The subject an event asks this processor to look at, if any.
    fn wakes(&self, event: &StoredEvent) -> Option<String>;
    /// Does the next thing the subject needs. Must be idempotent: the runner may repeat a step
    /// whose outcome was not recorded (crash, lost leadership, timeout).
    async fn step(&self, work: &Work) -> anyhow::Result<Next>;
    /// Subjects that always have a work row (periodic work such as reconciliation).
    fn standing_subjects(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Settings shared by every processor runner.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Fallback when no notification arrives, and the standby's retry interval.
    pub poll_interval: Duration,
    /// Events read per checkpoint move.
    pub batch_size: i64,
    /// Steps running at once per processor.
    pub concurrency: usize,
    /// A step running longer than this is abandoned and retried.
    pub step_timeout: Duration,
    /// Backoff after failed steps: base * 2^failures, capped.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            batch_size: 1_000,
            concurrency: 64,
            step_timeout: Duration::from_secs(300),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// Keeps one processor running in this process, when this process wins its election.
pub struct ProcessorRunner {
    pub processor: Arc<dyn Processor>,
    pub pool: PgPool,
    pub wakeups: WakeUps,
    pub settings: RunnerSettings,
}

const HELD_BACK_RETRY: Duration = Duration::from_millis(10);

impl ProcessorRunner {
    /// Runs until `shutdown` turns true. Only the process holding the processor's advisory lock
    /// acts; the others wait as standbys and take over if it goes away.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.processor.name();
        while !*shutdown.borrow() {
            if let Err(e) = self.lead(&mut shutdown).await {
                tracing::warn!(
                    processor = name,
                    error = format!("{e:#}"),
                    "processor runner failed; retrying"
                );
            }
            metrics::gauge!("inferplane_processor_leader", "processor" => name).set(0.0);
            tokio::select! {
                _ = stopped(&mut shutdown) => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    async fn lead(&mut self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let name = self.processor.name();
        let mut lock_conn = self.pool.acquire().await?.detach();
        let won: bool =
            sqlx::query_scalar("select pg_try_advisory_lock(hashtext('processor:' || $1))")
                .bind(name)
                .fetch_one(&mut lock_conn)
                .await?;
        if !won {
            return Ok(());
        }
        tracing::info!(processor = name, "leading processor");
        metrics::gauge!("inferplane_processor_leader", "processor" => name).set(1.0);
        install(&self.pool, self.processor.as_ref()).await?;

        let due = Arc::new(Notify::new());
        let dispatcher = Dispatcher {
            processor: self.processor.clone(),
            pool: self.pool.clone(),
            settings: self.settings.clone(),
            due: due.clone(),
        };
        let mut dispatch_shutdown = shutdown.clone();
        let mut dispatch =
            tokio::spawn(async move { dispatcher.run(&mut dispatch_shutdown).await });
        let feed = self.feed(shutdown, &mut lock_conn, &due);
        // Leading ends when either half fails or shutdown comes; the other half is stopped.
        tokio::select! {
            r = feed => {
                dispatch.abort();
                let _ = dispatch.await;
                r
            }
            r = &mut dispatch => r.context("dispatcher panicked").and_then(|r| r),
        }
    }

    /// Moves events after the checkpoint into the work list, then waits for more.
    async fn feed(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        lock_conn: &mut sqlx::PgConnection,
        due: &Notify,
    ) -> anyhow::Result<()> {
        let name = self.processor.name();
        let mut cursor = load_checkpoint(&self.pool, name).await?;
        loop {
            self.wakeups.borrow_and_update();
            while let Some(next) = feed_batch(
                &self.pool,
                self.processor.as_ref(),
                cursor,
                self.settings.batch_size,
            )
            .await?
            {
                cursor = next;
                due.notify_one();
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
                _ = tokio::time::sleep(self.settings.poll_interval) => {
                    sqlx::query("select 1").execute(&mut *lock_conn).await.context("lock connection lost")?;
                }
            }
        }
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Creates the checkpoint row and the standing subjects' work rows if missing.
async fn install(pool: &PgPool, p: &dyn Processor) -> anyhow::Result<()> {
    sqlx::query("insert into processor_checkpoints (name) values ($1) on conflict do nothing")
        .bind(p.name())
        .execute(pool)
        .await?;
    let standing = p.standing_subjects();
    if !standing.is_empty() {
        sqlx::query(
            "insert into processor_work (processor, subject, due_at)
             select $1, s, now() from unnest($2::text[]) as s
             on conflict do nothing",
        )
        .bind(p.name())
        .bind(&standing)
        .execute(pool)
        .await?;
    }
    Ok(())
}

async fn load_checkpoint(pool: &PgPool, name: &str) -> anyhow::Result<Cursor> {
    let row = sqlx::query(
        "select transaction_id::text::bigint as txid, position from processor_checkpoints where name = $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await?;
    Ok(Cursor {
        transaction_id: row.try_get("txid")?,
        position: row.try_get("position")?,
    })
}

/// One batch: the woken subjects go into the work list and the checkpoint moves, in one
/// transaction. Fails when another runner moved the checkpoint (it leads now).
async fn feed_batch(
    pool: &PgPool,
    p: &dyn Processor,
    cursor: Cursor,
    batch: i64,
) -> anyhow::Result<Option<Cursor>> {
    let mut tx = pool.begin().await?;
    let events = reader::read_after(&mut tx, cursor, &Filter::default(), batch).await?;
    let Some(last) = events.last().map(StoredEvent::cursor) else {
        return Ok(None);
    };
    // The last event per subject decides the work row's trigger.
    let mut subjects: Vec<String> = Vec::new();
    let mut positions: Vec<i64> = Vec::new();
    let mut recorded: Vec<DateTime<Utc>> = Vec::new();
    let mut correlations: Vec<Option<Uuid>> = Vec::new();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for e in &events {
        let Some(subject) = p.wakes(e) else { continue };
        let correlation = e
            .metadata
            .get("correlation_id")
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok());
        match seen.get(&subject) {
            Some(&i) => {
                positions[i] = e.position;
                recorded[i] = e.recorded_at;
                correlations[i] = correlation;
            }
            None => {
                seen.insert(subject.clone(), subjects.len());
                subjects.push(subject);
                positions.push(e.position);
                recorded.push(e.recorded_at);
                correlations.push(correlation);
            }
        }
    }
    if !subjects.is_empty() {
        sqlx::query(
            "insert into processor_work
               (processor, subject, due_at, trigger_position, trigger_recorded_at, correlation_id)
             select $1, s, now(), p, r, c
             from unnest($2::text[], $3::bigint[], $4::timestamptz[], $5::uuid[]) as t(s, p, r, c)
             on conflict (processor, subject) do update
             set due_at = now(), generation = processor_work.generation + 1,
                 trigger_position = excluded.trigger_position,
                 trigger_recorded_at = excluded.trigger_recorded_at,
                 correlation_id = coalesce(excluded.correlation_id, processor_work.correlation_id),
                 updated_at = now()",
        )
        .bind(p.name())
        .bind(&subjects)
        .bind(&positions)
        .bind(&recorded)
        .bind(&correlations)
        .execute(&mut *tx)
        .await?;
    }
    let moved = sqlx::query(
        "update processor_checkpoints
         set transaction_id = $2::text::xid8, position = $3, events_seen = events_seen + $4,
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
        anyhow::bail!("the checkpoint of {} was moved by another runner", p.name());
    }
    tx.commit().await?;
    Ok(Some(last))
}

/// Runs due steps, at most one per subject and `concurrency` at once.
struct Dispatcher {
    processor: Arc<dyn Processor>,
    pool: PgPool,
    settings: RunnerSettings,
    due: Arc<Notify>,
}

impl Dispatcher {
    async fn run(self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let name = self.processor.name();
        let mut running: HashSet<String> = HashSet::new();
        let mut tasks: JoinSet<String> = JoinSet::new();
        loop {
            let free = self.settings.concurrency.saturating_sub(running.len());
            let mut next_due: Option<Duration> = None;
            if free > 0 {
                let busy: Vec<String> = running.iter().cloned().collect();
                for work in claim(&self.pool, name, &busy, free as i64).await? {
                    running.insert(work.subject.clone());
                    let processor = self.processor.clone();
                    let pool = self.pool.clone();
                    let settings = self.settings.clone();
                    tasks.spawn(async move {
                        let subject = work.subject.clone();
                        run_step(processor, pool, settings, work).await;
                        subject
                    });
                }
                next_due = time_to_next_due(&self.pool, name, &running).await?;
            }
            metrics::gauge!("inferplane_processor_steps_running", "processor" => name)
                .set(running.len() as f64);
            let wait = next_due
                .unwrap_or(self.settings.poll_interval)
                .min(self.settings.poll_interval);
            tokio::select! {
                _ = stopped(shutdown) => {
                    // Steps in flight are abandoned; their rows stay for the next leader.
                    tasks.abort_all();
                    return Ok(());
                }
                _ = self.due.notified() => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    match done {
                        Ok(subject) => { running.remove(&subject); }
                        Err(e) => anyhow::bail!("a step task failed: {e}"),
                    }
                    // Collect every other finished task before claiming again.
                    while let Some(done) = tasks.try_join_next() {
                        if let Ok(subject) = done { running.remove(&subject); }
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

async fn claim(
    pool: &PgPool,
    name: &'static str,
    busy: &[String],
    limit: i64,
) -> anyhow::Result<Vec<Work>> {
    let rows = sqlx::query(
        "select subject, generation, failures, trigger_position, trigger_recorded_at,
                correlation_id, created_at
         from processor_work
         where processor = $1 and due_at <= now() and subject <> all($2)
         order by due_at
         limit $3",
    )
    .bind(name)
    .bind(busy)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Work {
                processor: name,
                subject: r.try_get("subject")?,
                generation: r.try_get("generation")?,
                failures: r.try_get("failures")?,
                trigger_position: r.try_get("trigger_position")?,
                trigger_recorded_at: r.try_get("trigger_recorded_at")?,
                correlation_id: r.try_get("correlation_id")?,
                since: r.try_get("created_at")?,
            })
        })
        .collect()
}

async fn time_to_next_due(
    pool: &PgPool,
    name: &str,
    running: &HashSet<String>,
) -> anyhow::Result<Option<Duration>> {
    let busy: Vec<String> = running.iter().cloned().collect();
    let millis: Option<f64> = sqlx::query_scalar(
        "select (extract(epoch from (min(due_at) - now())) * 1000)::float8
         from processor_work where processor = $1 and subject <> all($2)",
    )
    .bind(name)
    .bind(&busy)
    .fetch_one(pool)
    .await?;
    Ok(millis.map(|ms| Duration::from_millis(ms.max(0.0).ceil() as u64)))
}

async fn run_step(
    processor: Arc<dyn Processor>,
    pool: PgPool,
    settings: RunnerSettings,
    work: Work,
) {
    let name = processor.name();
    if work.failures == 0
        && let Some(at) = work.trigger_recorded_at
        && let Ok(d) = (Utc::now() - at).to_std()
    {
        metrics::histogram!("inferplane_processor_reaction_seconds", "processor" => name)
            .record(d.as_secs_f64());
    }
    let started = Instant::now();
    let result = match tokio::time::timeout(settings.step_timeout, processor.step(&work)).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!(
            "step timed out after {:?}",
            settings.step_timeout
        )),
    };
    metrics::histogram!("inferplane_processor_step_seconds", "processor" => name)
        .record(started.elapsed().as_secs_f64());
    let outcome = match &result {
        Ok(Next::Done) => "done",
        Ok(Next::After(_)) => "again",
        Err(_) => "error",
    };
    metrics::counter!("inferplane_processor_steps_total", "processor" => name, "outcome" => outcome)
        .increment(1);
    if let Err(e) = finish(&pool, &settings, &work, result).await {
        // The row stays due; the next pass repeats the step.
        tracing::warn!(processor = name, subject = %work.subject, error = format!("{e:#}"), "could not record a step's result");
    }
}

async fn finish(
    pool: &PgPool,
    settings: &RunnerSettings,
    work: &Work,
    result: anyhow::Result<Next>,
) -> anyhow::Result<()> {
    match result {
        Ok(Next::Done) => {
            // Deleted only when nothing woke the subject meanwhile; otherwise it is due again.
            sqlx::query(
                "delete from processor_work where processor = $1 and subject = $2 and generation = $3",
            )
            .bind(work.processor)
            .bind(&work.subject)
            .bind(work.generation)
            .execute(pool)
            .await?;
        }
        Ok(Next::After(after)) => {
            sqlx::query(
                "update processor_work
                 set due_at = case when generation = $3 then now() + $4 * interval '1 millisecond' else due_at end,
                     failures = 0, last_error = null, updated_at = now()
                 where processor = $1 and subject = $2",
            )
            .bind(work.processor)
            .bind(&work.subject)
            .bind(work.generation)
            .bind(after.as_millis() as f64)
            .execute(pool)
            .await?;
        }
        Err(e) => {
            let failures = work.failures.saturating_add(1);
            let backoff = backoff(settings, failures);
            let message = format!("{e:#}");
            tracing::warn!(
                processor = work.processor,
                subject = %work.subject,
                failures,
                retry_in_ms = backoff.as_millis() as u64,
                error = %message,
                "step failed"
            );
            sqlx::query(
                "update processor_work
                 set due_at = case when generation = $3 then now() + $4 * interval '1 millisecond' else due_at end,
                     failures = $5, last_error = $6, updated_at = now()
                 where processor = $1 and subject = $2",
            )
            .bind(work.processor)
            .bind(&work.subject)
            .bind(work.generation)
            .bind(backoff.as_millis() as f64)
            .bind(failures)
            .bind(message.chars().take(2000).collect::<String>())
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// `base * 2^(failures-1)`, capped, with up to 20 % jitter so retries of many subjects spread.
pub fn backoff(settings: &RunnerSettings, failures: i32) -> Duration {
    let exp = (failures.max(1) - 1).min(20) as u32;
    let raw = settings
        .backoff_base
        .saturating_mul(1u32 << exp.min(16))
        .min(settings.backoff_max);
    let jitter = rand::random::<f64>() * 0.2;
    raw.mul_f64(1.0 + jitter).min(settings.backoff_max)
}
