//! Reading and writing the GPU catalog tables. Loaders without a schema prefix run inside the
//! projection's transaction (its `search_path`); the public queries read the live schema.

use std::collections::BTreeMap;

use inferplane_domain::catalog::{Availability, InstanceTypeState, ZoneState};
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{InstanceTypeView, ZoneView};

const ZONE_COLUMNS: &str =
    "id, provider, code, display_name, active, version, registered_at, updated_at";
const TYPE_COLUMNS: &str = "t.id, t.provider, t.code, t.gpu_model, t.gpu_count, \
    t.vram_per_gpu_gb, t.vcpus, t.ram_gb, t.hourly_price_micro_eur, t.active, t.version, \
    t.registered_at, t.updated_at";

/// Enums are stored as their serde names; a name the code no longer knows is a decode error.
fn name_of<T: DeserializeOwned>(r: &PgRow, column: &str) -> Result<T, sqlx::Error> {
    let s: String = r.try_get(column)?;
    serde_json::from_value(serde_json::Value::String(s)).map_err(|e| sqlx::Error::Decode(e.into()))
}

fn decode_zone(r: &PgRow) -> Result<ZoneView, sqlx::Error> {
    Ok(ZoneView {
        id: r.try_get("id")?,
        zone: ZoneState {
            provider: name_of(r, "provider")?,
            code: r.try_get("code")?,
            display_name: r.try_get("display_name")?,
            active: r.try_get("active")?,
        },
        version: r.try_get("version")?,
        registered_at: r.try_get("registered_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Decodes type rows and attaches their availability, read from `{prefix}availability`.
async fn decode_types(
    conn: &mut PgConnection,
    prefix: &str,
    rows: Vec<PgRow>,
) -> Result<Vec<InstanceTypeView>, sqlx::Error> {
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut availability: BTreeMap<Uuid, BTreeMap<String, Availability>> = BTreeMap::new();
    let avail_rows = sqlx::query(&format!(
        "select instance_type_id, zone, availability from {prefix}availability
         where instance_type_id = any($1)"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for r in &avail_rows {
        availability
            .entry(r.try_get("instance_type_id")?)
            .or_default()
            .insert(r.try_get("zone")?, name_of(r, "availability")?);
    }
    rows.iter()
        .map(|r| {
            let id: Uuid = r.try_get("id")?;
            let state = InstanceTypeState {
                provider: name_of(r, "provider")?,
                code: r.try_get("code")?,
                gpu_model: r.try_get("gpu_model")?,
                gpu_count: r.try_get::<i32, _>("gpu_count")? as u32,
                vram_per_gpu_gb: r.try_get::<i32, _>("vram_per_gpu_gb")? as u32,
                vcpus: r.try_get::<i32, _>("vcpus")? as u32,
                ram_gb: r.try_get::<i32, _>("ram_gb")? as u32,
                hourly_price_micro_eur: r.try_get("hourly_price_micro_eur")?,
                availability: availability.remove(&id).unwrap_or_default(),
                active: r.try_get("active")?,
            };
            let (registered, updated) = (r.try_get("registered_at")?, r.try_get("updated_at")?);
            let version = r.try_get("version")?;
            Ok(InstanceTypeView::from_state(
                id, &state, version, registered, updated,
            ))
        })
        .collect()
}

pub(super) async fn load_zones(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<ZoneView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "select {ZONE_COLUMNS} from zones where id = any($1)"
    ))
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(decode_zone).collect()
}

pub(super) async fn load_types(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<InstanceTypeView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "select {TYPE_COLUMNS} from instance_types t where t.id = any($1)"
    ))
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    decode_types(conn, "", rows).await
}

pub(super) async fn upsert_zones(conn: &mut PgConnection, v: &[ZoneView]) -> anyhow::Result<()> {
    sqlx::query(
        "insert into zones (id, provider, code, display_name, active, version, registered_at,
             updated_at)
         select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[],
             $6::bigint[], $7::timestamptz[], $8::timestamptz[])
         on conflict (id) do update set display_name = excluded.display_name,
             active = excluded.active, version = excluded.version, updated_at = excluded.updated_at",
    )
    .bind(v.iter().map(|v| v.id).collect::<Vec<_>>())
    .bind(v.iter().map(|v| v.zone.provider.as_str()).collect::<Vec<_>>())
    .bind(v.iter().map(|v| v.zone.code.as_str()).collect::<Vec<_>>())
    .bind(v.iter().map(|v| v.zone.display_name.as_str()).collect::<Vec<_>>())
    .bind(v.iter().map(|v| v.zone.active).collect::<Vec<_>>())
    .bind(v.iter().map(|v| v.version).collect::<Vec<_>>())
    .bind(v.iter().map(|v| v.registered_at).collect::<Vec<_>>())
    .bind(v.iter().map(|v| v.updated_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes each type once, then replaces its availability rows.
pub(super) async fn upsert_types(
    conn: &mut PgConnection,
    v: &[InstanceTypeView],
) -> anyhow::Result<()> {
    let t = |v: &InstanceTypeView| v.instance_type.clone();
    let states: Vec<InstanceTypeState> = v.iter().map(t).collect();
    let ids: Vec<Uuid> = v.iter().map(|v| v.id).collect();
    sqlx::query(
        "insert into instance_types (id, provider, code, gpu_model, gpu_count, vram_per_gpu_gb,
             total_vram_gb, vcpus, ram_gb, hourly_price_micro_eur, active, version,
             registered_at, updated_at)
         select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[],
             $6::int[], $7::int[], $8::int[], $9::int[], $10::bigint[], $11::bool[],
             $12::bigint[], $13::timestamptz[], $14::timestamptz[])
         on conflict (id) do update set gpu_model = excluded.gpu_model,
             gpu_count = excluded.gpu_count, vram_per_gpu_gb = excluded.vram_per_gpu_gb,
             total_vram_gb = excluded.total_vram_gb, vcpus = excluded.vcpus,
             ram_gb = excluded.ram_gb, hourly_price_micro_eur = excluded.hourly_price_micro_eur,
             active = excluded.active, version = excluded.version, updated_at = excluded.updated_at",
    )
    .bind(&ids)
    .bind(states.iter().map(|s| s.provider.as_str()).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.code.as_str()).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.gpu_model.as_str()).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.gpu_count as i32).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.vram_per_gpu_gb as i32).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.total_vram_gb() as i32).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.vcpus as i32).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.ram_gb as i32).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.hourly_price_micro_eur).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.active).collect::<Vec<_>>())
    .bind(v.iter().map(|v| v.version).collect::<Vec<_>>())
    .bind(v.iter().map(|v| v.registered_at).collect::<Vec<_>>())
    .bind(v.iter().map(|v| v.updated_at).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from availability where instance_type_id = any($1)")
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    let rows: Vec<(Uuid, &str, &str)> = v
        .iter()
        .flat_map(|v| {
            let a = &v.instance_type.availability;
            a.iter().map(|(z, a)| (v.id, z.as_str(), a.as_str()))
        })
        .collect();
    sqlx::query(
        "insert into availability (instance_type_id, zone, availability)
         select * from unnest($1::uuid[], $2::text[], $3::text[])",
    )
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Every zone, by provider and code.
pub async fn list_zones(conn: &mut PgConnection) -> Result<Vec<ZoneView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "select {ZONE_COLUMNS} from rm_gpu_catalog.zones order by provider, code"
    ))
    .fetch_all(conn)
    .await?;
    rows.iter().map(decode_zone).collect()
}

