//! FinOps: `/api/usage` (token usage over time), `/api/usage/export` (streamed CSV or JSON
//! lines), `/api/costs` (GPU cost per instance and per model, and cost per million tokens).
//!
//! Usage comes from the hourly usage read model, so ranges are whole hours: a range covers
//! every hour bucket that starts inside `[from, to)`. GPU cost is exact to the second.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use inferplane_projections::usage::{TTFT_BOUNDS_MS, ttft_quantile};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Query;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
pub struct UsageQuery {
    pub group_by: Option<String>,
    pub bucket: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Export only: `csv` (default) or `json` (one JSON object per line).
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Key,
    Model,
    Worker,
    Endpoint,
}

impl Group {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "key" => Some(Self::Key),
            "model" => Some(Self::Model),
            "worker" | "instance" => Some(Self::Worker),
            "endpoint" => Some(Self::Endpoint),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Model => "model",
            Self::Worker => "worker",
            Self::Endpoint => "endpoint",
        }
    }

    /// Selected columns and the GROUP BY expressions.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Self::Key => ("key_id, max(key_prefix) as key_prefix", "key_id"),
            Self::Model => ("model", "model"),
            Self::Worker => ("instance_id", "instance_id"),
            Self::Endpoint => ("endpoint", "endpoint"),
        }
    }
}

/// One row of usage.
#[derive(Debug, Serialize)]
pub struct UsageRow {
    pub bucket_start: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Option<Uuid>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<Option<Uuid>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub avg_duration_ms: Option<i64>,
    pub ttft_p50_ms: Option<u32>,
    pub ttft_p95_ms: Option<u32>,
    pub ttft_p99_ms: Option<u32>,
}

struct Plan {
    groups: Vec<Group>,
    bucket: &'static str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

fn plan(q: &UsageQuery, default_from: DateTime<Utc>) -> Result<Plan, ApiError> {
    let mut groups = Vec::new();
    if let Some(g) = &q.group_by {
        for part in g.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let group = Group::parse(part).ok_or_else(|| {
                ApiError::invalid_field(
                    "group_by",
                    format!("unknown grouping {part:?}: use key, model, worker, endpoint"),
                )
            })?;
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
    }
    let bucket = match q.bucket.as_deref().unwrap_or("hour") {
        "hour" => "hour",
        "day" => "day",
        "month" => "month",
        other => {
            return Err(ApiError::invalid_field(
                "bucket",
                format!("unknown bucket {other:?}: use hour, day or month"),
            ));
        }
    };
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(default_from);
    if from >= to {
        return Err(ApiError::invalid_field("from", "from must be before to"));
    }
    Ok(Plan {
        groups,
        bucket,
        from,
        to,
    })
}

fn sql(p: &Plan) -> String {
    let mut select = vec![format!(
        "date_trunc('{}', bucket_start at time zone 'utc') at time zone 'utc' as b",
        p.bucket
    )];
    let mut group_by = vec!["b".to_string()];
    for g in &p.groups {
        let (s, gb) = g.sql();
        select.push(s.to_string());
        group_by.push(gb.to_string());
    }
    let hist: Vec<String> = (1..=TTFT_BOUNDS_MS.len() + 1)
        .map(|i| format!("sum(ttft_hist[{i}])"))
        .collect();
    format!(
        "select {}, sum(requests)::bigint as requests, sum(errors)::bigint as errors,
                sum(prompt_tokens)::bigint as prompt_tokens,
                sum(completion_tokens)::bigint as completion_tokens,
                sum(duration_ms_sum)::bigint as duration_ms_sum,
                array[{}]::bigint[] as hist
         from rm_usage.hourly
         where bucket_start >= date_trunc('hour', $1::timestamptz at time zone 'utc') at time zone 'utc'
           and bucket_start < $2
         group by {} order by {}",
        select.join(", "),
        hist.join(", "),
        group_by.join(", "),
        group_by.join(", ")
    )
}

fn nil_to_none(id: Uuid) -> Option<Uuid> {
    (!id.is_nil()).then_some(id)
}

fn decode(r: &PgRow, groups: &[Group]) -> Result<UsageRow, sqlx::Error> {
    let hist: Vec<i64> = r.try_get("hist")?;
    let requests: i64 = r.try_get("requests")?;
    let duration: i64 = r.try_get("duration_ms_sum")?;
    let has = |g: Group| groups.contains(&g);
    Ok(UsageRow {
        bucket_start: r.try_get("b")?,
        key_id: if has(Group::Key) {
            Some(nil_to_none(r.try_get("key_id")?))
        } else {
            None
        },
        key_prefix: if has(Group::Key) {
            Some(r.try_get("key_prefix")?)
        } else {
            None
        },
        model: if has(Group::Model) {
            Some(r.try_get("model")?)
        } else {
            None
        },
        instance_id: if has(Group::Worker) {
            Some(nil_to_none(r.try_get("instance_id")?))
        } else {
            None
        },
        endpoint: if has(Group::Endpoint) {
            Some(r.try_get("endpoint")?)
        } else {
            None
        },
        requests,
        errors: r.try_get("errors")?,
        prompt_tokens: r.try_get("prompt_tokens")?,
        completion_tokens: r.try_get("completion_tokens")?,
        avg_duration_ms: (requests > 0).then(|| duration / requests),
        ttft_p50_ms: ttft_quantile(&hist, 0.5),
        ttft_p95_ms: ttft_quantile(&hist, 0.95),
        ttft_p99_ms: ttft_quantile(&hist, 0.99),
    })
}

/// `GET /api/usage`
pub async fn usage(
    State(state): State<AppState>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if q.format.is_some() {
        return Err(ApiError::invalid_field(
            "format",
            "format applies to /api/usage/export only",
        ));
    }
    let p = plan(&q, Utc::now() - Duration::days(7))?;
    let rows = sqlx::query(&sql(&p))
        .bind(p.from)
        .bind(p.to)
        .fetch_all(&state.pool)
        .await?;
    let rows: Vec<UsageRow> = rows
        .iter()
        .map(|r| decode(r, &p.groups))
        .collect::<Result<_, _>>()?;
    let totals = json!({
        "requests": rows.iter().map(|r| r.requests).sum::<i64>(),
        "errors": rows.iter().map(|r| r.errors).sum::<i64>(),
        "prompt_tokens": rows.iter().map(|r| r.prompt_tokens).sum::<i64>(),
        "completion_tokens": rows.iter().map(|r| r.completion_tokens).sum::<i64>(),
    });
    Ok(Json(json!({
        "bucket": p.bucket,
        "group_by": p.groups.iter().map(|g| g.name()).collect::<Vec<_>>(),
        "from": p.from,
        "to": p.to,
        "rows": rows,
        "totals": totals,
    })))
}

const CSV_HEADER: &str = "bucket_start,key_id,key_prefix,model,instance_id,endpoint,requests,errors,prompt_tokens,completion_tokens,avg_duration_ms,ttft_p50_ms,ttft_p95_ms,ttft_p99_ms\n";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(r: &UsageRow) -> String {
    let opt_id = |v: &Option<Option<Uuid>>| v.flatten().map(|u| u.to_string()).unwrap_or_default();
    let opt_num = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
        r.bucket_start.to_rfc3339(),
        opt_id(&r.key_id),
        csv_field(r.key_prefix.as_deref().unwrap_or("")),
        csv_field(r.model.as_deref().unwrap_or("")),
        opt_id(&r.instance_id),
        csv_field(r.endpoint.as_deref().unwrap_or("")),
        r.requests,
        r.errors,
        r.prompt_tokens,
        r.completion_tokens,
        r.avg_duration_ms.map(|n| n.to_string()).unwrap_or_default(),
        opt_num(r.ttft_p50_ms),
        opt_num(r.ttft_p95_ms),
        opt_num(r.ttft_p99_ms),
    )
}

