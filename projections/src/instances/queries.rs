//! Reading and writing the instances table. Loaders without a schema prefix run inside the
//! projection's transaction (its `search_path`); the public queries read the live schema.

use std::fmt::Write as _;

use inferplane_domain::instance::{Instance, InstanceState, InstanceStatus};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, Row};
use uuid::Uuid;

use super::{InstanceView, Tracked};

const COLUMNS: &str = "id, state, version, requested_at, ready_at, terminated_at, updated_at";

/// The cost so far, in micro-euros: the rule of [`super::cost_micro_eur`] in SQL (`numeric`,
/// exact), so that the list can sort on it. `now()` is the statement's transaction time.
const COST: &str = "div(hourly_price_micro_eur::numeric * greatest(0, floor(extract(epoch from \
    coalesce(terminated_at, now()) - requested_at))), 3600)::bigint";

fn decode_tracked(r: &PgRow) -> Result<(Uuid, Tracked), sqlx::Error> {
    // Straight from the column's bytes: no `serde_json::Value` in between.
    let Json(state): Json<InstanceState> = r.try_get("state")?;
    Ok((
        r.try_get("id")?,
        Tracked {
            instance: Instance { state: Some(state) },
            version: r.try_get("version")?,
            requested_at: Some(r.try_get("requested_at")?),
            ready_at: r.try_get("ready_at")?,
            terminated_at: r.try_get("terminated_at")?,
            updated_at: Some(r.try_get("updated_at")?),
        },
    ))
}

fn decode_view(r: &PgRow) -> Result<InstanceView, sqlx::Error> {
    let (id, t) = decode_tracked(r)?;
    let cost: i64 = r.try_get("cost_micro_eur")?;
    let (Some(state), Some(requested_at), Some(updated_at)) =
        (t.instance.state, t.requested_at, t.updated_at)
    else {
        return Err(sqlx::Error::Decode("incomplete instance row".into()));
    };
    Ok(InstanceView::assemble(
        id,
        state,
        cost,
        t.version,
        (requested_at, t.ready_at, t.terminated_at, updated_at),
    ))
}

/// The stored instances among `ids`, ready to fold more events onto.
pub(super) async fn load_tracked(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Tracked)>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "select {COLUMNS} from instances where id = any($1)"
    ))
    .bind(ids)
    .fetch_all(conn)
    .await?;
    rows.iter().map(decode_tracked).collect()
}

/// One instance row as [`upsert`] writes it, borrowed from what the projection holds.
struct Written<'a> {
    id: Uuid,
    state: &'a InstanceState,
    t: &'a Tracked,
    requested_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// Writes each instance once (rows never requested are skipped).
