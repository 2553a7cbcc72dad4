//! The life of one accepted inference request: queue, prefill, tokens, end.
//!
//! A [`Run`] is created when the scheduler accepts a request and owns its queue place or slot.
//! Its methods advance the simulated timeline with tokio timers (scaled by the `slow` fault)
//! and update the model's metrics as they go, so `/metrics` moves while requests run. Whatever
//! ends a run early (client disconnect dropping the response, hard stop of the engine) drops
//! it, and `Drop` releases the slot and records the request as aborted and cancelled.
//!
//! [`generate`] turns a run and its sequence plans into a stream of [`GenEvent`]s, the single
//! driver behind streaming and non-streaming chat and completions.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::time::Instant;

use super::error::ApiError;
use super::fault::Fault;
use super::metrics::ModelMetrics;
use super::prompt::Prompt;
use super::scheduler::{Reservation, ScheduleError, Slot};
use super::state::{Engine, ModelRuntime};
use super::stats::StatsCounters;
use super::text::{FinishReason, SequencePlan};

/// An accepted request.
#[derive(Debug)]
pub(crate) struct Run {
    engine: Arc<Engine>,
    model: Arc<ModelRuntime>,
    sequences: u32,
    arrival: Instant,
    reservation: Option<Reservation>,
    slot: Option<Slot>,
    last_token_at: Option<Instant>,
    settled: bool,
}

