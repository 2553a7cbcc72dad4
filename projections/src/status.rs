use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

/// Where a projection stands against the head of the stream.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    /// Version of the code that built the read model.
    pub version: i32,
    /// Version of the code in this binary; differs until the leader rebuilds.
    pub code_version: Option<i32>,
    pub position: i64,
    pub events_applied: i64,
    /// Committed events the projection has not applied yet.
    pub lag_events: i64,
    /// Age of the oldest event it has not applied yet (0 when caught up).
    pub lag_seconds: f64,
    pub updated_at: DateTime<Utc>,
}

/// Status of every installed projection.
pub async fn status(pool: &PgPool) -> anyhow::Result<Vec<ProjectionStatus>> {
    let rows = sqlx::query(
        "select c.name, c.version, c.position, c.events_applied, c.updated_at, lag.events, lag.oldest
         from projection_checkpoints c
         cross join lateral (
             select count(*) as events, min(e.recorded_at) as oldest from events e
             where (e.transaction_id, e.position) > (c.transaction_id, c.position)
         ) lag
         order by c.name",
    )
    .fetch_all(pool)
    .await?;
    let now = Utc::now();
    rows.into_iter()
        .map(|r| {
            let name: String = r.try_get("name")?;
            let oldest: Option<DateTime<Utc>> = r.try_get("oldest")?;
            Ok(ProjectionStatus {
                code_version: crate::by_name(&name).map(|p| p.version()),
                name,
                version: r.try_get("version")?,
                position: r.try_get("position")?,
                events_applied: r.try_get("events_applied")?,
                lag_events: r.try_get("events")?,
                lag_seconds: oldest
                    .map_or(0.0, |o| (now - o).num_milliseconds().max(0) as f64 / 1000.0),
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}
