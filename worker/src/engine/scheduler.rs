//! Admission control of one model: at most `max_num_seqs` sequences run at once, up to
//! `max_waiting` more wait in FIFO order, and the rest are refused.
//!
//! Like vLLM's scheduler, the unit is the sequence (a completions request with a batch of
//! prompts counts once per prompt). A request first [`reserve`](Scheduler::reserve)s, which
//! decides synchronously between "runs now", "waits" and "refused" (so a streaming response
//! can answer 503 before committing to a 200), then [`admit`](Reservation::admit)s, which waits
//! for its turn. Every counter is released by `Drop`, so a client that disconnects while
//! queued or generating frees its place at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Why a request cannot be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScheduleError {
    #[error("the waiting queue is full")]
    QueueFull,
    #[error("the request has more sequences than the engine runs at once")]
    TooManySequences,
    #[error("the scheduler is closed")]
    Closed,
}

/// The scheduler of one model.
#[derive(Debug)]
pub(crate) struct Scheduler {
    permits: Arc<Semaphore>,
    max_num_seqs: u32,
    max_waiting: u64,
    running: AtomicU64,
    waiting: AtomicU64,
    kv_tokens: AtomicU64,
    kv_capacity: u64,
}

impl Scheduler {
    pub(crate) fn new(max_num_seqs: u32, max_waiting: u32, kv_capacity: u64) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max_num_seqs as usize)),
            max_num_seqs,
            max_waiting: u64::from(max_waiting),
            running: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            kv_tokens: AtomicU64::new(0),
            kv_capacity: kv_capacity.max(1),
        })
    }

    /// Sequences generating now.
    pub(crate) fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Sequences waiting for a slot.
    pub(crate) fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Fraction of the simulated KV cache held by running sequences (0 to 1).
    pub(crate) fn kv_usage(&self) -> f64 {
        let used = self.kv_tokens.load(Ordering::Relaxed) as f64;
        (used / self.kv_capacity as f64).min(1.0)
    }

    /// Takes a slot for `seqs` sequences now, or a place in the queue, or refuses.
    pub(crate) fn reserve(self: &Arc<Self>, seqs: u32) -> Result<Reservation, ScheduleError> {
        if seqs == 0 || seqs > self.max_num_seqs {
            return Err(ScheduleError::TooManySequences);
        }
        match self.permits.clone().try_acquire_many_owned(seqs) {
            Ok(permit) => Ok(Reservation::Granted(Slot::new(self.clone(), permit, seqs))),
            Err(TryAcquireError::NoPermits) => {
                let seqs64 = u64::from(seqs);
                let before = self.waiting.fetch_add(seqs64, Ordering::Relaxed);
                if before + seqs64 > self.max_waiting {
                    self.waiting.fetch_sub(seqs64, Ordering::Relaxed);
                    return Err(ScheduleError::QueueFull);
                }
                Ok(Reservation::Queued(QueuePlace {
                    scheduler: self.clone(),
                    seqs,
                }))
            }
            Err(TryAcquireError::Closed) => Err(ScheduleError::Closed),
        }
    }
}

/// A decision of [`Scheduler::reserve`].
#[derive(Debug)]
pub(crate) enum Reservation {
    Granted(Slot),
    Queued(QueuePlace),
}

impl Reservation {
    /// Waits for the slot (immediately when granted).
    pub(crate) async fn admit(self) -> Result<Slot, ScheduleError> {
        match self {
            Self::Granted(slot) => Ok(slot),
            Self::Queued(place) => {
                let permit = place
                    .scheduler
                    .permits
                    .clone()
                    .acquire_many_owned(place.seqs)
                    .await
                    .map_err(|_| ScheduleError::Closed)?;
                let slot = Slot::new(place.scheduler.clone(), permit, place.seqs);
                drop(place);
                Ok(slot)
            }
        }
    }
}

/// A place in the queue; leaving it (admission or cancellation) is counted on drop.
#[derive(Debug)]
pub(crate) struct QueuePlace {
    scheduler: Arc<Scheduler>,
    seqs: u32,
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.scheduler
            .waiting
            .fetch_sub(u64::from(self.seqs), Ordering::Relaxed);
    }
}

/// Running sequences and the KV cache they hold; released on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    scheduler: Arc<Scheduler>,
    _permit: OwnedSemaphorePermit,
    seqs: u32,
    kv_held: u64,
}

impl Slot {
    fn new(scheduler: Arc<Scheduler>, permit: OwnedSemaphorePermit, seqs: u32) -> Self {
        scheduler
            .running
            .fetch_add(u64::from(seqs), Ordering::Relaxed);
        Self {
            scheduler,
            _permit: permit,
            seqs,
            kv_held: 0,
        }
    }

    /// Accounts `tokens` more KV-cache tokens to this slot.
    pub(crate) fn hold_kv(&mut self, tokens: u64) {
        self.kv_held += tokens;
        self.scheduler
            .kv_tokens
            .fetch_add(tokens, Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.scheduler
            .running
            .fetch_sub(u64::from(self.seqs), Ordering::Relaxed);
        self.scheduler
            .kv_tokens
            .fetch_sub(self.kv_held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_then_refuse_then_release() -> Result<(), ScheduleError> {
        let scheduler = Scheduler::new(1, 1, 100);
        let first = scheduler.reserve(1)?.admit().await?;
        assert_eq!(scheduler.running(), 1);
        let queued = scheduler.reserve(1)?;
        assert!(matches!(queued, Reservation::Queued(_)));
        assert_eq!(scheduler.waiting(), 1);
        assert_eq!(scheduler.reserve(1).err(), Some(ScheduleError::QueueFull));
        let waiter = tokio::spawn(queued.admit());
        drop(first);
        let second = waiter.await.map_err(|_| ScheduleError::Closed)??;
        assert_eq!((scheduler.running(), scheduler.waiting()), (1, 0));
        drop(second);
        assert_eq!(scheduler.running(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn cancelled_waiter_leaves_the_queue_and_kv_is_released() -> Result<(), ScheduleError> {
        let scheduler = Scheduler::new(1, 4, 100);
        let mut slot = scheduler.reserve(1)?.admit().await?;
        slot.hold_kv(50);
        assert!((scheduler.kv_usage() - 0.5).abs() < 1e-9);
        let queued = scheduler.reserve(1)?;
        assert_eq!(scheduler.waiting(), 1);
        drop(queued);
        assert_eq!(scheduler.waiting(), 0);
        drop(slot);
        assert_eq!(scheduler.kv_usage(), 0.0);
        assert_eq!(
            scheduler.reserve(2).err(),
            Some(ScheduleError::TooManySequences)
        );
        Ok(())
    }
}
