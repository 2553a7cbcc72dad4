//! The dispatcher: runs due steps, at most one per subject and a bounded number at once.
//!
//! Work arrives three ways: straight from the feed (a subject an event just woke, with the
//! row the feed wrote), from timers (a step asked to be looked at again after a while), and
//! from a periodic sweep of the work list in the database (at start, and as a safety net for
//! anything the first two missed). Only the sweep and the timers query the database; a woken
//! subject starts its step without another round trip, which keeps the reaction time to an
//! event low when hundreds of instances move at once.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{
    Failures, Finishing, Next, Processor, RunnerSettings, StepResult, ToWrite, Work, backoff,
    stopped,
};

/// What a finished step leaves for the dispatcher.
struct Finished {
    subject: String,
    /// When to look again, and the work to run then, if the step (or its failure) asked for
    /// it; newer work for the subject (an event during the step) replaces it.
    again: Option<(Duration, Work)>,
}

pub(super) struct Dispatcher {
    processor: Arc<dyn Processor>,
    pool: PgPool,
    settings: RunnerSettings,
    woken: mpsc::UnboundedReceiver<Vec<Work>>,
    /// Subjects whose step runs now.
    running: HashSet<String>,
    /// Due work, newest row per subject, in arrival order.
    pending: HashMap<String, Work>,
    order: VecDeque<String>,
    /// (when, subject): subjects to look at again, and the work to run then.
    timers: BTreeSet<(Instant, String)>,
    timed: HashMap<String, Work>,
    /// Subjects whose step returned but whose result is still being written to the work list:
    /// a sweep meanwhile would read the old row and repeat the step.
    finishing: Finishing,
    /// Subjects whose step finished while a sweep was reading the work list: the sweep may
    /// have read their row before the step's result was written.
    finished_while_sweeping: HashSet<String>,
    /// Failed steps in a row of the subjects whose last step failed (the feed reads it).
    failures: Failures,
    /// The work list's writer: step results go to it, behind the rows they concern.
    writes: mpsc::UnboundedSender<ToWrite>,
}

impl Dispatcher {
    pub(super) fn new(
        processor: Arc<dyn Processor>,
        pool: PgPool,
        settings: RunnerSettings,
        woken: mpsc::UnboundedReceiver<Vec<Work>>,
        failures: Failures,
        finishing: Finishing,
        writes: mpsc::UnboundedSender<ToWrite>,
    ) -> Self {
        Self {
            processor,
            pool,
            settings,
            woken,
            running: HashSet::new(),
            pending: HashMap::new(),
            order: VecDeque::new(),
            timers: BTreeSet::new(),
            timed: HashMap::new(),
            finishing,
            finished_while_sweeping: HashSet::new(),
            failures,
            writes,
        }
    }

