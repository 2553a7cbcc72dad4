//! Running process managers: election, the durable work list, and dispatch.
//!
//! A [`Processor`] is woken by events and acts on *subjects* (an instance, a zone). The runner
//! turns the events after the processor's checkpoint into rows of `processor_work`, moving the
//! checkpoint in the same transaction, and runs [`Processor::step`] for each due subject, at
//! most one step per subject at a time and a bounded number at once. A subject an event wakes
//! starts its step at once; its row is written behind (see `persister`), and the step's
//! result is recorded in the work list once it is.
//!
//! Steps are level-triggered: a step looks at the subject as it is *now* (the aggregate loaded
//! from the store, the resource as the provider reports it) and does the next thing needed,
//! rather than replaying what one event asked for. A step that records an outcome causes an
//! event, which wakes the subject again, so a subject moves forward one step per event until a
//! step reports it [`Next::Done`]. A row leaves the work list only then, and only if no event
//! woke the subject while that step ran; so after a crash at any point the next leader repeats
//! the unfinished step, and the step's own idempotency (provider resources tagged with the
//! instance and looked up before any create) keeps it from doubling a side effect.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use inferplane_domain::{Actor, DEFAULT_TENANT, EventMetadata};
use inferplane_store::{Cursor, StoredEvent, WakeUps};
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

mod dispatch;

use dispatch::Dispatcher;

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
    /// The type of that event, when the feed handed the subject over because of it (`None`
    /// for a timer, a retry, or a row read back from the work list).
    pub trigger_event_type: Option<String>,
    pub correlation_id: Option<Uuid>,
    /// When this process learned the subject was due (the feed or a sweep read its row).
    pub woken_at: std::time::Instant,
    /// True when the feed handed the subject over because an event just woke it: the step is
    /// a reaction to that event. False for a timer (a step asked to look again), a retry, or a
    /// row found by a sweep; those are not reactions and are not measured as such.
    pub woken_by_event: bool,
}

impl Work {
    /// A work row as selected or returned (`subject, generation, failures, trigger_position,
    /// trigger_recorded_at, correlation_id`).
    fn from_row(processor: &'static str, r: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            processor,
            subject: r.try_get("subject")?,
            generation: r.try_get("generation")?,
            failures: r.try_get("failures")?,
            trigger_position: r.try_get("trigger_position")?,
            trigger_recorded_at: r.try_get("trigger_recorded_at")?,
            trigger_event_type: None,
            correlation_id: r.try_get("correlation_id")?,
            woken_at: std::time::Instant::now(),
            woken_by_event: false,
        })
    }

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
}

/// A process manager: reacts to events, performs one kind of side effect, records outcomes.
#[async_trait::async_trait]
pub trait Processor: Send + Sync + 'static {
    /// Stable name: the checkpoint's key, the actor of what it records, a metrics label.
    fn name(&self) -> &'static str;
    /// The subject an event asks this processor to look at, if any. It is told every event the
    /// feed reads, in order, with the feed's [`WakeMemory`] (so it can remember what earlier
    /// events said about a subject); but events the processor recorded itself never wake it: a
    /// step that records an outcome and has more to do continues in the same step (or asks to
    /// be looked at again).
    fn wakes(&self, event: &StoredEvent, memory: &mut WakeMemory) -> Option<String>;
    /// Does the next thing the subject needs. Must be idempotent: the runner may repeat a step
    /// whose outcome was not recorded (crash, lost leadership, timeout).
    async fn step(&self, work: &Work) -> anyhow::Result<Next>;
    /// Subjects that always have a work row (periodic work such as reconciliation).
    fn standing_subjects(&self) -> Vec<String> {
        Vec::new()
    }
    /// False for processors that no event wakes (periodic work only): they read nothing.
    fn reads_events(&self) -> bool {
        true
    }
}

/// What a processor's feed remembers about subjects between the events it reads, so that
/// [`Processor::wakes`] can leave a subject asleep when an event cannot concern it given what
/// came before (a resource recorded on an instance known not to be terminating, say).
///
/// It starts empty each time this process starts leading the processor, and knows only what
/// this feed has read since: `None` from [`get`](Self::get) means "not seen from its start",
/// and must be treated as "could be anything" (wake). Entries are removed with
/// [`forget`](Self::forget) when a subject's story ends, so it holds live subjects only.
#[derive(Debug, Default)]
pub struct WakeMemory {
    flags: std::collections::HashMap<String, bool>,
}

