//! The GPU catalog read model: zones, instance types and their availability per zone, and the
//! compatibility query that matches a model's VRAM needs against them.

mod queries;

pub use queries::{
    TypeQuery, compatible_types, get_type, get_zone, list_types, list_zones, zone_known,
};

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use inferplane_domain::catalog::{InstanceType, InstanceTypeState, Zone, ZoneState};
use inferplane_store::StoredEvent;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Projection;

/// Keeps `rm_gpu_catalog.{zones, instance_types, availability}` current.
pub struct GpuCatalog;

const SCHEMA: &str = "
create table zones (
    id            uuid primary key,
    provider      text not null,
    code          text not null,
    display_name  text not null,
    active        boolean not null,
    version       bigint not null,
    registered_at timestamptz not null,
    updated_at    timestamptz not null
);
create index zones_code on zones (code);
create table instance_types (
    id                     uuid primary key,
    provider               text not null,
    code                   text not null,
    gpu_model              text not null,
    gpu_count              integer not null,
    vram_per_gpu_gb        integer not null,
    total_vram_gb          integer not null,
    vcpus                  integer not null,
    ram_gb                 integer not null,
    hourly_price_micro_eur bigint not null,
    active                 boolean not null,
    version                bigint not null,
    registered_at          timestamptz not null,
    updated_at             timestamptz not null
);
-- one row per (type, zone) the provider offers the type in; rewritten with its type
create table availability (
    instance_type_id uuid not null references instance_types (id) on delete cascade,
    zone             text not null,
    availability     text not null,
    primary key (instance_type_id, zone)
);
create index availability_zone on availability (zone, instance_type_id);
";

/// A zone as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneView {
    pub id: Uuid,
    #[serde(flatten)]
    pub zone: ZoneState,
    /// The aggregate's version, also served as the `ETag`.
    pub version: i64,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An instance type as the API shows it, with its derived figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceTypeView {
    pub id: Uuid,
    #[serde(flatten)]
    pub instance_type: InstanceTypeState,
    pub total_vram_gb: u32,
    /// The hourly price as an exact decimal string, e.g. `"0.750000"`.
    pub hourly_price_eur: String,
    /// The aggregate's version, also served as the `ETag`.
    pub version: i64,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl InstanceTypeView {
    pub fn from_state(
        id: Uuid,
        s: &InstanceTypeState,
        version: i64,
        registered_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            total_vram_gb: s.total_vram_gb(),
            hourly_price_eur: inferplane_domain::catalog::format_micro_eur(
                s.hourly_price_micro_eur,
            ),
            instance_type: s.clone(),
            version,
            registered_at,
            updated_at,
        }
    }
}

/// An aggregate being folded: itself, its version, first and last recording times.
type Folded<A> = (A, i64, Option<DateTime<Utc>>, DateTime<Utc>);

/// Folds the events of aggregate type `A` onto the rows already stored, with the aggregate's
/// own `apply`, so the read model can never disagree with the aggregate.
fn fold<A: Aggregate>(
    mut touched: HashMap<Uuid, Folded<A>>,
    events: &[(Uuid, &StoredEvent)],
) -> anyhow::Result<HashMap<Uuid, Folded<A>>> {
    for (id, e) in events {
        let event: A::Event = e.decode()?;
        let entry = touched
            .entry(*id)
            .or_insert_with(|| (A::default(), 0, None, e.recorded_at));
        entry.0.apply(event);
        entry.1 = e.sequence;
        entry.2.get_or_insert(e.recorded_at);
        entry.3 = e.recorded_at;
    }
    Ok(touched)
}

fn of_type<'a>(events: &'a [StoredEvent], t: &str) -> anyhow::Result<Vec<(Uuid, &'a StoredEvent)>> {
    events
        .iter()
        .filter(|e| e.aggregate_type == t)
        .map(|e| Ok((e.aggregate_id.parse()?, e)))
        .collect()
}

#[async_trait::async_trait]
impl Projection for GpuCatalog {
    fn name(&self) -> &'static str {
        "gpu_catalog"
    }

    fn version(&self) -> i32 {
        1
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    /// Writes each touched zone and type once per batch.
    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Zone::TYPE, InstanceType::TYPE]
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[StoredEvent]) -> anyhow::Result<()> {
        let zones = of_type(events, Zone::TYPE)?;
        if !zones.is_empty() {
            let ids: Vec<Uuid> = zones.iter().map(|(id, _)| *id).collect();
            let stored = queries::load_zones(&mut *conn, &ids).await?;
            let existing = stored
                .into_iter()
                .map(|v| {
                    let zone = Zone {
                        state: Some(v.zone),
                    };
                    (v.id, (zone, v.version, Some(v.registered_at), v.updated_at))
                })
                .collect();
            let views: Vec<ZoneView> = fold::<Zone>(existing, &zones)?
                .into_iter()
                .filter_map(|(id, (z, version, registered, updated))| {
                    Some(ZoneView {
                        id,
                        zone: z.state?,
                        version,
                        registered_at: registered.unwrap_or(updated),
                        updated_at: updated,
                    })
                })
                .collect();
            queries::upsert_zones(&mut *conn, &views).await?;
        }
        let types = of_type(events, InstanceType::TYPE)?;
        if !types.is_empty() {
            let ids: Vec<Uuid> = types.iter().map(|(id, _)| *id).collect();
            let stored = queries::load_types(&mut *conn, &ids).await?;
            let existing = stored
                .into_iter()
                .map(|v| {
                    let t = InstanceType {
                        state: Some(v.instance_type),
                    };
                    (v.id, (t, v.version, Some(v.registered_at), v.updated_at))
                })
                .collect();
            let views: Vec<InstanceTypeView> = fold::<InstanceType>(existing, &types)?
                .into_iter()
                .filter_map(|(id, (t, version, registered, updated))| {
                    let s = t.state?;
                    let registered = registered.unwrap_or(updated);
                    Some(InstanceTypeView::from_state(
                        id, &s, version, registered, updated,
                    ))
                })
                .collect();
            queries::upsert_types(&mut *conn, &views).await?;
        }
        Ok(())
    }
}