    pub(super) async fn run(mut self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let name = self.processor.name();
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        // Everything already due when leading starts (including work a crashed leader left).
        // A sweep runs beside the loop, so that a slow query never holds up woken subjects.
        let mut next_sweep = Instant::now();
        let mut sweeping: Option<tokio::task::JoinHandle<anyhow::Result<Vec<Work>>>> = None;
        loop {
            if sweeping.is_none() && Instant::now() >= next_sweep {
                self.finished_while_sweeping.clear();
                sweeping = Some(tokio::spawn(self.sweep()));
            }
            self.fire_timers();
            self.dispatch(&mut tasks);
            metrics::gauge!("inferplane_processor_steps_running", "processor" => name)
                .set(self.running.len() as f64);
            metrics::gauge!("inferplane_processor_work_waiting", "processor" => name)
                .set((self.pending.len() + self.timers.len()) as f64);

            let mut wake_at = self.timers.first().map(|(at, _)| *at);
            if sweeping.is_none() {
                wake_at = Some(wake_at.map_or(next_sweep, |at| at.min(next_sweep)));
            }
            let wake_at = wake_at.unwrap_or_else(|| Instant::now() + self.settings.poll_interval);
            tokio::select! {
                _ = stopped(shutdown) => {
                    // Steps in flight are abandoned; their rows stay for the next leader.
                    tasks.abort_all();
                    if let Some(s) = sweeping.take() {
                        s.abort();
                    }
                    return Ok(());
                }
                swept = async { sweeping.as_mut().expect("guarded").await }, if sweeping.is_some() => {
                    sweeping = None;
                    next_sweep = Instant::now() + self.settings.poll_interval;
                    // Every row the sweep can have read has its work in the channel already
                    // (the feed queues a batch before it sends its work): take it first, so
                    // that the sweep's copy is known and not run as well.
                    while let Ok(works) = self.woken.try_recv() {
                        for w in works {
                            self.queue(w);
                        }
                    }
                    self.swept(swept.context("sweep panicked")??);
                }
                works = self.woken.recv() => match works {
                    Some(works) => {
                        for w in works {
                            self.queue(w);
                        }
                        // Take whatever else the feed sent meanwhile.
                        while let Ok(works) = self.woken.try_recv() {
                            for w in works {
                                self.queue(w);
                            }
                        }
                    }
                    None => return Ok(()),
                },
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    self.finished(done?, sweeping.is_some());
                    while let Some(done) = tasks.try_join_next() {
                        self.finished(done?, sweeping.is_some());
                    }
                }
                _ = tokio::time::sleep_until(wake_at.into()) => {}
            }
        }
    }

    fn queue(&mut self, work: Work) {
        match self.pending.get(&work.subject) {
            Some(old) if old.generation >= work.generation => {}
            Some(_) => {
                self.pending.insert(work.subject.clone(), work);
            }
            None => {
                self.order.push_back(work.subject.clone());
                self.pending.insert(work.subject.clone(), work);
            }
        }
    }

    fn finished(&mut self, done: Finished, sweeping: bool) {
        self.running.remove(&done.subject);
        if let Ok(mut failures) = self.failures.lock() {
            match &done.again {
                Some((_, work)) if work.failures > 0 => {
                    failures.insert(done.subject.clone(), work.failures);
                }
                _ => {
                    failures.remove(&done.subject);
                }
            }
        }
        if sweeping {
            self.finished_while_sweeping.insert(done.subject.clone());
        }
        // The step looked at the subject as it is now: a look asked for by an earlier step
        // is superseded.
        if self.timed.remove(&done.subject).is_some() {
            self.timers.retain(|(_, s)| *s != done.subject);
        }
        // Newer work for the subject (an event during the step) runs next anyway.
        if let Some((after, work)) = done.again
            && !self.pending.contains_key(&done.subject)
        {
            self.timers
                .insert((Instant::now() + after, done.subject.clone()));
            self.timed.insert(done.subject, work);
        }
    }

    /// Starts steps for pending subjects that are not running, up to the concurrency limit.
    fn dispatch(&mut self, tasks: &mut JoinSet<Finished>) {
        let mut blocked = Vec::new();
        while self.running.len() < self.settings.concurrency {
            let Some(subject) = self.order.pop_front() else {
                break;
            };
            if self.running.contains(&subject) {
                blocked.push(subject);
                continue;
            }
            let Some(mut work) = self.pending.remove(&subject) else {
                continue;
            };
            // The subject's count of failed steps as of now (the one place it is kept): a
            // step that failed while this work waited counts.
            work.failures = self
                .failures
                .lock()
                .ok()
                .and_then(|f| f.get(&subject).copied())
                .unwrap_or(0);
            self.running.insert(subject);
            let processor = self.processor.clone();
            let settings = self.settings.clone();
            let finishing = self.finishing.clone();
            let writes = self.writes.clone();
            tasks.spawn(run_step(processor, settings, finishing, writes, work));
        }
        // Subjects whose previous step still runs keep their place at the front.
        for subject in blocked.into_iter().rev() {
            self.order.push_front(subject);
        }
    }

    /// Subjects whose timer expired run again, unless newer work for them came meanwhile.
    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            let Some((_, subject)) = self.timers.pop_first() else {
                break;
            };
            if let Some(work) = self.timed.remove(&subject)
                && !self.pending.contains_key(&subject)
                && !self.running.contains(&subject)
            {
                self.queue(work);
            }
        }
    }

    /// Reads every due row that is neither running, nor already queued, nor being finished.
    fn sweep(&self) -> impl std::future::Future<Output = anyhow::Result<Vec<Work>>> + 'static {
        let mut known: Vec<String> = self
            .running
            .iter()
            .chain(self.pending.keys())
            .cloned()
            .collect();
        if let Ok(finishing) = self.finishing.lock() {
            known.extend(finishing.keys().cloned());
        }
        // Subjects waiting on a timer: their rows look due (a poll's delay is not written).
        known.extend(self.timed.keys().cloned());
        let pool = self.pool.clone();
        let name = self.processor.name();
        async move {
            let rows = sqlx::query(
                "select subject, generation, failures, trigger_position, trigger_recorded_at,
                        correlation_id
                 from processor_work
                 where processor = $1 and due_at <= now() and subject <> all($2)
                 order by due_at
                 limit 10000",
            )
            .bind(name)
            .bind(&known)
            .fetch_all(&pool)
            .await?;
            rows.iter()
                .map(|r| Work::from_row(name, r).map_err(anyhow::Error::from))
                .collect()
        }
    }

    /// Queues what a sweep found, except subjects that started or finished a step meanwhile
    /// (their row, as read, is already handled).
    fn swept(&mut self, works: Vec<Work>) {
        let mut swept = HashSet::new();
        for work in works {
            if self.running.contains(&work.subject)
                || self.timed.contains_key(&work.subject)
                || self.finished_while_sweeping.contains(&work.subject)
            {
                continue;
            }
            swept.insert(work.subject.clone());
            self.queue(work);
        }
        self.finished_while_sweeping.clear();
        if !swept.is_empty() {
            self.timers.retain(|(_, s)| !swept.contains(s));
            self.timed.retain(|s, _| !swept.contains(s));
        }
    }
}

