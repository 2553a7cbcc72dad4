//! The instances read model: one row per instance, as operators list and read them, and the
//! auditor's replay of one instance's history.
//!
//! # Design
//!
//! - **One fold, shared.** Rows are folded with the aggregate's own `apply` (as the model
//!   catalog is), through [`Tracked`], which also records the times the aggregate does not
//!   keep (it reads no clock): when the instance was requested, first became ready, and
//!   stopped costing money. The API's command answers and the replay ([`replay`]) use the same
//!   [`Tracked`], so a row, a command answer and a replay can never disagree.
//! - **The full state is kept** in a `jsonb` column next to the columns the list filters and
//!   sorts on (status, model, zone, progress, times, price), so one row answers a `GET`
//!   without touching the event log.
//! - **Money is integer micro-euros** (decision 0006, `docs/decisions/`): the cost so far is the hourly price
//!   times the whole seconds billed, divided by 3600 and truncated once, at the end — in SQL
//!   with `numeric` for the list (which sorts on it), in Rust with `i128` for views built from
//!   an aggregate ([`cost_micro_eur`]); both follow the same rule.
//! - **Billing** runs from the request to the end of billing: the instance terminated, or
//!   failed with nothing left at the provider ([`billing_ended`]). A resource recorded after
//!   that (a create call racing the failure) reopens it until cleanup ends it again.

mod queries;
pub mod replay;

pub use queries::{
    InstancePage, InstanceQuery, ModelFilter, Sort, SortKey, UnknownSort, get, list,
};
pub use replay::{
    InstanceReplay, InvalidPointInTime, PointInTime, ReplayError, ReplayedEvent, replay, summary,
    timeline,
};

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use inferplane_domain::catalog::format_micro_eur;
use inferplane_domain::instance::{Instance, InstanceEvent, InstanceState, InstanceStatus};
use inferplane_store::StoredEvent;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Projection;

/// Keeps `rm_instances.instances` current.
pub struct Instances;

const SCHEMA: &str = "
create table instances (
    id                     uuid primary key,
    status                 text not null,
    progress               smallint not null,
    model_id               uuid not null,
    model_repo             text not null,
    zone                   text not null,
    instance_type          text not null,
    gpu_count              integer not null,
    hourly_price_micro_eur bigint not null,
    data_volume_gb         integer not null,
    public_ip              text,
    -- the server that exists at the provider now (null once deleted)
    server_id              text,
    failure_code           text,
    failure_message        text,
    -- the aggregate's whole state, serialized
    state                  jsonb not null,
    version                bigint not null,
    requested_at           timestamptz not null,
    -- first time ready
    ready_at               timestamptz,
    -- end of billing: terminated, or failed with nothing left at the provider
    terminated_at          timestamptz,
    updated_at             timestamptz not null
) with (fillfactor = 50); -- room for in-place (HOT) updates: every event rewrites its row
create index instances_status on instances (status);
create index instances_model_repo on instances (lower(model_repo));
create index instances_model_id on instances (model_id);
create index instances_zone on instances (zone, status);
create index instances_requested on instances (requested_at desc, id);
";

/// An instance being folded from its events, with the times its aggregate does not record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tracked {
    pub instance: Instance,
    /// The sequence of the last event applied (the aggregate's version).
    pub version: i64,
    /// When the `InstanceRequested` event was recorded.
    pub requested_at: Option<DateTime<Utc>>,
    /// When the instance first became ready.
    pub ready_at: Option<DateTime<Utc>>,
    /// When billing ended (see [`billing_ended`]).
    pub terminated_at: Option<DateTime<Utc>>,
    /// When the last event was recorded.
    pub updated_at: Option<DateTime<Utc>>,
}

impl Tracked {
    /// The state with when it was requested and last updated; `None` while never requested.
    pub fn requested(&self) -> Option<(&InstanceState, DateTime<Utc>, DateTime<Utc>)> {
        let state = self.instance.state.as_ref()?;
        let requested_at = self.requested_at.or(self.updated_at)?;
        Some((state, requested_at, self.updated_at.unwrap_or(requested_at)))
    }

    /// Applies one event, recorded at `recorded_at` with sequence `sequence`.
    pub fn apply(&mut self, event: InstanceEvent, sequence: i64, recorded_at: DateTime<Utc>) {
        self.instance.apply(event);
        self.version = sequence;
        self.updated_at = Some(recorded_at);
        let Some(s) = &self.instance.state else {
            return;
        };
        self.requested_at.get_or_insert(recorded_at);
        if s.status == InstanceStatus::Ready {
            self.ready_at.get_or_insert(recorded_at);
        }
        if billing_ended(s) {
            self.terminated_at.get_or_insert(recorded_at);
        } else if s.resources_left() {
            self.terminated_at = None;
        }
    }

