//! `/api/zones` and `/api/instance-types`: the GPU catalog, and
//! `/api/models/{id}/compatible-types`: which types a model fits on, zone by zone.
//!
//! As for models, commands answer from the aggregate they just changed; queries answer from
//! the `gpu_catalog` read model.

pub mod instance_types;
pub mod zones;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use inferplane_domain::catalog::CatalogError;
use inferplane_domain::model::ModelError;
use inferplane_projections::{gpu_catalog, models};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::AppState;
use crate::error::{ApiError, FieldError};
use crate::extract::{PathId, Query};

pub(crate) fn rejection(e: CatalogError) -> ApiError {
    let status = match e {
        CatalogError::ZoneNotRegistered | CatalogError::TypeNotRegistered => StatusCode::NOT_FOUND,
        CatalogError::ZoneAlreadyRegistered { .. } | CatalogError::TypeAlreadyRegistered { .. } => {
            StatusCode::CONFLICT
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(
        status,
        e.code(),
        "Refused by the GPU catalog",
        e.to_string(),
    )
}

/// A zone code in a query that names no registered zone. Refused rather than answered with
/// an empty list, so a typo is not mistaken for "nothing fits there".
fn unknown_zone(code: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::BAD_REQUEST,
        "unknown-zone",
        "Unknown zone",
        format!("zone: no zone with code {code:?} is registered"),
    );
    e.errors.push(FieldError {
        field: "zone".into(),
        message: "no such zone".into(),
    });
    e
}

/// Checks a `zone` query parameter against the read model.
async fn known_zone(
    conn: &mut PgConnection,
    zone: Option<String>,
) -> Result<Option<String>, ApiError> {
    match zone.filter(|z| !z.is_empty()) {
        Some(z) if !gpu_catalog::zone_known(conn, &z).await? => Err(unknown_zone(&z)),
        z => Ok(z),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatibleQuery {
    zone: Option<String>,
}

#[derive(Serialize)]
struct Compatible {
    model_id: uuid::Uuid,
    hf_repo_id: String,
    required_vram_gb: u32,
    recommended_data_volume_gb: u32,
    /// The zone asked for; `null` when all zones were searched.
    zone: Option<String>,
    instance_types: Vec<gpu_catalog::InstanceTypeView>,
}

/// `GET /api/models/{id}/compatible-types[?zone=]`: the active types the model fits on,
/// available or scarce in the zone (or in any zone), cheapest first.
pub async fn compatible_types(
    State(state): State<AppState>,
    PathId(id): PathId,
    Query(q): Query<CompatibleQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let Some(model) = models::get(&mut *conn, id).await? else {
        let e = ModelError::NotRegistered;
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            e.code(),
            "Refused by the model catalog",
            e.to_string(),
        ));
    };
    let zone = known_zone(&mut conn, q.zone).await?;
    let instance_types =
        gpu_catalog::compatible_types(&mut conn, model.model.required_vram_gb, zone.as_deref())
            .await?;
    Ok(Json(
        serde_json::to_value(Compatible {
            model_id: id,
            hf_repo_id: model.model.hf_repo_id,
            required_vram_gb: model.model.required_vram_gb,
            recommended_data_volume_gb: model.model.data_volume_gb,
            zone,
            instance_types,
        })
        .map_err(anyhow::Error::from)?,
    ))
}
