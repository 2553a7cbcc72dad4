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

use std::cell::RefCell;
use std::sync::Arc;

use inferplane_domain::instance::{
    Instance, InstanceCommand, InstanceError, InstanceId, InstanceState,
};
use inferplane_scaleway::ScalewayClient;
use inferplane_store::{CommandContext, CommandError, EventStore, Loaded, StoredEvent};

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
    /// Each instance as last loaded or changed here (start with `InstanceCache::default()`).
    pub instances: InstanceCache,
}

/// The instances as the lifecycle processors last loaded or changed them, so that a step
/// reads only the events that are new since (a polling step, most of them, reads none)
/// instead of the instance's whole history every time. It only ever holds committed states,
/// and reading on from one is what a full load returns: it saves work, never changes an
/// answer. Ended instances leave it; past [`InstanceCache::MAX`] entries it starts afresh.
#[derive(Default)]
pub struct InstanceCache(std::sync::Mutex<std::collections::HashMap<InstanceId, Loaded<Instance>>>);

impl InstanceCache {
    /// Entries kept at most (about a few kilobytes each).
    pub const MAX: usize = 10_000;

    fn get(&self, id: InstanceId) -> Option<Loaded<Instance>> {
        self.0.lock().ok()?.get(&id).cloned()
    }

    /// Keeps `loaded` unless a later version of the instance is already kept.
    fn keep(&self, id: InstanceId, loaded: &Loaded<Instance>) {
        let Ok(mut map) = self.0.lock() else {
            return;
        };
        let ended = loaded
            .aggregate
            .state
            .as_ref()
            .is_none_or(|s| s.status.is_terminal());
        if ended {
            map.remove(&id);
            return;
        }
        if map
            .get(&id)
            .is_some_and(|kept| kept.version >= loaded.version)
        {
            return;
        }
        if map.len() >= Self::MAX && !map.contains_key(&id) {
            map.clear();
        }
        map.insert(id, loaded.clone());
    }
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
        Ok(self.load_loaded(id).await?.aggregate.state)
    }

    /// The instance and its version as its events say now: read on from the cached copy,
    /// when there is one.
    async fn load_loaded(&self, id: InstanceId) -> anyhow::Result<Loaded<Instance>> {
        let key = id.to_string();
        let loaded = match self.instances.get(id) {
            Some(cached) => self.store.load_on::<Instance>(&key, cached).await?,
            None => self.store.load::<Instance>(&key, None).await?,
        };
        self.instances.keep(id, &loaded);
        Ok(loaded)
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
        // Without If-Match the store decides again on the new state after a race. Inside a
        // step's rounds the instance as last loaded or changed is decided on directly.
        let result = match take_step_state(id) {
            Some(loaded) => {
                self.store
                    .execute_on::<Instance>(&id.to_string(), loaded, command.clone(), &(), &ctx)
                    .await
            }
            None => {
                self.store
                    .execute::<Instance>(&id.to_string(), command.clone(), &(), &ctx)
                    .await
            }
        };
        match result {
            Ok(outcome) => Ok(match outcome.aggregate.state {
                Some(s) => {
                    let loaded = Loaded {
                        aggregate: Instance {
                            state: Some(s.clone()),
                        },
                        version: outcome.version,
                        created_at: outcome.created_at,
                        updated_at: outcome.updated_at,
                    };
                    self.instances.keep(id, &loaded);
                    keep_step_state(id, loaded);
                    Recorded::Accepted(Box::new(s))
                }
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

tokio::task_local! {
    /// The instance as the running step last loaded or changed it: what [`Lifecycle::record`]
    /// decides on, and what the next round of [`drive`] starts from, instead of loading it
    /// again. Scoped to one step, so it never outlives the step (an abandoned step included).
    static STEP_STATE: RefCell<Option<(InstanceId, Loaded<Instance>)>>;
}

/// Takes the step's instance state, when inside a step's rounds and it is about `id`.
fn take_step_state(id: InstanceId) -> Option<Loaded<Instance>> {
    STEP_STATE
        .try_with(|cell| {
            let mut cell = cell.borrow_mut();
            match cell.take() {
                Some((held, loaded)) if held == id => Some(loaded),
                other => {
                    *cell = other;
                    None
                }
            }
        })
        .ok()
        .flatten()
}

/// Keeps the instance state for the step's next round or record (nothing outside a step).
fn keep_step_state(id: InstanceId, loaded: Loaded<Instance>) {
    let _ = STEP_STATE.try_with(|cell| *cell.borrow_mut() = Some((id, loaded)));
}

/// Rounds of a step: after each recorded outcome the next thing is done at once, on the
/// instance as that outcome left it, until the processor has to wait or nothing changes any
/// more. A processor's own events therefore need not wake it (see [`Processor::wakes`]): the
/// chain continues inside the step, which is what keeps the reaction to other parties' events
/// short. Only the first round loads the instance; each later one starts from the state the
/// previous round's record returned (an append that lost a race with another writer reloads,
/// in the store), so a round costs one round trip, the append.
pub(crate) async fn drive(p: &dyn InstanceSteps, work: &Work) -> anyhow::Result<Next> {
    STEP_STATE.scope(RefCell::new(None), rounds(p, work)).await
}

async fn rounds(p: &dyn InstanceSteps, work: &Work) -> anyhow::Result<Next> {
    const MAX_ROUNDS: usize = 32;
    let id = subject_id(work)?;
    let mut seen = None;
    for _ in 0..MAX_ROUNDS {
        let loaded = match take_step_state(id) {
            Some(loaded) => loaded,
            None => p.lifecycle().load_loaded(id).await?,
        };
        let Some(inst) = loaded.aggregate.state.clone() else {
            return Ok(Next::Done);
        };
        if seen == Some(loaded.version) {
            // The last round recorded nothing: done until another party wakes the instance.
            return Ok(Next::Done);
        }
        seen = Some(loaded.version);
        keep_step_state(id, loaded);
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