///
/// The state is written as it is held: serialized once, straight into the statement, and
/// never copied (the projection's largest cost under load was turning every state into a
/// `serde_json::Value` and that into text).
pub(super) async fn upsert(
    conn: &mut PgConnection,
    rows: &[(Uuid, Tracked)],
) -> anyhow::Result<()> {
    let rows: Vec<Written<'_>> = rows
        .iter()
        .filter_map(|(id, t)| {
            let (state, requested_at, updated_at) = t.requested()?;
            Some(Written {
                id: *id,
                state,
                t,
                requested_at,
                updated_at,
            })
        })
        .collect();
    let col =
        |f: for<'r> fn(&Written<'r>) -> Option<&'r str>| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "insert into instances (id, status, progress, model_id, model_repo, zone, instance_type,
             gpu_count, hourly_price_micro_eur, data_volume_gb, public_ip, server_id,
             failure_code, failure_message, state, version, requested_at, ready_at,
             terminated_at, updated_at)
         select * from unnest($1::uuid[], $2::text[], $3::smallint[], $4::uuid[], $5::text[],
             $6::text[], $7::text[], $8::int[], $9::bigint[], $10::int[], $11::text[],
             $12::text[], $13::text[], $14::text[], $15::jsonb[], $16::bigint[],
             $17::timestamptz[], $18::timestamptz[], $19::timestamptz[], $20::timestamptz[])
         on conflict (id) do update set
             status = excluded.status, progress = excluded.progress,
             model_id = excluded.model_id, model_repo = excluded.model_repo,
             zone = excluded.zone, instance_type = excluded.instance_type,
             gpu_count = excluded.gpu_count,
             hourly_price_micro_eur = excluded.hourly_price_micro_eur,
             data_volume_gb = excluded.data_volume_gb, public_ip = excluded.public_ip,
             server_id = excluded.server_id, failure_code = excluded.failure_code,
             failure_message = excluded.failure_message, state = excluded.state,
             version = excluded.version, requested_at = excluded.requested_at,
             ready_at = excluded.ready_at, terminated_at = excluded.terminated_at,
             updated_at = excluded.updated_at",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(col(|r| Some(r.state.status.as_str())))
    .bind(
        rows.iter()
            .map(|r| i16::from(r.state.progress))
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.state.model_id).collect::<Vec<_>>())
    .bind(col(|r| Some(r.state.model_repo.as_str())))
    .bind(col(|r| Some(r.state.zone.as_str())))
    .bind(col(|r| Some(r.state.instance_type.as_str())))
    .bind(
        rows.iter()
            .map(|r| clamp_i32(r.state.gpu_count))
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.state.hourly_price_micro_eur)
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| clamp_i32(r.state.data_volume_gb))
            .collect::<Vec<_>>(),
    )
    .bind(col(|r| r.state.public_ip.as_deref()))
    .bind(col(|r| r.state.server_id()))
    .bind(col(|r| r.state.failure.as_ref().map(|f| f.code.as_str())))
    .bind(col(|r| {
        r.state.failure.as_ref().map(|f| f.message.as_str())
    }))
    .bind(rows.iter().map(|r| Json(r.state)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.t.version).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.requested_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.t.ready_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.t.terminated_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Which model a list is narrowed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFilter {
    Id(Uuid),
    /// A Hugging Face repository id, matched ignoring case.
    Repo(String),
}

impl ModelFilter {
    /// A model UUID, or else a repository id.
    pub fn parse(value: &str) -> Self {
        let value = value.trim();
        value
            .parse()
            .map_or_else(|_| Self::Repo(value.to_string()), Self::Id)
    }
}

/// What a list can be sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    RequestedAt,
    /// In life-cycle order (`requested` first, `archived` last).
    Status,
    /// The model's repository id, ignoring case.
    Model,
    Zone,
    Progress,
    /// The cost so far.
    Cost,
}

impl SortKey {
    const NAMES: [(&'static str, Self); 6] = [
        ("requested_at", Self::RequestedAt),
        ("status", Self::Status),
        ("model", Self::Model),
        ("zone", Self::Zone),
        ("progress", Self::Progress),
        ("cost", Self::Cost),
    ];

    fn sql(self) -> String {
        match self {
            Self::RequestedAt => "requested_at".into(),
            Self::Status => {
                let mut case = String::from("case status");
                for (rank, s) in InstanceStatus::ALL.iter().enumerate() {
                    let _ = write!(case, " when '{}' then {rank}", s.as_str());
                }
                case.push_str(" end");
                case
            }
            Self::Model => "lower(model_repo)".into(),
            Self::Zone => "zone".into(),
            Self::Progress => "progress".into(),
            Self::Cost => COST.into(),
        }
    }
}

/// A sort key and its direction; `-key` is descending. The default is `-requested_at`
/// (newest first); ties are broken by newest request, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Self {
            key: SortKey::RequestedAt,
            descending: true,
        }
    }
}

/// A `sort` value that names no sort key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown sort {0:?}; expected one of requested_at, status, model, zone, progress, cost, optionally prefixed with '-'"
)]
pub struct UnknownSort(pub String);