/// The export as a stream of bytes: every row of the range, grouped by key, model, worker and
/// endpoint unless `group_by` says otherwise, read and sent as it goes (constant memory for
/// months of data). Returns the stream and whether it is CSV (else JSON lines).
pub fn export_stream(
    pool: sqlx::PgPool,
    mut q: UsageQuery,
) -> Result<
    (
        futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
        bool,
    ),
    ApiError,
> {
    let csv = match q.format.as_deref().unwrap_or("csv") {
        "csv" => true,
        "json" => false,
        other => {
            return Err(ApiError::invalid_field(
                "format",
                format!("unknown format {other:?}: use csv or json"),
            ));
        }
    };
    if q.group_by.is_none() {
        q.group_by = Some("key,model,worker,endpoint".into());
    }
    let p = plan(&q, DateTime::<Utc>::UNIX_EPOCH)?;
    let groups = p.groups.clone();
    let query = sql(&p);
    let (from, to) = (p.from, p.to);
    let body = async_stream::stream! {
        if csv {
            yield Ok::<_, std::io::Error>(bytes::Bytes::from_static(CSV_HEADER.as_bytes()));
        }
        let mut rows = sqlx::query(&query).bind(from).bind(to).fetch(&pool);
        let mut batch = String::new();
        while let Some(row) = rows.next().await {
            let line = match row.and_then(|r| decode(&r, &groups)) {
                Ok(r) if csv => csv_line(&r),
                Ok(r) => serde_json::to_string(&r).map(|s| s + "\n").unwrap_or_default(),
                Err(e) => {
                    // Headers are gone: end the body so the client sees a truncated file.
                    tracing::error!(error = %e, "usage export failed mid-stream");
                    yield Err(std::io::Error::other("usage export failed"));
                    return;
                }
            };
            batch.push_str(&line);
            if batch.len() >= 64 * 1024 {
                yield Ok(bytes::Bytes::from(std::mem::take(&mut batch)));
            }
        }
        if !batch.is_empty() {
            yield Ok(bytes::Bytes::from(batch));
        }
    };
    Ok((Box::pin(body), csv))
}

