//! The watchdog: keeps looking at the servers of serving instances.
//!
//! For ready, unavailable and draining instances, every watchdog interval: a server gone at
//! the provider is recorded (the instance fails with `PROVIDER_SERVER_DELETED` and the
//! terminator deletes its volumes); a server stopped behind our back is recorded (the
//! instance becomes unavailable); a ready instance whose engine stops answering is marked
//! unavailable, and an unavailable one whose server runs and whose engine answers again is
//! marked ready.

use std::sync::Arc;

use inferplane_domain::instance::{InstanceCommand, InstanceStatus, ReadinessCheck};
use inferplane_scaleway::ServerState;
use inferplane_store::StoredEvent;

use super::{Lifecycle, instance_event, subject_id};
use crate::probes::Probes;
use crate::runtime::{Next, Processor, Work};

const WAKES: &[&str] = &[
    "InstanceReady",
    "InstanceUnavailable",
    "DrainStarted",
    "ProviderServerStopped",
];

pub struct Watchdog {
    lc: Arc<Lifecycle>,
    probes: Probes,
}

impl Watchdog {
    pub fn new(lc: Arc<Lifecycle>) -> Self {
        Self {
            probes: Probes::new(std::time::Duration::from_secs(5)),
            lc,
        }
    }
}

#[async_trait::async_trait]
impl Processor for Watchdog {
    fn name(&self) -> &'static str {
        "watchdog"
    }

    fn wakes(&self, event: &StoredEvent) -> Option<String> {
        instance_event(event, WAKES)
    }

    async fn step(&self, work: &Work) -> anyhow::Result<Next> {
        let id = subject_id(work)?;
        let Some(inst) = self.lc.load(id).await? else {
            return Ok(Next::Done);
        };
        if !matches!(
            inst.status,
            InstanceStatus::Ready | InstanceStatus::Unavailable | InstanceStatus::Draining
        ) {
            return Ok(Next::Done);
        }
        let Some(server) = inst.live_server().cloned() else {
            return Ok(Next::Done);
        };
        let again = Next::After(self.lc.settings.watchdog_interval);
        let s = match self
            .lc
            .cloud
            .get_server(&server.zone, &server.server_id)
            .await
        {
            Ok(s) => s,
            Err(e) if e.is_not_found() => {
                tracing::warn!(instance = %id, server = %server.server_id, "server deleted at the provider");
                self.lc
                    .record(work, id, InstanceCommand::RecordProviderServerDeleted)
                    .await?;
                return Ok(Next::Done);
            }
            Err(e) => return Err(anyhow::Error::new(e).context("watching the server")),
        };
        match s.state {
            ServerState::Stopped | ServerState::StoppedInPlace => {
                if !server.stopped {
                    tracing::warn!(instance = %id, server = %server.server_id, "server stopped at the provider");
                    self.lc
                        .record(work, id, InstanceCommand::RecordProviderServerStopped)
                        .await?;
                }
                Ok(again)
            }
            ServerState::Running => {
                let Some(base) = self.lc.installer.engine_url(&inst) else {
                    return Ok(again);
                };
                let health = self.probes.engine_http_ok(&base).await;
                match (inst.status, health.ok) {
                    (InstanceStatus::Ready, false) => {
                        let cmd = InstanceCommand::MarkUnavailable {
                            reason: format!("engine health check failed: {}", health.detail),
                        };
                        self.lc.record(work, id, cmd).await?;
                    }
                    (InstanceStatus::Unavailable, true) => {
                        // Back to ready takes a fresh passing health check on record.
                        let cmd = InstanceCommand::RecordReadinessCheck {
                            check: ReadinessCheck::HealthCheck,
                            ok: true,
                            duration_ms: health.duration_ms,
                            detail: health.detail.clone(),
                        };
                        self.lc.record(work, id, cmd).await?;
                        self.lc.record(work, id, InstanceCommand::MarkReady).await?;
                    }
                    _ => {}
                }
                Ok(again)
            }
            _ => Ok(again),
        }
    }
}
