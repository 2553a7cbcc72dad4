//! Per-key rate limits (requests and tokens per minute) and monthly token budgets.
//!
//! Limits are token buckets held by each gateway process: with N processes behind a load
//! balancer, a key can reach up to N times its limit (docs/api.md says so). Requests are
//! admitted while the request bucket holds one request and the token bucket is not in debt;
//! the tokens a request used are taken from the bucket when it ends, so a large answer puts the
//! key in debt and the next requests wait for the refill.
//!
//! Budgets count tokens per calendar month (UTC) across every process: the total comes from
//! the usage read model (refreshed in the background) plus what this process served since.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::keys::KeyInfo;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Self {
        Self {
            level: capacity,
            at: now,
        }
    }

    /// Refills at `capacity` per minute, up to `capacity`.
    fn refill(&mut self, capacity: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * capacity / 60.0).min(capacity);
        self.at = now;
    }

    /// Time until the level reaches `target`.
    fn wait_for(&self, target: f64, capacity: f64) -> Duration {
        let missing = (target - self.level).max(0.0);
        Duration::from_secs_f64(missing * 60.0 / capacity)
    }
}

#[derive(Debug, Default)]
struct KeyState {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    /// Tokens served by this process this month, not yet in `month_total`.
    local_month_tokens: i64,
    /// Tokens of the month in the usage read model, at the last refresh.
    month_total: i64,
}

/// A refusal, with how long to wait.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Requests { limit: i64, retry_after: Duration },
    Tokens { limit: i64, retry_after: Duration },
    Budget { limit: i64, used: i64 },
}

#[derive(Default)]
pub struct Limiter {
    keys: Mutex<HashMap<Uuid, KeyState>>,
}

impl Limiter {
    /// Admits one request of `key` at `now`, or says why not.
    pub fn admit(&self, key: &KeyInfo, now: Instant) -> Result<(), Refusal> {
        let l = &key.limits;
        if l.rpm_limit.is_none() && l.tpm_limit.is_none() && l.budget_tokens.is_none() {
            return Ok(());
        }
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let s = keys.entry(key.id).or_default();
        if let Some(limit) = l.budget_tokens {
            let used = s.month_total + s.local_month_tokens;
            if used >= limit {
                return Err(Refusal::Budget { limit, used });
            }
        }
        if let Some(limit) = l.tpm_limit {
            let cap = limit as f64;
            let b = s.tokens.get_or_insert_with(|| Bucket::full(cap, now));
            b.refill(cap, now);
            if b.level <= 0.0 {
                return Err(Refusal::Tokens {
                    limit,
                    retry_after: b.wait_for(1.0, cap),
                });
            }
        }
        if let Some(limit) = l.rpm_limit {
            let cap = limit as f64;
            let b = s.requests.get_or_insert_with(|| Bucket::full(cap, now));
            b.refill(cap, now);
            if b.level < 1.0 {
                return Err(Refusal::Requests {
                    limit,
                    retry_after: b.wait_for(1.0, cap),
                });
            }
            b.level -= 1.0;
        }
        Ok(())
    }

    /// Charges the tokens a finished request used.
    pub fn charge(&self, key: &KeyInfo, tokens: u64, now: Instant) {
        let l = &key.limits;
        if l.tpm_limit.is_none() && l.budget_tokens.is_none() {
            return;
        }
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let s = keys.entry(key.id).or_default();
        s.local_month_tokens += tokens as i64;
        if let Some(limit) = l.tpm_limit {
            let cap = limit as f64;
            let b = s.tokens.get_or_insert_with(|| Bucket::full(cap, now));
            b.refill(cap, now);
            b.level -= tokens as f64;
        }
    }

    /// Replaces the month's totals with the read model's (which now include what this process
    /// flushed before the refresh started).
    pub fn set_month_totals(&self, totals: &HashMap<Uuid, i64>) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for (id, s) in keys.iter_mut() {
            s.month_total = totals.get(id).copied().unwrap_or(0);
            s.local_month_tokens = 0;
        }
        for (id, total) in totals {
            keys.entry(*id).or_default().month_total = *total;
        }
    }
}

#[cfg(test)]
mod tests {
    use inferplane_domain::api_key::KeyLimits;

    use super::*;

    fn key(limits: KeyLimits) -> KeyInfo {
        KeyInfo {
            id: Uuid::now_v7(),
            name: "k".into(),
            prefix: "sk-ip-00000000".into(),
            limits,
        }
    }

    #[test]
    fn requests_per_minute_refill_continuously() {
        let limiter = Limiter::default();
        let k = key(KeyLimits {
            rpm_limit: Some(60),
            ..Default::default()
        });
        let t0 = Instant::now();
        for _ in 0..60 {
            limiter.admit(&k, t0).unwrap();
        }
        let Err(Refusal::Requests { retry_after, .. }) = limiter.admit(&k, t0) else {
            panic!("the 61st request in the same instant must be refused");
        };
        assert!(retry_after <= Duration::from_secs(1) && retry_after > Duration::ZERO);
        limiter.admit(&k, t0 + Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn tokens_per_minute_put_a_key_in_debt_and_budgets_refuse_past_the_limit() {
        let limiter = Limiter::default();
        let k = key(KeyLimits {
            tpm_limit: Some(600),
            ..Default::default()
        });
        let t0 = Instant::now();
        limiter.admit(&k, t0).unwrap();
        limiter.charge(&k, 900, t0);
        let Err(Refusal::Tokens { retry_after, .. }) = limiter.admit(&k, t0) else {
            panic!("a key in debt must wait");
        };
        // 300 tokens of debt at 10 tokens/s: a little over 30 s.
        assert!(retry_after > Duration::from_secs(30) && retry_after < Duration::from_secs(31));
        limiter.admit(&k, t0 + Duration::from_secs(31)).unwrap();

        let b = key(KeyLimits {
            budget_tokens: Some(1000),
            ..Default::default()
        });
        limiter.admit(&b, t0).unwrap();
        limiter.charge(&b, 400, t0);
        limiter.set_month_totals(&HashMap::from([(b.id, 700)]));
        limiter.admit(&b, t0).unwrap();
        limiter.charge(&b, 300, t0);
        assert_eq!(
            limiter.admit(&b, t0),
            Err(Refusal::Budget {
                limit: 1000,
                used: 1000
            })
        );
    }
}
