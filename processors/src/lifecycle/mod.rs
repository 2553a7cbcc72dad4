//! The instance lifecycle's process managers and what they share.
//!
//! | processor      | looks after instances that are            | side effect                          |
//! |----------------|-------------------------------------------|--------------------------------------|
//! | `provisioning` | requested, provisioning                   | volume, server, power-on, IP         |
//! | `bootstrap`    | booting, installing, starting             | SSH/bootstrap (an [`Installer`]), readiness probes |
//! | `watchdog`     | ready, unavailable, draining              | looks for servers stopped or deleted behind our back, stale worker heartbeats |
//! | `terminator`   | terminating, failed with resources left   | power off, delete server and every volume |
//! | `reconciler`   | every zone, periodically                  | reaps tagged orphans, records missing servers |
//!
//! Every provider resource carries the tags [`OWNER_TAG`] and
//! [`instance_tag`](crate::settings::instance_tag), and every step looks resources up by tag
//! before creating one, so a step repeated after a crash finds what the first run made.

mod bootstrap;
mod installer;
mod provisioning;
mod reconciler;
pub mod ssh;
mod terminator;
mod watchdog;
pub mod worker_credentials;

use std::sync::Arc;

use inferplane_domain::instance::{
    Instance, InstanceCommand, InstanceError, InstanceId, InstanceState,
};
use inferplane_scaleway::ScalewayClient;
use inferplane_store::{CommandContext, CommandError, EventStore, StoredEvent};

pub use bootstrap::Bootstrap;
pub use installer::{
    AgentLaunch, InstallContext, InstallError, Installer, LocalInstaller, PhaseSink,
};
pub use provisioning::Provisioning;
pub use reconciler::Reconciler;
pub use ssh::{ScriptFlavour, SshConfig, SshInstaller};
pub use terminator::Terminator;
pub use watchdog::Watchdog;

use crate::runtime::{Next, Processor, Work};
use crate::settings::LifecycleSettings;

/// What the lifecycle processors share: the store, the provider, the settings.
pub struct Lifecycle {
    pub store: EventStore,
    pub cloud: ScalewayClient,
    pub settings: LifecycleSettings,
    pub installer: Arc<dyn Installer>,
    /// Zones the reconciler sweeps.
    pub zones: Vec<String>,
}

/// The outcome of recording a fact on an instance.
pub enum Recorded {
    /// Accepted (possibly as a no-op: the fact was already recorded).
    Accepted(Box<InstanceState>),
    /// The aggregate refused it: the instance moved on (terminated meanwhile, ...).
    Refused(InstanceError),
}

impl Lifecycle {
    /// Every lifecycle processor, ready for a [`ProcessorRunner`](crate::ProcessorRunner).
    pub fn processors(self: &Arc<Self>) -> Vec<Arc<dyn Processor>> {
        vec![
            Arc::new(Provisioning::new(self.clone())),
            Arc::new(Bootstrap::new(self.clone())),
            Arc::new(Watchdog::new(self.clone())),
            Arc::new(Terminator::new(self.clone())),
            Arc::new(Reconciler::new(self.clone())),
        ]
    }

    /// The instance as its events say now; `None` if it was never requested.
    pub async fn load(&self, id: InstanceId) -> anyhow::Result<Option<InstanceState>> {
        Ok(self.load_versioned(id).await?.map(|(s, _)| s))
    }

    /// The instance and its version (last sequence).
    pub async fn load_versioned(
        &self,
        id: InstanceId,
    ) -> anyhow::Result<Option<(InstanceState, i64)>> {
        let loaded = self.store.load::<Instance>(&id.to_string(), None).await?;
        Ok(loaded.aggregate.state.map(|s| (s, loaded.version)))
    }