async fn run_step(
    processor: Arc<dyn Processor>,
    settings: RunnerSettings,
    finishing: Finishing,
    writes: mpsc::UnboundedSender<ToWrite>,
    work: Work,
) -> Finished {
    let name = processor.name();
    // Time due before starting: queued behind the subject's previous step or a free slot.
    metrics::histogram!("inferplane_processor_wait_seconds", "processor" => name)
        .record(work.woken_at.elapsed().as_secs_f64());
    if work.woken_by_event
        && work.failures == 0
        && let Some(at) = work.trigger_recorded_at
        && let Ok(d) = (Utc::now() - at).to_std()
    {
        metrics::histogram!("inferplane_processor_reaction_seconds", "processor" => name)
            .record(d.as_secs_f64());
        if let Some(observer) = &settings.reactions {
            (observer.0)(name, d);
        }
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
    // What to do next is known now; recording it in the work list is for durability only
    // (every update there is guarded by the row's generation), so the subject is released at
    // once instead of after another round trip.
    let again = match &result {
        Ok(Next::Done) => None,
        Ok(Next::After(after)) => Some((
            *after,
            Work {
                failures: 0,
                woken_by_event: false,
                trigger_event_type: None,
                ..work.clone()
            },
        )),
        Err(_) => {
            let failures = work.failures.saturating_add(1);
            Some((
                backoff(&settings, failures),
                Work {
                    failures,
                    woken_by_event: false,
                    trigger_event_type: None,
                    ..work.clone()
                },
            ))
        }
    };
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    if let Some(error) = &error {
        tracing::warn!(
            processor = name,
            subject = %work.subject,
            failures = work.failures.saturating_add(1),
            retry_in_ms = again.as_ref().map_or(0, |(d, _)| d.as_millis() as u64),
            %error,
            "step failed"
        );
    }
    let recorded = match (&result, error) {
        (Ok(Next::Done), _) => Some(StepResult::Done),
        // Looking again later after a success: the dispatcher's timer does it, and the row,
        // still due, is what a next leader repeats after a crash (level-triggered, harmless).
        // Writing the delay would cost a write per poll for nothing this leader needs.
        (Ok(Next::After(_)), _) if work.failures == 0 => None,
        (Ok(Next::After(after)), _) => Some(StepResult::Recovered { after: *after }),
        (Err(_), error) => Some(StepResult::Failed {
            failures: work.failures.saturating_add(1),
            after: again.as_ref().map(|(d, _)| *d).unwrap_or_default(),
            error: error.unwrap_or_default().chars().take(2000).collect(),
        }),
    };
    let subject = work.subject.clone();
    if let Some(result) = recorded {
        // Until it is written, a sweep would read the old row and repeat the step.
        if let Ok(mut f) = finishing.lock() {
            *f.entry(subject.clone()).or_default() += 1;
        }
        let sent = writes.send(ToWrite::Result {
            subject: subject.clone(),
            generation: work.generation,
            result,
        });
        if sent.is_err() {
            // Leading is ending: the row stays, and the next leader repeats the step.
            if let Ok(mut f) = finishing.lock() {
                super::release_finishing(&mut f, &subject);
            }
        }
    }
    Finished { subject, again }
}
