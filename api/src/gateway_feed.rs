//! Keeps the gateway's in-memory tables current from this process's live stream hub.
//!
//! Subscribe first, then load every relevant event up to the hub's cursor, then apply each
//! batch the hub publishes after that cursor: nothing is missed or applied twice. A receiver
//! that falls too far behind (the hub dropped batches for it) reloads from the store.

use std::sync::Arc;
use std::time::Duration;

use inferplane_gateway::Gateway;
use inferplane_store::Cursor;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use crate::hub::{HubBatch, StreamHub};

/// A gateway whose tables are loaded, ready to follow the hub.
pub struct Feed {
    gateway: Arc<Gateway>,
    hub: StreamHub,
    rx: broadcast::Receiver<HubBatch>,
    applied: Cursor,
}

/// Loads the gateway's tables; they reflect the stream up to the hub's cursor on return.
pub async fn prime(gateway: Arc<Gateway>, hub: StreamHub) -> anyhow::Result<Feed> {
    let rx = hub.subscribe();
    let applied = hub.cursor();
    let n = gateway.load(applied).await?;
    tracing::debug!(events = n, "gateway tables loaded");
    Ok(Feed {
        gateway,
        hub,
        rx,
        applied,
    })
}

impl Feed {
    /// Applies the hub's batches until `stop`.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let batch = tokio::select! {
                b = self.rx.recv() => b,
                _ = stop.changed() => return,
            };
            match batch {
                Ok(batch) => {
                    for e in batch.iter() {
                        if e.event.cursor() > self.applied {
                            self.gateway.apply(&e.event);
                            self.applied = e.event.cursor();
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(
                        batches = n,
                        "gateway fell behind the live stream; reloading"
                    );
                    loop {
                        self.rx = self.hub.subscribe();
                        self.applied = self.hub.cursor();
                        match self.gateway.load(self.applied).await {
                            Ok(_) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "gateway cannot reload; retrying");
                                tokio::select! {
                                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                    _ = stop.changed() => return,
                                }
                            }
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}
