//! The one LISTEN connection of a process.
//!
//! Readers (projection runners, the live stream hub) never listen themselves: they wait on a
//! [`WakeUps`] receiver and then read from the table. A notification only says "something was
//! appended"; after a lost connection the notifier wakes everyone so they catch up from their
//! own checkpoints, since notifications sent meanwhile are gone.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::NOTIFY_CHANNEL;
use crate::tap::EventTap;

/// Changes whenever readers should look at the store again; carries the process's shared
/// [`EventTap`], through which its readers read.
#[derive(Clone)]
pub struct WakeUps {
    rx: watch::Receiver<u64>,
    tap: Arc<EventTap>,
}

impl WakeUps {
    /// Marks the wake-ups so far as seen.
    pub fn borrow_and_update(&mut self) -> u64 {
        *self.rx.borrow_and_update()
    }

    /// Resolves at the next wake-up not yet seen; fails when the notifier is gone.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.rx.changed().await
    }

    /// The process's shared reader of new events.
    pub fn tap(&self) -> &EventTap {
        &self.tap
    }
}

/// Holds the process's LISTEN connection and fans wake-ups out in memory.
pub struct Notifier {
    sender: watch::Sender<u64>,
    tap: Arc<EventTap>,
    task: JoinHandle<()>,
}

impl Notifier {
    /// Starts listening on `pool`'s database.
    pub fn spawn(pool: PgPool) -> Self {
        let (sender, _) = watch::channel(0);
        let tap = Arc::new(EventTap::new(sender.subscribe()));
        let task = tokio::spawn(listen(pool, sender.clone()));
        Self { sender, tap, task }
    }

    pub fn subscribe(&self) -> WakeUps {
        WakeUps {
            rx: self.sender.subscribe(),
            tap: self.tap.clone(),
        }
    }

    /// Wakes every reader, e.g. after an append made by this process.
    pub fn wake(&self) {
        self.sender.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(pool: PgPool, sender: watch::Sender<u64>) {
    let wake = || sender.send_modify(|n| *n = n.wrapping_add(1));
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the LISTEN connection; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        // Anything appended before LISTEN took effect must be caught up by the readers.
        wake();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => {
                    metrics::counter!("inferplane_notify_wakeups_total").increment(1);
                    wake();
                }
                // The connection was lost and sqlx reconnected: notifications were missed.
                Ok(None) => {
                    tracing::info!("LISTEN connection re-established; readers catch up");
                    metrics::counter!("inferplane_notify_reconnects_total").increment(1);
                    wake();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                    wake();
                    break;
                }
            }
        }
    }
}