impl Run {
    /// Asks the model's scheduler for places for `sequences` sequences. A batch larger than
    /// `--max-num-seqs` takes every slot rather than being refused.
    pub(crate) fn reserve(
        engine: &Arc<Engine>,
        model: &Arc<ModelRuntime>,
        sequences: u32,
        arrival: Instant,
    ) -> Result<Self, ApiError> {
        let slots = sequences.clamp(1, engine.config.max_num_seqs.max(1));
        let reservation = model.scheduler.reserve(slots).map_err(|err| match err {
            ScheduleError::QueueFull => ApiError::Overloaded("the waiting queue is full"),
            ScheduleError::Closed | ScheduleError::TooManySequences => {
                ApiError::Overloaded("the engine cannot schedule the request")
            }
        })?;
        engine
            .stats
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Self {
            engine: engine.clone(),
            model: model.clone(),
            sequences,
            arrival,
            reservation: Some(reservation),
            slot: None,
            last_token_at: None,
            settled: false,
        })
    }

    fn metrics(&self) -> &ModelMetrics {
        &self.model.metrics
    }

    /// Waits for the slot; records the queue time.
    pub(crate) async fn admit(&mut self) -> Result<(), ScheduleError> {
        if let Some(reservation) = self.reservation.take() {
            self.slot = Some(reservation.admit().await?);
            self.metrics()
                .request_queue_time
                .observe_n(self.arrival.elapsed(), u64::from(self.sequences));
        }
        Ok(())
    }

    /// Sleeps `millis` scaled by the `slow` fault.
    async fn pause(&self, millis: u64) {
        let factor = self.engine.fault().latency_factor();
        let delay = Duration::from_secs_f64(millis as f64 * factor / 1000.0);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// The prefill: waits the time to first token, queries the prefix cache and counts the
    /// prompt tokens. Returns the cached prompt tokens.
    pub(crate) async fn prefill(&mut self, prompts: &[Prompt]) -> u64 {
        self.pause(self.engine.config.ttft_ms).await;
        let mut cached = 0;
        let mut prompt_tokens = 0;
        {
            let mut cache = self
                .model
                .prefix_cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for prompt in prompts {
                cached += cache.query(prompt.ids());
                prompt_tokens += prompt.len() as u64;
            }
        }
        let metrics = self.metrics();
        ModelMetrics::add(&metrics.prompt_tokens, prompt_tokens);
        ModelMetrics::add(&metrics.prefix_cache_queries, prompt_tokens);
        ModelMetrics::add(&metrics.prefix_cache_hits, cached);
        metrics
            .time_to_first_token
            .observe_n(self.arrival.elapsed(), u64::from(self.sequences));
        if let Some(slot) = &mut self.slot {
            slot.hold_kv(prompt_tokens);
        }
        cached
    }

    /// Waits one inter-token latency.
    pub(crate) async fn decode_pause(&self) {
        self.pause(self.engine.config.itl_ms).await;
    }

    /// Counts `tokens` generated now (one per sequence still running).
    pub(crate) fn emit(&mut self, tokens: u64) {
        let now = Instant::now();
        let metrics = &self.model.metrics;
        ModelMetrics::add(&metrics.generation_tokens, tokens);
        if let Some(previous) = self.last_token_at {
            metrics
                .inter_token_latency
                .observe_n(now.duration_since(previous), tokens);
        }
        self.last_token_at = Some(now);
        if let Some(slot) = &mut self.slot {
            slot.hold_kv(tokens);
        }
    }

    /// Whether an injected fault kills the request before token `tick` of `ticks`.
    pub(crate) fn dies_before(&self, tick: usize, ticks: usize) -> bool {
        match self.engine.fault() {
            Fault::Dead => true,
            Fault::DieMidStream { after_tokens } => {
                tick >= (after_tokens as usize).min(ticks.saturating_sub(1))
            }
            _ => false,
        }
    }

    /// Records a complete answer.
    pub(crate) fn finish(mut self, reasons: impl IntoIterator<Item = FinishReason>) {
        let elapsed = self.arrival.elapsed();
        let metrics = &self.model.metrics;
        for reason in reasons {
            metrics.record_finish(reason, 1);
        }
        metrics
            .e2e_request_latency
            .observe_n(elapsed, u64::from(self.sequences));
        StatsCounters::bump(&self.engine.stats.succeeded);
        self.settled = true;
    }

    /// Records a request killed by a fault and releases its slot.
    pub(crate) fn fail(&mut self) {
        if self.settled {
            return;
        }
        self.model
            .metrics
            .record_finish(FinishReason::Abort, u64::from(self.sequences));
        StatsCounters::bump(&self.engine.stats.failed);
        self.settled = true;
        self.slot = None;
        self.reservation = None;
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Release the slot before the counters, so observers never see a finished request
        // still holding its place.
        self.slot = None;
        self.reservation = None;
        if !self.settled {
            self.model
                .metrics
                .record_finish(FinishReason::Abort, u64::from(self.sequences));
            StatsCounters::bump(&self.engine.stats.cancelled);
        }
        self.engine
            .stats
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One generated token of one sequence.
#[derive(Debug, Clone)]
pub(crate) struct TokenOut {
    /// The sequence (choice index).
    pub sequence: u32,
    /// Visible text (empty when clipped by a stop string).
    pub text: String,
    /// Set on the sequence's last token.
    pub finish: Option<(FinishReason, Option<String>)>,
}

/// What [`generate`] reports, in order.
#[derive(Debug, Clone)]
pub(crate) enum GenEvent {
    /// The prefill is done; the first tokens follow at once.
    Prefilled { cached_tokens: u64 },
    /// One token for each sequence still generating.
    Tokens(Vec<TokenOut>),
    /// Every sequence ended normally (already recorded in the metrics).
    Finished,
    /// A fault killed the request (already recorded); the response must be cut short.
    Died,
}

/// Drives `run` through `plans`; dropping the stream cancels the request.
pub(crate) fn generate(
    mut run: Run,
    prompts: Vec<Prompt>,
    plans: Arc<Vec<SequencePlan>>,
) -> impl Stream<Item = GenEvent> + Send + 'static {
    async_stream::stream! {
        if run.admit().await.is_err() {
            run.fail();
            yield GenEvent::Died;
            return;
        }
        let cached_tokens = run.prefill(&prompts).await;
        yield GenEvent::Prefilled { cached_tokens };
        let ticks = plans.iter().map(SequencePlan::tokens).max().unwrap_or(0);
        for tick in 0..ticks {
            if tick > 0 {
                run.decode_pause().await;
            }
            if run.dies_before(tick, ticks) {
                run.fail();
                yield GenEvent::Died;
                return;
            }
            let tokens: Vec<TokenOut> = plans
                .iter()
                .enumerate()
                .filter(|(_, plan)| tick < plan.tokens())
                .map(|(sequence, plan)| TokenOut {
                    sequence: sequence as u32,
                    text: plan.pieces[tick].clone(),
                    finish: (tick + 1 == plan.tokens())
                        .then(|| (plan.finish, plan.stop_reason.clone())),
                })
                .collect();
            run.emit(tokens.len() as u64);
            yield GenEvent::Tokens(tokens);
        }
        run.finish(plans.iter().map(|plan| plan.finish));
        yield GenEvent::Finished;
    }
}
