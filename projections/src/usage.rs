//! The usage read model: what the gateway served, per hour x key x model x worker x endpoint,
//! and when each key was last used.
//!
//! Time to first token is kept as a histogram per row ([`TTFT_BOUNDS_MS`]) so percentiles can
//! be computed over any grouping (day, key, model) from the merged histograms; figures are the
//! upper bound of the bucket the percentile falls in.

use std::collections::HashMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use inferplane_domain::usage::{UsageEvent, UsageRecord};
use inferplane_store::StoredEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Projection;

/// Upper bounds (ms) of the time-to-first-token buckets; a last bucket holds the rest.
pub const TTFT_BOUNDS_MS: [u32; 15] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
];

/// Keeps `rm_usage.hourly` and `rm_usage.key_last_used` current.
pub struct UsageModel;

const SCHEMA: &str = "
create table hourly (
    bucket_start      timestamptz not null,
    -- the nil uuid for the operator's console
    key_id            uuid not null,
    key_prefix        text not null,
    model             text not null,
    -- the nil uuid when no worker was reached
    instance_id       uuid not null,
    endpoint          text not null,
    requests          bigint not null,
    errors            bigint not null,
    streamed          bigint not null,
    prompt_tokens     bigint not null,
    completion_tokens bigint not null,
    duration_ms_sum   bigint not null,
    ttft_hist         bigint[] not null,
    primary key (bucket_start, key_id, model, instance_id, endpoint)
) with (fillfactor = 70);
create index hourly_key on hourly (key_id, bucket_start);
create table key_last_used (
    key_id       uuid primary key,
    last_used_at timestamptz not null
);
";

/// The hour a record belongs to.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The bucket of a time to first token.
pub fn ttft_bucket(ms: u32) -> usize {
    TTFT_BOUNDS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(TTFT_BOUNDS_MS.len())
}

/// The `q` quantile (0..1) of a TTFT histogram, as a bucket's upper bound; `None` when empty.
pub fn ttft_quantile(hist: &[i64], q: f64) -> Option<u32> {
    let total: i64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(TTFT_BOUNDS_MS.get(i).copied().unwrap_or(u32::MAX));
        }
    }
    None
}

#[derive(Default)]
struct Row {
    key_prefix: String,
    requests: i64,
    errors: i64,
    streamed: i64,
    prompt: i64,
    completion: i64,
    duration: i64,
    hist: Vec<i64>,
}

type GroupKey = (DateTime<Utc>, Uuid, String, Uuid, String);

fn add(rows: &mut HashMap<GroupKey, Row>, r: &UsageRecord) {
    let key = (
        hour_of(r.started_at),
        r.key_id.unwrap_or(Uuid::nil()),
        r.model.clone(),
        r.instance_id.unwrap_or(Uuid::nil()),
        r.endpoint.clone(),
    );
    let row = rows.entry(key).or_insert_with(|| Row {
        key_prefix: r.key_prefix.clone(),
        hist: vec![0; TTFT_BOUNDS_MS.len() + 1],
        ..Row::default()
    });
    row.requests += 1;
    row.errors += i64::from(r.is_error());
    row.streamed += i64::from(r.streamed);
    row.prompt += r.prompt_tokens as i64;
    row.completion += r.completion_tokens as i64;
    row.duration += i64::from(r.duration_ms);
    if let Some(t) = r.ttft_ms {
        row.hist[ttft_bucket(t)] += 1;
    }
}