/// `GET /api/usage/export?format=csv|json`: see [`export_stream`].
pub async fn export(
    State(state): State<AppState>,
    Query(q): Query<UsageQuery>,
) -> Result<Response, ApiError> {
    let to = q.to.unwrap_or_else(Utc::now);
    let (body, csv) = export_stream(state.pool.clone(), UsageQuery { to: Some(to), ..q })?;
    let mut res = Response::new(Body::from_stream(body));
    let (ctype, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "jsonl")
    };
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"inferplane-usage-{}.{ext}\"",
        to.format("%Y%m%dT%H%M%SZ")
    )) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[derive(Debug, Serialize)]
pub struct InstanceCost {
    pub instance_id: Uuid,
    pub model: String,
    pub instance_type: String,
    pub zone: String,
    pub hourly_price_micro_eur: i64,
    pub billable_seconds: i64,
    pub cost_micro_eur: i64,
}

#[derive(Debug, Serialize)]
pub struct ModelCost {
    pub model: String,
    pub instances: usize,
    pub cost_micro_eur: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// GPU cost divided by the tokens served, per million tokens; `None` without tokens.
    pub cost_per_million_tokens_micro_eur: Option<i64>,
}

impl ModelCost {
    fn empty(model: &str) -> Self {
        Self {
            model: model.to_string(),
            instances: 0,
            cost_micro_eur: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_per_million_tokens_micro_eur: None,
        }
    }
}

/// `GET /api/costs`: what the GPUs cost in `[from, to)` (default: the last 30 days), per
/// instance (the part of its billable time inside the range) and per model.
pub async fn costs(
    State(state): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = Utc::now();
    let to = q.to.unwrap_or(now);
    let from = q.from.unwrap_or(to - Duration::days(30));
    if from >= to {
        return Err(ApiError::invalid_field("from", "from must be before to"));
    }
    let rows = sqlx::query(
        "select id, model_repo, instance_type, zone, hourly_price_micro_eur,
                floor(extract(epoch from
                    least(coalesce(terminated_at, $3), $2) - greatest(requested_at, $1)))::bigint as secs
         from rm_instances.instances
         where requested_at < $2 and coalesce(terminated_at, $3) > $1
         order by requested_at, id",
    )
    .bind(from)
    .bind(to)
    .bind(now)
    .fetch_all(&state.pool)
    .await?;
    let mut instances = Vec::with_capacity(rows.len());
    for r in &rows {
        let price: i64 = r.try_get("hourly_price_micro_eur")?;
        let secs: i64 = r.try_get::<i64, _>("secs")?.max(0);
        let cost = i128::from(price) * i128::from(secs) / 3600;
        instances.push(InstanceCost {
            instance_id: r.try_get("id")?,
            model: r.try_get("model_repo")?,
            instance_type: r.try_get("instance_type")?,
            zone: r.try_get("zone")?,
            hourly_price_micro_eur: price,
            billable_seconds: secs,
            cost_micro_eur: i64::try_from(cost).unwrap_or(i64::MAX),
        });
    }
    let tokens = sqlx::query(
        "select model, sum(prompt_tokens)::bigint as p, sum(completion_tokens)::bigint as c
         from rm_usage.hourly
         where bucket_start >= date_trunc('hour', $1::timestamptz at time zone 'utc') at time zone 'utc'
           and bucket_start < $2
         group by model",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&state.pool)
    .await?;
    let mut models: HashMap<String, ModelCost> = HashMap::new();
    for i in &instances {
        let m = models
            .entry(i.model.clone())
            .or_insert_with(|| ModelCost::empty(&i.model));
        m.instances += 1;
        m.cost_micro_eur = m.cost_micro_eur.saturating_add(i.cost_micro_eur);
    }
    for r in &tokens {
        let model: String = r.try_get("model")?;
        let m = models
            .entry(model.clone())
            .or_insert_with(|| ModelCost::empty(&model));
        m.prompt_tokens = r.try_get("p")?;
        m.completion_tokens = r.try_get("c")?;
    }
    let mut models: Vec<ModelCost> = models.into_values().collect();
    for m in &mut models {
        let tokens = m.prompt_tokens + m.completion_tokens;
        m.cost_per_million_tokens_micro_eur = (tokens > 0).then(|| {
            i64::try_from(i128::from(m.cost_micro_eur) * 1_000_000 / i128::from(tokens))
                .unwrap_or(i64::MAX)
        });
    }
    models.sort_by(|a, b| {
        b.cost_micro_eur
            .cmp(&a.cost_micro_eur)
            .then(a.model.cmp(&b.model))
    });
    let total: i64 = instances.iter().map(|i| i.cost_micro_eur).sum();
    Ok(Json(json!({
        "from": from,
        "to": to,
        "total_cost_micro_eur": total,
        "instances": instances,
        "models": models,
    })))
}
