//! The model catalog read model: one row per registered model, as the API lists it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use inferplane_domain::model::{Model, ModelEvent, ModelState, ModelTask};
use inferplane_store::StoredEvent;
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, Row};
use uuid::Uuid;

use crate::Projection;

/// Keeps `rm_model_catalog.models` current.
pub struct ModelCatalog;

const SCHEMA: &str = "
create table models (
    id                   uuid primary key,
    hf_repo_id           text not null,
    display_name         text not null,
    parameter_count      bigint not null,
    required_vram_gb     integer not null,
    context_length       integer not null,
    data_volume_gb       integer not null,
    data_volume_computed boolean not null,
    task                 text not null,
    active               boolean not null,
    version              bigint not null,
    registered_at        timestamptz not null,
    updated_at           timestamptz not null
) with (fillfactor = 50); -- room for in-place (HOT) updates: every event rewrites its row
create index models_repo on models (lower(hf_repo_id));
";

/// A model as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelView {
    pub id: Uuid,
    /// The model as its aggregate knows it.
    #[serde(flatten)]
    pub model: ModelState,
    /// The aggregate's version, also served as the `ETag`.
    pub version: i64,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ModelView {
    pub fn from_state(
        id: Uuid,
        s: &ModelState,
        version: i64,
        registered_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            model: s.clone(),
            version,
            registered_at,
            updated_at,
        }
    }
}

const COLUMNS: &str = "id, hf_repo_id, display_name, parameter_count, required_vram_gb, \
    context_length, data_volume_gb, data_volume_computed, task, active, version, registered_at, updated_at";

fn decode(r: &sqlx::postgres::PgRow) -> Result<ModelView, sqlx::Error> {
    let task: String = r.try_get("task")?;
    Ok(ModelView {
        id: r.try_get("id")?,
        model: ModelState {
            hf_repo_id: r.try_get("hf_repo_id")?,
            display_name: r.try_get("display_name")?,
            parameter_count: r.try_get::<i64, _>("parameter_count")? as u64,
            required_vram_gb: r.try_get::<i32, _>("required_vram_gb")? as u32,
            context_length: r.try_get::<i32, _>("context_length")? as u32,
            data_volume_gb: r.try_get::<i32, _>("data_volume_gb")? as u32,
            data_volume_computed: r.try_get("data_volume_computed")?,
            task: serde_json::from_value(serde_json::Value::String(task))
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
            active: r.try_get("active")?,
        },
        version: r.try_get("version")?,
        registered_at: r.try_get("registered_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn task_name(t: ModelTask) -> &'static str {
    match t {
        ModelTask::Generate => "generate",
        ModelTask::Embed => "embed",
    }
}

#[async_trait::async_trait]
impl Projection for ModelCatalog {
    fn name(&self) -> &'static str {
        "model_catalog"
    }

    fn version(&self) -> i32 {
        1
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    /// Folds the batch in memory with the aggregate's own `apply` (so the read model can never
    /// disagree with the aggregate), then writes each touched model once.
    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Model::TYPE]
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[StoredEvent]) -> anyhow::Result<()> {
        let relevant: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.aggregate_type == Model::TYPE)
            .collect();
        if relevant.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = relevant
            .iter()
            .map(|e| e.aggregate_id.parse())
            .collect::<Result<_, _>>()?;
        let rows = sqlx::query(&format!("select {COLUMNS} from models where id = any($1)"))
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        let mut touched: HashMap<Uuid, (Model, i64, Option<DateTime<Utc>>, DateTime<Utc>)> = rows
            .iter()
            .map(|r| {
                let v = decode(r)?;
                Ok((
                    v.id,
                    (
                        Model {
                            state: Some(v.model),
                        },
                        v.version,
                        Some(v.registered_at),
                        v.updated_at,
                    ),
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        for (e, id) in relevant.iter().zip(&ids) {
            let event: ModelEvent = e.decode()?;
            let entry = touched
                .entry(*id)
                .or_insert_with(|| (Model::default(), 0, None, e.recorded_at));
            entry.0.apply(event);
            entry.1 = e.sequence;
            entry.2.get_or_insert(e.recorded_at);
            entry.3 = e.recorded_at;
        }
        let views: Vec<ModelView> = touched
            .into_iter()
            .filter_map(|(id, (m, version, registered, updated))| {
                let s = m.state?;
                Some(ModelView::from_state(
                    id,
                    &s,
                    version,
                    registered.unwrap_or(updated),
                    updated,
                ))
            })
            .collect();
        upsert(conn, &views).await
    }
}

async fn upsert(conn: &mut PgConnection, views: &[ModelView]) -> anyhow::Result<()> {
    sqlx::query(
        "insert into models (id, hf_repo_id, display_name, parameter_count, required_vram_gb,
             context_length, data_volume_gb, data_volume_computed, task, active, version,
             registered_at, updated_at)
         select * from unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::int[],
             $6::int[], $7::int[], $8::bool[], $9::text[], $10::bool[], $11::bigint[],
             $12::timestamptz[], $13::timestamptz[])
         on conflict (id) do update set
             display_name = excluded.display_name, parameter_count = excluded.parameter_count,
             required_vram_gb = excluded.required_vram_gb, context_length = excluded.context_length,
             data_volume_gb = excluded.data_volume_gb,
             data_volume_computed = excluded.data_volume_computed, task = excluded.task,
             active = excluded.active, version = excluded.version, updated_at = excluded.updated_at",
    )
    .bind(views.iter().map(|v| v.id).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.model.hf_repo_id.as_str()).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.model.display_name.as_str()).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.model.parameter_count as i64).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.model.required_vram_gb as i32).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.model.context_length as i32).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.model.data_volume_gb as i32).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.model.data_volume_computed).collect::<Vec<_>>())
    .bind(views.iter().map(|v| task_name(v.model.task)).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.model.active).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.version).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.registered_at).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.updated_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Filters for listing models.
#[derive(Debug, Clone, Default)]
pub struct ModelQuery {
    pub active: Option<bool>,
    pub task: Option<ModelTask>,
    /// Case-insensitive match on the repository id or display name.
    pub search: Option<String>,
}

/// Lists models from the live read model, by display name.
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    q: &ModelQuery,
) -> Result<Vec<ModelView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "select {COLUMNS} from rm_model_catalog.models
         where ($1::bool is null or active = $1)
           and ($2::text is null or task = $2)
           and ($3::text is null or hf_repo_id ilike '%' || $3 || '%' or display_name ilike '%' || $3 || '%')
         order by display_name, id"
    ))
    .bind(q.active)
    .bind(q.task.map(task_name))
    .bind(q.search.as_deref().map(escape_like))
    .fetch_all(db)
    .await?;
    rows.iter().map(decode).collect()
}

/// One model from the live read model.
pub async fn get<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Option<ModelView>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "select {COLUMNS} from rm_model_catalog.models where id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(decode).transpose()
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