    /// Decodes and applies a stored event of this instance.
    pub fn apply_stored(&mut self, e: &StoredEvent) -> Result<(), serde_json::Error> {
        let event: InstanceEvent = e.decode()?;
        self.apply(event, e.sequence, e.recorded_at);
        Ok(())
    }
}

/// Whether the instance no longer costs anything: terminated (or archived), or failed with no
/// server and no volume left at the provider.
pub fn billing_ended(s: &InstanceState) -> bool {
    matches!(
        s.status,
        InstanceStatus::Terminated | InstanceStatus::Archived
    ) || (s.status == InstanceStatus::Failed && !s.resources_left())
}

/// The cost of `hourly_price_micro_eur` over the whole seconds from `from` to `to` (0 when
/// `to` is earlier), truncated to the micro-euro, with integer arithmetic only.
pub fn cost_micro_eur(hourly_price_micro_eur: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    let seconds = i128::from((to - from).num_seconds().max(0));
    let cost = i128::from(hourly_price_micro_eur) * seconds / 3600;
    i64::try_from(cost).unwrap_or(i64::MAX)
}

/// An instance as the API shows it: its whole state, and what is derived from its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceView {
    pub id: Uuid,
    /// The instance as its aggregate knows it.
    #[serde(flatten)]
    pub instance: InstanceState,
    /// The hourly price as an exact decimal string, e.g. `"0.750000"`.
    pub hourly_price_eur: String,
    /// What the instance cost from its request to the end of billing (or to now).
    pub cost_micro_eur: i64,
    /// The same as an exact decimal string.
    pub cost_eur: String,
    /// The aggregate's version, also served as the `ETag`.
    pub version: i64,
    pub requested_at: DateTime<Utc>,
    /// First time ready.
    pub ready_at: Option<DateTime<Utc>>,
    /// End of billing: terminated, or failed with nothing left at the provider.
    pub terminated_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl InstanceView {
    /// The view of a folded instance, its cost counted up to `now` (or the end of billing);
    /// `None` while it was never requested.
    pub fn from_tracked(id: Uuid, t: &Tracked, now: DateTime<Utc>) -> Option<Self> {
        let (state, requested_at, updated_at) = t.requested()?;
        let cost = cost_micro_eur(
            state.hourly_price_micro_eur,
            requested_at,
            t.terminated_at.unwrap_or(now),
        );
        Some(Self::assemble(
            id,
            state.clone(),
            cost,
            t.version,
            (requested_at, t.ready_at, t.terminated_at, updated_at),
        ))
    }

    /// `times`: requested, ready, terminated, updated.
    fn assemble(
        id: Uuid,
        instance: InstanceState,
        cost_micro_eur: i64,
        version: i64,
        times: Times,
    ) -> Self {
        Self {
            id,
            hourly_price_eur: format_micro_eur(instance.hourly_price_micro_eur),
            cost_eur: format_micro_eur(cost_micro_eur),
            cost_micro_eur,
            instance,
            version,
            requested_at: times.0,
            ready_at: times.1,
            terminated_at: times.2,
            updated_at: times.3,
        }
    }
}