#[async_trait::async_trait]
impl Projection for UsageModel {
    fn name(&self) -> &'static str {
        "usage"
    }

    fn version(&self) -> i32 {
        1
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["usage"]
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[StoredEvent]) -> anyhow::Result<()> {
        let mut rows: HashMap<GroupKey, Row> = HashMap::new();
        let mut last_used: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
        for e in events.iter().filter(|e| e.aggregate_type == "usage") {
            let UsageEvent::UsageRecorded { records } = e.decode()?;
            for r in &records {
                add(&mut rows, r);
                if let Some(k) = r.key_id {
                    let at = last_used.entry(k).or_insert(r.started_at);
                    *at = (*at).max(r.started_at);
                }
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        // One statement for every group of the batch.
        let mut bucket = Vec::new();
        let mut key_id = Vec::new();
        let mut prefix = Vec::new();
        let mut model = Vec::new();
        let mut instance = Vec::new();
        let mut endpoint = Vec::new();
        let mut nums: [Vec<i64>; 6] = Default::default();
        let mut hists = Vec::new();
        for ((b, k, m, i, ep), r) in rows {
            bucket.push(b);
            key_id.push(k);
            prefix.push(r.key_prefix);
            model.push(m);
            instance.push(i);
            endpoint.push(ep);
            for (v, n) in nums.iter_mut().zip([
                r.requests,
                r.errors,
                r.streamed,
                r.prompt,
                r.completion,
                r.duration,
            ]) {
                v.push(n);
            }
            // Arrays of arrays do not bind; a text form per row does.
            hists.push(format!(
                "{{{}}}",
                r.hist
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        sqlx::query(
            "insert into hourly as h (bucket_start, key_id, key_prefix, model, instance_id, endpoint,
                 requests, errors, streamed, prompt_tokens, completion_tokens, duration_ms_sum, ttft_hist)
             select b, k, p, m, i, ep, rq, er, st, pt, ct, du, hs::bigint[]
             from unnest($1::timestamptz[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                         $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[],
                         $13::text[])
                  as u(b, k, p, m, i, ep, rq, er, st, pt, ct, du, hs)
             on conflict (bucket_start, key_id, model, instance_id, endpoint) do update set
                 key_prefix = excluded.key_prefix,
                 requests = h.requests + excluded.requests,
                 errors = h.errors + excluded.errors,
                 streamed = h.streamed + excluded.streamed,
                 prompt_tokens = h.prompt_tokens + excluded.prompt_tokens,
                 completion_tokens = h.completion_tokens + excluded.completion_tokens,
                 duration_ms_sum = h.duration_ms_sum + excluded.duration_ms_sum,
                 ttft_hist = (select array_agg(a + c order by n)
                              from unnest(h.ttft_hist, excluded.ttft_hist) with ordinality as x(a, c, n))",
        )
        .bind(&bucket)
        .bind(&key_id)
        .bind(&prefix)
        .bind(&model)
        .bind(&instance)
        .bind(&endpoint)
        .bind(&nums[0])
        .bind(&nums[1])
        .bind(&nums[2])
        .bind(&nums[3])
        .bind(&nums[4])
        .bind(&nums[5])
        .bind(&hists)
        .execute(&mut *conn)
        .await?;
        if !last_used.is_empty() {
            let (ids, ats): (Vec<Uuid>, Vec<DateTime<Utc>>) = last_used.into_iter().unzip();
            sqlx::query(
                "insert into key_last_used as k (key_id, last_used_at)
                 select * from unnest($1::uuid[], $2::timestamptz[])
                 on conflict (key_id) do update
                 set last_used_at = greatest(k.last_used_at, excluded.last_used_at)",
            )
            .bind(&ids)
            .bind(&ats)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_merged_histograms() {
        let mut hist = vec![0i64; TTFT_BOUNDS_MS.len() + 1];
        for ms in [3, 4, 4, 40, 900] {
            hist[ttft_bucket(ms)] += 1;
        }
        assert_eq!(ttft_quantile(&hist, 0.5), Some(5));
        assert_eq!(ttft_quantile(&hist, 0.8), Some(50));
        assert_eq!(ttft_quantile(&hist, 0.99), Some(1_000));
        assert_eq!(ttft_quantile(&[0; 16], 0.5), None);
        assert_eq!(ttft_bucket(61_000), TTFT_BOUNDS_MS.len());
    }
}
