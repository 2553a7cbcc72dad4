//! The watchdog: keeps looking at the servers of serving instances.
//!
//! For ready, unavailable and draining instances, every watchdog interval: a server gone at
//! the provider is recorded (the instance fails with `PROVIDER_SERVER_DELETED` and the
//! terminator deletes its volumes); a server stopped behind our back is recorded (the
//! instance becomes unavailable); a ready instance whose engine stops answering is marked
//! unavailable, and an unavailable one whose server runs and whose engine answers again is
//! marked ready.
//!
//! An instance the bootstrap has just made ready (the step woken by its `InstanceReady`) is
//! first looked at one interval later: the bootstrap's readiness checks have just found its
//! engine answering.
//!
//! Worker heartbeats count too: a ready instance whose worker's last heartbeat is older than
//! the stale window (or that has been ready that long without any heartbeat of its current
//! install attempt) is recorded unhealthy and unavailable, with the age in the reason; when
//! fresh heartbeats say the engine serves again, it is recorded healthy and ready.

use std::sync::Arc;

use inferplane_domain::instance::{
    InstanceCommand, InstanceId, InstanceState, InstanceStatus, ReadinessCheck,
};
use inferplane_scaleway::ServerState;
use inferplane_store::StoredEvent;

use super::{Lifecycle, instance_event, subject_id};
use crate::probes::Probes;
use crate::runtime::{Next, Processor, WakeMemory, Work};

const WAKES: &[&str] = &[
    "InstanceReady",
    "InstanceUnavailable",
    "DrainStarted",
    "ProviderServerStopped",
    // Heartbeats resumed (or stopped saying the engine serves): act now, not at the interval.
    "WorkerHealthChanged",
];

/// What the heartbeats say about an instance's worker.
enum Heartbeats {
    /// A heartbeat of the current install attempt within the window, with the agent's status.
    Fresh { ready: bool },
    /// Too old, or none for too long: the reason to record.
    Stale(String),
    /// None yet, but the instance has not been ready for a whole window.
    NotYet,
}

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

    fn wakes(&self, event: &StoredEvent, _memory: &mut WakeMemory) -> Option<String> {
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
        // Often enough to notice a stale worker within about half a window.
        let again = Next::After(
            self.lc
                .settings
                .watchdog_interval
                .min(self.lc.settings.worker_stale_after / 2)
                .max(std::time::Duration::from_millis(10)),
        );
        if work.woken_by_event
            && work.trigger_event_type.as_deref() == Some("InstanceReady")
            && inst.status == InstanceStatus::Ready
        {
            // Just made ready by the bootstrap, which has this moment found the engine
            // answering on the server (its health check): the first look is one interval on.
            // Looking again now would double, for every instance of a burst at once, the
            // provider and engine calls its readiness checks just made. An event after this
            // one that concerns the watchdog wakes it with its own type.
            return Ok(again);
        }
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
                let beats = self.heartbeats(id, &inst).await?;
                match (inst.status, health.ok, beats) {
                    (InstanceStatus::Ready, false, _) => {
                        let cmd = InstanceCommand::MarkUnavailable {
                            reason: format!("engine health check failed: {}", health.detail),
                        };
                        self.lc.record(work, id, cmd).await?;
                    }
                    (InstanceStatus::Ready, true, Heartbeats::Stale(reason)) => {
                        tracing::warn!(instance = %id, %reason, "worker stale");
                        if inst.worker.is_some() {
                            let cmd = InstanceCommand::RecordWorkerHealth {
                                healthy: false,
                                reason: reason.clone(),
                            };
                            self.lc.record(work, id, cmd).await?;
                        }
                        self.lc
                            .record(work, id, InstanceCommand::MarkUnavailable { reason })
                            .await?;
                    }
                    (
                        InstanceStatus::Unavailable,
                        true,
                        beats @ (Heartbeats::Fresh { ready: true } | Heartbeats::NotYet),
                    ) => {
                        let fresh = matches!(beats, Heartbeats::Fresh { .. });
                        if fresh
                            && inst
                                .worker
                                .as_ref()
                                .is_some_and(|w| w.healthy != Some(true))
                        {
                            let cmd = InstanceCommand::RecordWorkerHealth {
                                healthy: true,
                                reason: "fresh heartbeats: the engine serves the model".into(),
                            };
                            self.lc.record(work, id, cmd).await?;
                        }
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

impl Watchdog {
    /// The freshness of the instance's worker, from `worker_telemetry` and the history.
    async fn heartbeats(&self, id: InstanceId, inst: &InstanceState) -> anyhow::Result<Heartbeats> {
        let window = self.lc.settings.worker_stale_after;
        let row: Option<(f64, String, i32)> = sqlx::query_as(
            "select extract(epoch from now() - last_heartbeat_at)::float8, status, install_attempt
               from worker_telemetry where instance_id = $1",
        )
        .bind(id.0)
        .fetch_optional(self.lc.store.pool())
        .await?;
        let current = row.filter(|(_, _, attempt)| *attempt as u32 == inst.install.attempt);
        if let Some((age, status, _)) = current {
            let age = std::time::Duration::from_secs_f64(age.max(0.0));
            return Ok(if age > window {
                Heartbeats::Stale(format!("worker heartbeat stale for {} s", age.as_secs()))
            } else {
                Heartbeats::Fresh {
                    ready: status == "ready",
                }
            });
        }
        // No heartbeat of this install attempt: stale once it has been serving for a whole
        // window, counted from its first `InstanceReady` of the attempt (so that going
        // unavailable and back does not restart the count).
        let ready_for: Option<f64> = sqlx::query_scalar(
            "select extract(epoch from now() - min(recorded_at))::float8 from events
              where aggregate_type = 'instance' and aggregate_id = $1
                and event_type = 'InstanceReady'
                and sequence > coalesce((select max(sequence) from events
                      where aggregate_type = 'instance' and aggregate_id = $1
                        and event_type = 'ReinstallRequested'), 0)",
        )
        .bind(id.to_string())
        .fetch_one(self.lc.store.pool())
        .await?;
        let ready_for = std::time::Duration::from_secs_f64(ready_for.unwrap_or(0.0).max(0.0));
        Ok(if ready_for > window {
            Heartbeats::Stale(format!(
                "no worker heartbeat in {} s since the instance became ready",
                ready_for.as_secs()
            ))
        } else {
            Heartbeats::NotYet
        })
    }
}