impl WakeMemory {
    pub fn set(&mut self, subject: &str, flag: bool) {
        match self.flags.get_mut(subject) {
            Some(f) => *f = flag,
            None => {
                self.flags.insert(subject.to_string(), flag);
            }
        }
    }

    pub fn get(&self, subject: &str) -> Option<bool> {
        self.flags.get(subject).copied()
    }

    pub fn forget(&mut self, subject: &str) {
        self.flags.remove(subject);
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
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
    /// Also told each reaction time (event committed to step started), besides `/metrics`.
    pub reactions: Option<ReactionObserver>,
}

/// Receives each reaction time of a processor: from the commit of the event that woke a
/// subject to the start of the step it caused (benchmarks collect them).
#[derive(Clone)]
pub struct ReactionObserver(pub Arc<dyn Fn(&'static str, Duration) + Send + Sync>);

impl std::fmt::Debug for ReactionObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReactionObserver")
    }
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
            reactions: None,
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

/// Longest time a checkpoint lags what the leader has read (when nothing was woken).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Longest a stopping leader waits for its work list's writer to write what it was given.
const DRAIN_FOR: Duration = Duration::from_secs(5);

/// How soon to look again when committed events wait behind an older open transaction.
const HELD_BACK_RETRY: Duration = Duration::from_millis(3);

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
        let (checkpoint, ledger) = Ledger::load(&self.pool, name).await?;

        // Subjects woken by the feed go straight to the dispatcher, and their rows to the
        // writer of the work list, which writes them (with the checkpoint) behind the feed,
        // and the steps' results behind them. The work list in the database is what survives
        // a crash, and what the dispatcher sweeps for timers.
        let (woken, woken_rx) = mpsc::unbounded_channel();
        let (writes, writes_rx) = mpsc::unbounded_channel();
        let finishing = Finishing::default();
        let dispatcher = Dispatcher::new(
            self.processor.clone(),
            self.pool.clone(),
            self.settings.clone(),
            woken_rx,
            ledger.failures.clone(),
            finishing.clone(),
            writes.clone(),
        );
        let mut dispatch_shutdown = shutdown.clone();
        let mut dispatch = Part(tokio::spawn(async move {
            dispatcher.run(&mut dispatch_shutdown).await
        }));
        let writer_conn = self.pool.acquire().await?.detach();
        let mut persisting = Part(tokio::spawn(persister(
            writer_conn,
            name,
            checkpoint,
            writes_rx,
            finishing,
        )));
        let feed = self.feed(
            shutdown,
            &mut lock_conn,
            checkpoint,
            ledger,
            &woken,
            &writes,
        );
        // Leading ends when any part fails or shutdown comes; the others are stopped (also
        // when this task itself is aborted: see [`Part`]).
        let (mut dispatched, mut persisted) = (false, false);
        let result = tokio::select! {
            r = feed => r,
            r = &mut dispatch.0 => {
                dispatched = true;
                r.context("dispatcher panicked").and_then(|r| r)
            }
            r = &mut persisting.0 => {
                persisted = true;
                r.context("persister panicked").and_then(|r| r)
            }
        };
        // Steps in flight are abandoned (their rows stay for the next leader), but what was
        // already handed to the work list's writer is written before leading ends, within a
        // bound: a clean stop loses no step's result.
        if !dispatched {
            dispatch.0.abort();
            let _ = (&mut dispatch.0).await;
        }
        drop(writes);
        if !persisted {
            let _ = tokio::time::timeout(DRAIN_FOR, &mut persisting.0).await;
        }
        result
    }