/// One zone.
pub async fn get_zone(conn: &mut PgConnection, id: Uuid) -> Result<Option<ZoneView>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "select {ZONE_COLUMNS} from rm_gpu_catalog.zones where id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(decode_zone).transpose()
}

/// Whether a zone with this code is registered (with any provider).
pub async fn zone_known(conn: &mut PgConnection, code: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from rm_gpu_catalog.zones where code = $1)")
        .bind(code)
        .fetch_one(conn)
        .await
}

/// Filters for listing instance types.
#[derive(Debug, Clone, Default)]
pub struct TypeQuery {
    /// Only types the provider offers in this zone (with any availability, unless
    /// `availability` narrows it).
    pub zone: Option<String>,
    pub active: Option<bool>,
    pub availability: Option<Availability>,
}

/// Instance types by hourly price, then code.
pub async fn list_types(
    conn: &mut PgConnection,
    q: &TypeQuery,
) -> Result<Vec<InstanceTypeView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "select {TYPE_COLUMNS} from rm_gpu_catalog.instance_types t
         where ($1::bool is null or t.active = $1)
           and (($2::text is null and $3::text is null) or exists (
               select 1 from rm_gpu_catalog.availability a where a.instance_type_id = t.id
                 and ($2::text is null or a.zone = $2)
                 and ($3::text is null or a.availability = $3)))
         order by t.hourly_price_micro_eur, t.code"
    ))
    .bind(q.active)
    .bind(q.zone.as_deref())
    .bind(q.availability.map(Availability::as_str))
    .fetch_all(&mut *conn)
    .await?;
    decode_types(conn, "rm_gpu_catalog.", rows).await
}

/// One instance type.
pub async fn get_type(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<InstanceTypeView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "select {TYPE_COLUMNS} from rm_gpu_catalog.instance_types t where t.id = $1"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(decode_types(conn, "rm_gpu_catalog.", rows).await?.pop())
}

/// The active types a model needing `required_vram_gb` fits on (total VRAM at least that),
/// offered as available or scarce in an active zone: `zone`, or any zone when `None`.
/// Cheapest first.
pub async fn compatible_types(
    conn: &mut PgConnection,
    required_vram_gb: u32,
    zone: Option<&str>,
) -> Result<Vec<InstanceTypeView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "select {TYPE_COLUMNS} from rm_gpu_catalog.instance_types t
         where t.active and t.total_vram_gb >= $1 and exists (
             select 1 from rm_gpu_catalog.availability a
             join rm_gpu_catalog.zones z on z.code = a.zone and z.provider = t.provider
             where a.instance_type_id = t.id and z.active
               and a.availability in ('available', 'scarce')
               and ($2::text is null or a.zone = $2))
         order by t.hourly_price_micro_eur, t.code"
    ))
    .bind(required_vram_gb as i32)
    .bind(zone)
    .fetch_all(&mut *conn)
    .await?;
    decode_types(conn, "rm_gpu_catalog.", rows).await
}