/// Requested, ready, terminated, updated.
type Times = (
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

#[async_trait::async_trait]
impl Projection for Instances {
    fn name(&self) -> &'static str {
        "instances"
    }

    fn version(&self) -> i32 {
        1
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    /// Folds the batch onto the stored rows with [`Tracked`], then writes each touched
    /// instance once.
    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Instance::TYPE]
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[StoredEvent]) -> anyhow::Result<()> {
        let relevant: Vec<(Uuid, &StoredEvent)> = events
            .iter()
            .filter(|e| e.aggregate_type == Instance::TYPE)
            .map(|e| Ok((e.aggregate_id.parse()?, e)))
            .collect::<anyhow::Result<_>>()?;
        if relevant.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = relevant.iter().map(|(id, _)| *id).collect();
        let mut touched: HashMap<Uuid, Tracked> = queries::load_tracked(&mut *conn, &ids)
            .await?
            .into_iter()
            .collect();
        for (id, e) in &relevant {
            touched.entry(*id).or_default().apply_stored(e)?;
        }
        let rows: Vec<(Uuid, Tracked)> = touched
            .into_iter()
            .filter(|(_, t)| t.instance.state.is_some())
            .collect();
        queries::upsert(conn, &rows).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use inferplane_domain::catalog::Provider;
    use inferplane_domain::instance::{FailureCode, InstanceRequested, VllmMode};

    use super::*;

    fn requested() -> InstanceEvent {
        InstanceEvent::InstanceRequested(InstanceRequested {
            model_id: Uuid::nil(),
            model_repo: "org/model".into(),
            model_required_vram_gb: 16,
            zone: "fr-par-2".into(),
            allowed_zones: vec!["fr-par-2".into()],
            instance_type: "L4-1-24G".into(),
            gpu_count: 1,
            vram_per_gpu_gb: 24,
            hourly_price_micro_eur: 750_000,
            data_volume_gb: 100,
            vllm_mode: VllmMode::Mono,
            provider: Provider::Scaleway,
        })
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn cost_counts_whole_seconds_and_truncates_once() {
        assert_eq!(cost_micro_eur(750_000, at(0), at(3600)), 750_000);
        assert_eq!(cost_micro_eur(750_000, at(0), at(60)), 12_500);
        // 1 s at 1.2426 EUR/h is 345.1666… micro-euros.
        assert_eq!(cost_micro_eur(1_242_600, at(0), at(1)), 345);
        let almost = at(1) - Duration::milliseconds(1);
        assert_eq!(cost_micro_eur(750_000, at(0), almost), 0);
        assert_eq!(cost_micro_eur(750_000, at(10), at(0)), 0, "never negative");
        assert_eq!(
            cost_micro_eur(1_000_000_000_000, at(0), at(0) + Duration::days(365 * 100)),
            876_000_000_000_000_000,
            "no overflow for a century at a million euros per hour"
        );
    }

    #[test]
    fn billing_ends_when_terminated_or_failed_with_nothing_left() {
        let mut t = Tracked::default();
        t.apply(requested(), 1, at(0));
        assert_eq!((t.requested_at, t.terminated_at), (Some(at(0)), None));
        t.apply(
            InstanceEvent::ProvisioningStarted {
                zone: "fr-par-2".into(),
                attempt: 1,
            },
            2,
            at(1),
        );
        t.apply(
            InstanceEvent::VolumeCreated {
                volume_id: "vol-1".into(),
                zone: "fr-par-2".into(),
                size_gb: 100,
            },
            3,
            at(2),
        );
        t.apply(
            InstanceEvent::InstanceFailed {
                code: FailureCode::ProviderOutOfStock,
                message: "no stock".into(),
                at_status: InstanceStatus::Provisioning,
            },
            4,
            at(3),
        );
        assert_eq!(t.terminated_at, None, "a volume is left: still billed");
        t.apply(
            InstanceEvent::VolumeDeleted {
                volume_id: "vol-1".into(),
            },
            5,
            at(4),
        );
        assert_eq!(t.terminated_at, Some(at(4)));
        t.apply(InstanceEvent::InstanceArchived, 6, at(9));
        assert_eq!(t.terminated_at, Some(at(4)), "the first end is kept");
        assert_eq!(t.version, 6);
        let view = InstanceView::from_tracked(Uuid::nil(), &t, at(7200)).unwrap();
        assert_eq!(view.cost_micro_eur, 750_000 * 4 / 3600);
        assert_eq!(view.cost_eur, "0.000833");
        assert_eq!(view.hourly_price_eur, "0.750000");
        assert_eq!(view.updated_at, at(9));
    }

    #[test]
    fn a_resource_recorded_after_the_end_reopens_billing() {
        let mut t = Tracked::default();
        t.apply(requested(), 1, at(0));
        t.apply(
            InstanceEvent::InstanceFailed {
                code: FailureCode::ProviderError,
                message: "boom".into(),
                at_status: InstanceStatus::Requested,
            },
            2,
            at(1),
        );
        assert_eq!(t.terminated_at, Some(at(1)));
        t.apply(
            InstanceEvent::ServerCreated {
                server_id: "srv-1".into(),
                zone: "fr-par-2".into(),
                commercial_type: "L4-1-24G".into(),
            },
            3,
            at(2),
        );
        assert_eq!(t.terminated_at, None);
        t.apply(
            InstanceEvent::ServerDeleted {
                server_id: "srv-1".into(),
            },
            4,
            at(5),
        );
        assert_eq!(t.terminated_at, Some(at(5)));
    }

    #[test]
    fn the_view_flattens_the_state_beside_the_derived_fields() {
        let mut t = Tracked::default();
        assert!(InstanceView::from_tracked(Uuid::nil(), &t, at(0)).is_none());
        t.apply(requested(), 1, at(0));
        let v = serde_json::to_value(InstanceView::from_tracked(Uuid::nil(), &t, at(60)).unwrap())
            .unwrap();
        assert_eq!(v["status"], "requested");
        assert_eq!(v["progress"], 5);
        assert_eq!(v["model_repo"], "org/model");
        assert_eq!(v["cost_micro_eur"], 12_500);
        assert_eq!(v["cost_eur"], "0.012500");
        assert_eq!(v["ready_at"], serde_json::Value::Null);
        assert_eq!(v["version"], 1);
    }
}