    /// Moves events after the checkpoint into the work list, then waits for more. Runs on the
    /// leader's own connection (the one holding the lock), so that steps busy with the pool
    /// never delay the reading of new events.
    async fn feed(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        lock_conn: &mut sqlx::PgConnection,
        checkpoint: Cursor,
        mut ledger: Ledger,
        woken: &mpsc::UnboundedSender<Vec<Work>>,
        writes: &mpsc::UnboundedSender<ToWrite>,
    ) -> anyhow::Result<()> {
        let name = self.processor.name();
        if !self.processor.reads_events() {
            // Periodic work only: nothing to read, just keep the lead.
            loop {
                tokio::select! {
                    _ = stopped(shutdown) => return Ok(()),
                    _ = tokio::time::sleep(self.settings.poll_interval) => {
                        sqlx::query("select 1").execute(&mut *lock_conn).await.context("lock connection lost")?;
                    }
                }
            }
        }
        // `cursor` is how far this leader read; `sent` how far the persister was told to move
        // the checkpoint. Batches that wake nothing move only the first, and the checkpoint
        // follows at most every CHECKPOINT_EVERY: re-reading them after a crash is harmless.
        let mut cursor = checkpoint;
        let mut memory = WakeMemory::default();
        let mut sent = cursor;
        let mut unsent: i64 = 0;
        let mut sent_at = std::time::Instant::now();
        loop {
            self.wakeups.borrow_and_update();
            let held_back = loop {
                let page = self
                    .wakeups
                    .tap()
                    .read_after_checked(&mut *lock_conn, cursor, self.settings.batch_size)
                    .await?;
                let full = page.events.len() as i64 >= self.settings.batch_size;
                if let Some(last) = page.events.last().map(StoredEvent::cursor) {
                    cursor = last;
                    unsent += page.events.len() as i64;
                    let woke = Woken::of(
                        self.processor.as_ref(),
                        &page.events,
                        &mut memory,
                        &mut ledger,
                    );
                    if !woke.is_empty() || sent_at.elapsed() >= CHECKPOINT_EVERY {
                        // The steps start now; their rows follow (see `persister`), queued
                        // before any result of those steps can be.
                        let works = woke.works(name);
                        let batch = Batch {
                            to: cursor,
                            seen: unsent,
                            woken: woke,
                        };
                        if writes.send(ToWrite::Woken(batch)).is_err() {
                            anyhow::bail!("the persister stopped");
                        }
                        if !works.is_empty() && woken.send(works).is_err() {
                            anyhow::bail!("the dispatcher stopped");
                        }
                        sent = cursor;
                        unsent = 0;
                        sent_at = std::time::Instant::now();
                    }
                }
                if *shutdown.borrow() {
                    return Ok(());
                }
                if !full {
                    break page.held_back;
                }
            };
            if held_back {
                // A notification was already spent on those events: look again shortly.
                tokio::time::sleep(HELD_BACK_RETRY).await;
                continue;
            }
            // Idle: a checkpoint left behind by batches that woke nothing follows shortly.
            let pending = sent != cursor;
            let wait = if pending {
                CHECKPOINT_EVERY
                    .saturating_sub(sent_at.elapsed())
                    .min(self.settings.poll_interval)
            } else {
                self.settings.poll_interval
            };
            tokio::select! {
                _ = stopped(shutdown) => return Ok(()),
                _ = self.wakeups.changed() => {}
                _ = tokio::time::sleep(wait) => {
                    if pending {
                        let batch = Batch { to: cursor, seen: unsent, woken: Woken::default() };
                        if writes.send(ToWrite::Woken(batch)).is_err() {
                            anyhow::bail!("the persister stopped");
                        }
                        sent = cursor;
                        unsent = 0;
                        sent_at = std::time::Instant::now();
                    } else {
                        sqlx::query("select 1").execute(&mut *lock_conn).await.context("lock connection lost")?;
                    }
                }
            }
        }
    }
}

