//! Retry policy: which failures are retried, and how long to wait.
//!
//! Delays grow exponentially from [`RetryPolicy::backoff_base`] (`base * 2^(n-1)` before the
//! n-th retry), capped at [`RetryPolicy::backoff_max`], with "equal jitter" (half fixed, half
//! random) so that many clients do not retry in lockstep. A `Retry-After` header (delta seconds)
//! on a 429 or 503 replaces the computed delay; when it asks for longer than
//! [`RetryPolicy::max_retry_after`], the client gives up at once instead of blocking its caller.

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::Idempotency;
use crate::error::ScalewayError;

/// How many times, and how patiently, to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// Delay before the first retry (doubled each time).
    pub backoff_base: Duration,
    /// Upper bound of a computed delay.
    pub backoff_max: Duration,
    /// Longest `Retry-After` the client accepts to wait.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries, 500 ms doubling up to 20 s, `Retry-After` honoured up to 120 s.
    fn default() -> Self {
        Self {
            max_retries: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (1-based), or `None` to give up (a `Retry-After`
    /// longer than [`RetryPolicy::max_retry_after`]).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(wait) = retry_after {
            return (wait <= self.max_retry_after).then_some(wait);
        }
        let exponent = retry.saturating_sub(1).min(30);
        let full = self
            .backoff_base
            .saturating_mul(1u32 << exponent)
            .min(self.backoff_max);
        let half = full / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if jitter_nanos == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(rand::random_range(0..=jitter_nanos))
        };
        Some(half + jitter)
    }
}

/// `Retry-After` in delta seconds, only for 429 and 503 (HTTP dates are ignored: the
/// exponential backoff applies then).
pub(crate) fn retry_after(status: u16, headers: &HeaderMap) -> Option<Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Whether an answer with this status is retried.
pub(crate) fn retry_status(status: u16, idempotency: Idempotency) -> bool {
    match status {
        429 => true,
        500..=599 => idempotency == Idempotency::Idempotent,
        _ => false,
    }
}

/// The kind of a failure without an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureClass {
    /// The connection could not be established: the request was never sent.
    Connect,
    /// No answer in time: the request may have been applied.
    Timeout,
    /// Failed after sending (reset, truncated body): the request may have been applied.
    Transport,
}

pub(crate) fn classify(err: &reqwest::Error) -> FailureClass {
    if err.is_connect() {
        FailureClass::Connect
    } else if err.is_timeout() {
        FailureClass::Timeout
    } else {
        FailureClass::Transport
    }
}

impl FailureClass {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect_error",
            Self::Timeout => "timeout",
            Self::Transport => "transport_error",
        }
    }

    /// Connect errors are retried for every call; the others only for idempotent calls.
    pub fn retryable(self, idempotency: Idempotency) -> bool {
        self == Self::Connect || idempotency == Idempotency::Idempotent
    }

    pub fn to_error(self, err: &reqwest::Error) -> ScalewayError {
        match self {
            Self::Timeout => ScalewayError::Timeout,
            Self::Connect | Self::Transport => ScalewayError::Transport(render(err)),
        }
    }
}

/// The error chain as text. reqwest errors carry the URL (zone and ids, no secret) and never the
/// request headers.
fn render(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_cap() {
        let policy = RetryPolicy {
            max_retries: 10,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(5),
        };
        for _ in 0..50 {
            let d1 = policy.delay(1, None).unwrap_or_default();
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = policy.delay(3, None).unwrap_or_default();
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = policy.delay(9, None).unwrap_or_default();
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000));
        }
        assert_eq!(
            policy.delay(40, None).map(|d| d <= Duration::from_secs(1)),
            Some(true)
        );
    }

    #[test]
    fn retry_after_wins_within_bounds() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(policy.delay(1, Some(Duration::from_secs(3600))), None);
    }

    #[test]
    fn retry_after_only_on_429_and_503() {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "3".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(retry_after(429, &headers), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(503, &headers), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(500, &headers), None);
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(retry_after(429, &headers), None);
    }

    #[test]
    fn creates_are_only_retried_on_429_and_connect() {
        use Idempotency::*;
        assert!(retry_status(429, Create));
        assert!(!retry_status(500, Create));
        assert!(!retry_status(503, Create));
        assert!(retry_status(502, Idempotent));
        assert!(!retry_status(404, Idempotent));
        assert!(FailureClass::Connect.retryable(Create));
        assert!(!FailureClass::Timeout.retryable(Create));
        assert!(!FailureClass::Transport.retryable(Create));
        assert!(FailureClass::Timeout.retryable(Idempotent));
    }
}