impl std::str::FromStr for Sort {
    type Err = UnknownSort;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (descending, name) = match s.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, s),
        };
        SortKey::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, key)| Self {
                key: *key,
                descending,
            })
            .ok_or_else(|| UnknownSort(s.chars().take(64).collect()))
    }
}

/// Filters, order and page of a list.
#[derive(Debug, Clone)]
pub struct InstanceQuery {
    /// Only these statuses; empty means every status but `archived`.
    pub statuses: Vec<InstanceStatus>,
    pub model: Option<ModelFilter>,
    /// Only instances in this zone now.
    pub zone: Option<String>,
    pub sort: Sort,
    pub limit: i64,
    pub offset: i64,
}

impl Default for InstanceQuery {
    fn default() -> Self {
        Self {
            statuses: Vec::new(),
            model: None,
            zone: None,
            sort: Sort::default(),
            limit: 100,
            offset: 0,
        }
    }
}

/// One page of a list, and how many instances match in all.
#[derive(Debug, Clone)]
pub struct InstancePage {
    pub instances: Vec<InstanceView>,
    pub total: i64,
}

const FILTER: &str = "where ((cardinality($1::text[]) = 0 and status <> 'archived')
        or status = any($1::text[]))
    and ($2::uuid is null or model_id = $2)
    and ($3::text is null or lower(model_repo) = lower($3))
    and ($4::text is null or zone = $4)";

/// Lists instances from the live read model.
pub async fn list(conn: &mut PgConnection, q: &InstanceQuery) -> Result<InstancePage, sqlx::Error> {
    let statuses: Vec<&str> = q.statuses.iter().map(|s| s.as_str()).collect();
    let (model_id, model_repo) = match &q.model {
        Some(ModelFilter::Id(id)) => (Some(*id), None),
        Some(ModelFilter::Repo(r)) => (None, Some(r.as_str())),
        None => (None, None),
    };
    let direction = if q.sort.descending { "desc" } else { "asc" };
    let rows = sqlx::query(&format!(
        "select {COLUMNS}, {COST} as cost_micro_eur from rm_instances.instances {FILTER}
         order by {} {direction}, requested_at desc, id
         limit $5 offset $6",
        q.sort.key.sql()
    ))
    .bind(&statuses)
    .bind(model_id)
    .bind(model_repo)
    .bind(q.zone.as_deref())
    .bind(q.limit)
    .bind(q.offset)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!(
        "select count(*) from rm_instances.instances {FILTER}"
    ))
    .bind(&statuses)
    .bind(model_id)
    .bind(model_repo)
    .bind(q.zone.as_deref())
    .fetch_one(&mut *conn)
    .await?;
    Ok(InstancePage {
        instances: rows.iter().map(decode_view).collect::<Result<_, _>>()?,
        total,
    })
}

/// One instance from the live read model.
pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
) -> Result<Option<InstanceView>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "select {COLUMNS}, {COST} as cost_micro_eur from rm_instances.instances where id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(decode_view).transpose()
}

#[cfg(test)]
mod tests {
    use super::{ModelFilter, Sort, SortKey};

    #[test]
    fn sorts_parse_with_an_optional_minus() {
        assert_eq!(
            "-cost".parse::<Sort>(),
            Ok(Sort {
                key: SortKey::Cost,
                descending: true
            })
        );
        assert_eq!(
            "status".parse::<Sort>(),
            Ok(Sort {
                key: SortKey::Status,
                descending: false
            })
        );
        assert!("--cost".parse::<Sort>().is_err());
        assert!("price".parse::<Sort>().is_err());
        assert!(SortKey::Status.sql().contains("when 'archived' then 11"));
    }

    #[test]
    fn a_model_filter_is_an_id_or_a_repository() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(ModelFilter::parse(&id.to_string()), ModelFilter::Id(id));
        assert_eq!(
            ModelFilter::parse(" Qwen/Qwen2.5-7B "),
            ModelFilter::Repo("Qwen/Qwen2.5-7B".into())
        );
    }
}