    /// How long ago the latest of `event_types` was recorded for the instance: the time spent
    /// in the phase those events start (timeouts are measured from the history, not from the
    /// processor's memory, so they survive restarts).
    pub async fn time_since(
        &self,
        id: InstanceId,
        event_types: &[&str],
    ) -> anyhow::Result<Option<std::time::Duration>> {
        let secs: Option<f64> = sqlx::query_scalar(
            "select extract(epoch from (now() - max(recorded_at)))::float8 from events
             where aggregate_type = 'instance' and aggregate_id = $1 and event_type = any($2)",
        )
        .bind(id.to_string())
        .bind(event_types)
        .fetch_one(self.store.pool())
        .await?;
        Ok(secs.map(|s| std::time::Duration::from_secs_f64(s.max(0.0))))
    }

    /// Records `command` on the instance with the step's metadata.
    pub async fn record(
        &self,
        work: &Work,
        id: InstanceId,
        command: InstanceCommand,
    ) -> anyhow::Result<Recorded> {
        let ctx = CommandContext::new(work.metadata());
        // Without If-Match the store decides again on the new state after a race.
        match self
            .store
            .execute::<Instance>(&id.to_string(), command.clone(), &(), &ctx)
            .await
        {
            Ok(outcome) => Ok(match outcome.aggregate.state {
                Some(s) => Recorded::Accepted(Box::new(s)),
                None => Recorded::Refused(InstanceError::NotFound),
            }),
            Err(CommandError::Rejected(e)) => {
                tracing::debug!(processor = work.processor, instance = %id, command = command.name(), reason = %e, "outcome refused");
                Ok(Recorded::Refused(e))
            }
            Err(e) => Err(anyhow::anyhow!("recording {}: {e}", command.name())),
        }
    }
}

impl Lifecycle {
    /// Fails the instance with `code` (the first failure wins; the terminator then releases
    /// whatever it holds).
    pub async fn fail(
        &self,
        work: &Work,
        id: InstanceId,
        code: inferplane_domain::instance::FailureCode,
        message: String,
    ) -> anyhow::Result<()> {
        tracing::warn!(processor = work.processor, instance = %id, code = code.as_str(), %message, "instance failed");
        self.record(work, id, InstanceCommand::Fail { code, message })
            .await?;
        Ok(())
    }
}

/// A processor that moves an instance forward one thing at a time.
#[async_trait::async_trait]
pub(crate) trait InstanceSteps: Send + Sync {
    fn lifecycle(&self) -> &Lifecycle;
    /// Does the next thing the instance, as loaded, needs: `Done` once it recorded something
    /// (or has nothing left to do), `After` to wait.
    async fn once(&self, work: &Work, id: InstanceId, inst: InstanceState) -> anyhow::Result<Next>;
}

/// Rounds of a step: after each recorded outcome the instance is loaded again and the next
/// thing done at once, until the processor has to wait or nothing changes any more. A
/// processor's own events therefore need not wake it (see [`Processor::wakes`]): the chain
/// continues inside the step, which is what keeps the reaction to other parties' events short.
pub(crate) async fn drive(p: &dyn InstanceSteps, work: &Work) -> anyhow::Result<Next> {
    const MAX_ROUNDS: usize = 32;
    let id = subject_id(work)?;
    let mut seen = None;
    for _ in 0..MAX_ROUNDS {
        let Some((inst, version)) = p.lifecycle().load_versioned(id).await? else {
            return Ok(Next::Done);
        };
        if seen == Some(version) {
            // The last round recorded nothing: done until another party wakes the instance.
            return Ok(Next::Done);
        }
        seen = Some(version);
        match p.once(work, id, inst).await? {
            Next::Done => continue,
            wait => return Ok(wait),
        }
    }
    Ok(Next::After(p.lifecycle().settings.provider_poll_interval))
}

/// The instance an event is about, if it is an instance event of one of `types`.
pub(crate) fn instance_event(event: &StoredEvent, types: &[&str]) -> Option<String> {
    (event.aggregate_type == <Instance as cqrs_es::Aggregate>::TYPE
        && types.contains(&event.event_type.as_str()))
    .then(|| event.aggregate_id.clone())
}

/// The instance id of a work subject.
pub(crate) fn subject_id(work: &Work) -> anyhow::Result<InstanceId> {
    Ok(InstanceId(uuid::Uuid::parse_str(&work.subject)?))
}