/// A task spawned for one term of leading, aborted when the term ends however it ends.
struct Part<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Part<T> {
    fn drop(&mut self) {
        self.0.abort();
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

/// What the leader keeps in memory about its work list, so that a woken subject's step can
/// start before its row is written.
struct Ledger {
    /// The generation the next wake-up gets: above every generation ever given (the
    /// high-water mark kept with the checkpoint, and the work list) when leading began, and
    /// increasing. Only the leader gives generations, and only its writer writes them, fenced
    /// by the checkpoint.
    next_generation: i64,
    /// Failed steps in a row of the subjects whose last step failed (the rest have none).
    /// Loaded when leading begins, then kept by the dispatcher as steps finish.
    failures: Failures,
}

/// Failed steps in a row, per subject whose last step failed.
pub(crate) type Failures = Arc<std::sync::Mutex<std::collections::HashMap<String, i32>>>;

impl Ledger {
    /// The checkpoint and the ledger, read together: the generations of every row and every
    /// batch written up to that checkpoint are below the next one given. A batch a previous
    /// leader writes later moves the checkpoint, so this leader's first write fails its fence
    /// and it starts again from a fresh read.
    async fn load(pool: &PgPool, name: &str) -> anyhow::Result<(Cursor, Self)> {
        let row = sqlx::query(
            "select c.transaction_id::text::bigint as txid, c.position,
                    greatest(c.generations,
                             (select coalesce(max(generation), 0) from processor_work
                              where processor = $1)) as top
             from processor_checkpoints c where c.name = $1",
        )
        .bind(name)
        .fetch_one(pool)
        .await?;
        let checkpoint = Cursor {
            transaction_id: row.try_get("txid")?,
            position: row.try_get("position")?,
        };
        let top: i64 = row.try_get("top")?;
        let failing: Vec<(String, i32)> = sqlx::query_as(
            "select subject, failures from processor_work where processor = $1 and failures > 0",
        )
        .bind(name)
        .fetch_all(pool)
        .await?;
        Ok((
            checkpoint,
            Self {
                next_generation: top + 1,
                failures: Arc::new(std::sync::Mutex::new(failing.into_iter().collect())),
            },
        ))
    }
}

/// The subjects a batch of events wakes, with the last waking event of each and the
/// generation given to each.
#[derive(Default)]
struct Woken {
    /// Where each subject is in the columns below.
    index: std::collections::HashMap<String, usize>,
    subjects: Vec<String>,
    generations: Vec<i64>,
    positions: Vec<i64>,
    recorded: Vec<DateTime<Utc>>,
    event_types: Vec<String>,
    correlations: Vec<Option<Uuid>>,
}

impl Woken {
    fn of(
        p: &dyn Processor,
        events: &[StoredEvent],
        memory: &mut WakeMemory,
        ledger: &mut Ledger,
    ) -> Self {
        let mut w = Self::default();
        for e in events {
            let Some(subject) = p.wakes(e, memory) else {
                continue;
            };
            // A processor's own outcomes do not wake it: its step continues by itself.
            let actor = &e.metadata["actor"];
            if actor["kind"] == "processor" && actor["id"] == p.name() {
                continue;
            }
            let correlation = e
                .metadata
                .get("correlation_id")
                .and_then(|v| v.as_str())
                .and_then(|s| Uuid::parse_str(s).ok());
            let generation = ledger.next_generation;
            ledger.next_generation += 1;
            w.wake(
                subject,
                generation,
                (e.position, e.recorded_at, e.event_type.clone()),
                correlation,
            );
        }
        w
    }

    /// Records a wake-up of `subject`; a subject already here takes the later one.
    /// `event`: the waking event's position, `recorded_at` and type.
    fn wake(
        &mut self,
        subject: String,
        generation: i64,
        event: (i64, DateTime<Utc>, String),
        correlation: Option<Uuid>,
    ) {
        let (position, recorded, event_type) = event;
        match self.index.get(&subject) {
            Some(&i) => {
                self.generations[i] = generation;
                self.positions[i] = position;
                self.recorded[i] = recorded;
                self.event_types[i] = event_type;
                self.correlations[i] = correlation;
            }
            None => {
                self.index.insert(subject.clone(), self.subjects.len());
                self.subjects.push(subject);
                self.generations.push(generation);
                self.positions.push(position);
                self.recorded.push(recorded);
                self.event_types.push(event_type);
                self.correlations.push(correlation);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// The work of each woken subject, as its row will read once written (the dispatcher sets
    /// the failure count when the step starts).
    fn works(&self, processor: &'static str) -> Vec<Work> {
        (0..self.subjects.len())
            .map(|i| Work {
                processor,
                subject: self.subjects[i].clone(),
                generation: self.generations[i],
                failures: 0,
                trigger_position: Some(self.positions[i]),
                trigger_recorded_at: Some(self.recorded[i]),
                trigger_event_type: Some(self.event_types[i].clone()),
                correlation_id: self.correlations[i],
                woken_at: std::time::Instant::now(),
                woken_by_event: true,
            })
            .collect()
    }

    /// Adds a later batch's wake-ups.
    fn merge(&mut self, later: Woken) {
        let columns = later
            .generations
            .into_iter()
            .zip(later.positions)
            .zip(later.recorded)
            .zip(later.event_types)
            .zip(later.correlations);
        for (subject, ((((generation, position), recorded), event_type), correlation)) in
            later.subjects.into_iter().zip(columns)
        {
            self.wake(
                subject,
                generation,
                (position, recorded, event_type),
                correlation,
            );
        }
    }
}

/// What the feed hands the persister: move the checkpoint to `to` (`seen` events further)
/// and write the woken subjects' rows.
pub(crate) struct Batch {
    to: Cursor,
    seen: i64,
    woken: Woken,
}

/// Subjects whose step returned but whose result is not yet written to the work list (a sweep
/// meanwhile would read the old row and repeat the step), with how many results are on
/// their way.
pub(crate) type Finishing = Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// One result on its way out of the finishing set.
pub(crate) fn release_finishing(f: &mut std::collections::HashMap<String, usize>, subject: &str) {
    if let Some(n) = f.get_mut(subject) {
        *n -= 1;
        if *n == 0 {
            f.remove(subject);
        }
    }
}

/// What the work list's writer is given, in order.
pub(crate) enum ToWrite {
    /// Move the checkpoint and write the woken subjects' rows.
    Woken(Batch),
    /// A step's result, for the row of `generation` (left alone if a newer wake-up replaced
    /// it).
    Result {
        subject: String,
        generation: i64,
        result: StepResult,
    },
}

/// What a finished step leaves in its row.
#[derive(Debug, Clone)]
pub(crate) enum StepResult {
    /// Nothing more to do: the row goes.
    Done,
    /// A success after failures: the count is reset, the row due after `after`.
    Recovered { after: Duration },
    /// A failure: counted, recorded, the row due again after `after` (backoff survives a
    /// restart).
    Failed {
        failures: i32,
        after: Duration,
        error: String,
    },
}

/// Writes the work list, in the order it is given: the feed's batches (rows and checkpoint,
/// see [`persist`]) and the steps' results, on a connection of its own. The feed reads on
/// while a batch is written, and the steps of the subjects it woke have already started; a
/// result always comes after the row it concerns, since the feed queues a batch before it
/// hands its subjects to the dispatcher. What queued meanwhile is written together: the
/// batches in one statement, then the results (the last per row) in at most two. A crash
/// before a batch is written loses nothing: the checkpoint has not moved either, so the next
/// leader reads those events again and wakes the same subjects.
async fn persister(
    mut conn: sqlx::PgConnection,
    name: &'static str,
    mut from: Cursor,
    mut writes: mpsc::UnboundedReceiver<ToWrite>,
    finishing: Finishing,
) -> anyhow::Result<()> {
    while let Some(first) = writes.recv().await {
        let mut batch: Option<Batch> = None;
        let mut results: Vec<(String, i64, StepResult)> = Vec::new();
        let mut take = |w: ToWrite| match w {
            ToWrite::Woken(b) => match &mut batch {
                Some(batch) => {
                    batch.to = b.to;
                    batch.seen += b.seen;
                    batch.woken.merge(b.woken);
                }
                None => batch = Some(b),
            },
            ToWrite::Result {
                subject,
                generation,
                result,
            } => results.push((subject, generation, result)),
        };
        take(first);
        while let Ok(more) = writes.try_recv() {
            take(more);
        }
        if let Some(batch) = batch {
            persist(&mut conn, name, from, batch.to, batch.seen, &batch.woken).await?;
            from = batch.to;
        }
        if !results.is_empty() {
            let written = record_results(&mut conn, name, &results).await;
            if let Ok(mut f) = finishing.lock() {
                for (subject, _, _) in &results {
                    release_finishing(&mut f, subject);
                }
            }
            if let Err(e) = written {
                // The rows stay due; the next sweep repeats those steps.
                tracing::warn!(
                    processor = name,
                    steps = results.len(),
                    error = format!("{e:#}"),
                    "could not record steps' results"
                );
            }
        }
    }
    Ok(())
}

/// Records steps' results: the last per subject and generation (a subject's steps run one
/// after another, so a later result for the same row supersedes an earlier one). Every write
/// is guarded by the generation the step ran for: a row woken again meanwhile is due again and
/// left alone, and a result for an older generation touches nothing.
async fn record_results(
    conn: &mut sqlx::PgConnection,
    name: &'static str,
    results: &[(String, i64, StepResult)],
) -> anyhow::Result<()> {
    let mut last = std::collections::HashMap::<(&str, i64), usize>::new();
    for (i, (subject, generation, _)) in results.iter().enumerate() {
        last.insert((subject.as_str(), *generation), i);
    }
    // Rows to delete, and rows due again: subject, generation (and failures, delay, error).
    let (mut done_s, mut done_g) = (Vec::<&str>::new(), Vec::<i64>::new());
    let (mut again_s, mut again_g) = (Vec::<&str>::new(), Vec::<i64>::new());
    let (mut again_f, mut again_d, mut again_e) = (
        Vec::<i32>::new(),
        Vec::<f64>::new(),
        Vec::<Option<&str>>::new(),
    );
    for (i, (subject, generation, result)) in results.iter().enumerate() {
        if last.get(&(subject.as_str(), *generation)) != Some(&i) {
            continue;
        }
        let (failures, after, error) = match result {
            StepResult::Done => {
                done_s.push(subject);
                done_g.push(*generation);
                continue;
            }
            StepResult::Recovered { after } => (0, after, None),
            StepResult::Failed {
                failures,
                after,
                error,
            } => (*failures, after, Some(error.as_str())),
        };
        again_s.push(subject);
        again_g.push(*generation);
        again_f.push(failures);
        again_d.push(after.as_millis() as f64);
        again_e.push(error);
    }
    if !done_s.is_empty() {
        sqlx::query(
            "delete from processor_work w
             using unnest($2::text[], $3::bigint[]) as t(s, g)
             where w.processor = $1 and w.subject = t.s and w.generation = t.g",
        )
        .bind(name)
        .bind(&done_s)
        .bind(&done_g)
        .execute(&mut *conn)
        .await?;
    }
    if !again_s.is_empty() {
        sqlx::query(
            "update processor_work w
             set due_at = now() + t.d * interval '1 millisecond', failures = t.f,
                 last_error = t.e, updated_at = now()
             from unnest($2::text[], $3::bigint[], $4::int[], $5::float8[], $6::text[])
                  as t(s, g, f, d, e)
             where w.processor = $1 and w.subject = t.s and w.generation = t.g",
        )
        .bind(name)
        .bind(&again_s)
        .bind(&again_g)
        .bind(&again_f)
        .bind(&again_d)
        .bind(&again_e)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Moves the checkpoint from `from` to `to` (fenced on `from`) and writes the woken subjects'
/// rows, in one statement, so the transaction holding an xid lasts one round trip. Fails
/// when another runner moved the checkpoint (it leads now).
async fn persist(
    conn: &mut sqlx::PgConnection,
    name: &'static str,
    from: Cursor,
    to: Cursor,
    seen: i64,
    woken: &Woken,
) -> anyhow::Result<()> {
    let moved: i64 = sqlx::query_scalar(
        "with moved as (
             update processor_checkpoints
             set transaction_id = $7::text::xid8, position = $8, events_seen = events_seen + $9,
                 generations = greatest(generations, $12), updated_at = now()
             where name = $1 and transaction_id = $10::text::xid8 and position = $11
             returning name
         ), woken as (
             insert into processor_work
               (processor, subject, generation, due_at, trigger_position, trigger_recorded_at,
                correlation_id)
             select $1, s, g, now(), p, r, c
             from unnest($2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::uuid[])
                  as t(s, g, p, r, c)
             where exists (select 1 from moved)
             on conflict (processor, subject) do update
             set due_at = now(), generation = excluded.generation,
                 trigger_position = excluded.trigger_position,
                 trigger_recorded_at = excluded.trigger_recorded_at,
                 correlation_id = coalesce(excluded.correlation_id, processor_work.correlation_id),
                 updated_at = now()
         )
         select count(*) from moved",
    )
    .bind(name)
    .bind(&woken.subjects)
    .bind(&woken.generations)
    .bind(&woken.positions)
    .bind(&woken.recorded)
    .bind(&woken.correlations)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .bind(seen)
    .bind(from.transaction_id.to_string())
    .bind(from.position)
    .bind(woken.generations.iter().copied().max().unwrap_or(0))
    .fetch_one(&mut *conn)
    .await?;
    if moved != 1 {
        anyhow::bail!("the checkpoint of {name} was moved by another runner");
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
