//! [`ScalewayClient`]: the typed Scaleway client.
//!
//! # Requests
//! Every call is zone-aware (`zone: &str`; [`ScalewayClient::default_zone`] gives the configured
//! one) and goes through one request loop that:
//! - sends `X-Auth-Token` (a header value marked *sensitive*, so `hyper`/`reqwest` debug output
//!   hides it) and `User-Agent: inferplane/<version>`;
//! - logs each attempt at debug level with the operation, method, path, status, Scaleway's
//!   `X-Request-Id` and attempt number (never the key);
//! - records `scaleway_requests_total{operation,status}` and
//!   `scaleway_request_duration_seconds{operation}`, where `operation` is a fixed name from
//!   [`crate::operations`] (never an id) and `status` the HTTP status or `timeout`,
//!   `connect_error`, `transport_error`;
//! - maps non-2xx answers to [`ScalewayError`].
//!
//! # Retries
//! Exponential backoff with jitter, at most [`RetryPolicy::max_retries`] retries, honouring
//! `Retry-After` (seconds) on 429 and 503 (see [`retry`]). What is retried depends on whether
//! repeating the request is harmless:
//!
//! | failure | GET, DELETE, PATCH, actions, attach/detach | creates (`POST /servers`, `POST volumes`, `POST /ips`) |
//! |---|---|---|
//! | 429 | retried | retried (Scaleway refused it before acting) |
//! | 5xx | retried | **not retried**: returns [`ScalewayError::Server`] |
//! | timeout | retried | **not retried**: returns [`ScalewayError::Timeout`] |
//! | connect error (request never sent) | retried | retried |
//! | other transport error (sent, answer lost) | retried | **not retried**: [`ScalewayError::Transport`] |
//!
//! A create that fails with a 5xx or a timeout may still have created the resource
//! ([`ScalewayError::outcome_unknown`]). Retrying blindly could rent a second GPU VM, so the
//! client returns the error and the caller looks the resource up by the tag it put on it (the
//! instance id) before creating again. A retried action may answer `PreconditionFailed` when an
//! earlier attempt was in fact applied (e.g. "server should be stopped" for a second `poweron`):
//! callers re-read the server rather than trusting the error alone.

mod ips;
mod paging;
mod products;
pub mod retry;
mod servers;
mod volumes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use crate::error::{InvalidArgument, ScalewayError};
use crate::secret::SecretKey;

pub use retry::RetryPolicy;

/// Scaleway's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.scaleway.com";
/// The `User-Agent` the client sends.
pub const USER_AGENT: &str = concat!("inferplane/", env!("CARGO_PKG_VERSION"));

/// Client configuration. `Debug` is safe: the key prints as `[redacted]`.
#[derive(Debug, Clone)]
pub struct ScalewayConfig {
    /// API base URL (`https://api.scaleway.com`, or the simulator's URL).
    pub base_url: String,
    /// The secret key, sent as `X-Auth-Token`.
    pub secret_key: SecretKey,
    /// Project id used when a request does not name one.
    pub project_id: String,
    /// Zone returned by [`ScalewayClient::default_zone`].
    pub default_zone: String,
    /// Timeout of one HTTP attempt (connect + request + response body).
    pub request_timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
}

impl ScalewayConfig {
    /// A configuration for the production API with the default timeouts and retry policy
    /// (30 s per attempt, 10 s to connect, 4 retries from 500 ms), zone `fr-par-2`.
    pub fn new(secret_key: SecretKey, project_id: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            secret_key,
            project_id: project_id.into(),
            default_zone: "fr-par-2".to_string(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }

    /// Points the client at another base URL (the simulator).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets the default zone.
    pub fn with_default_zone(mut self, zone: impl Into<String>) -> Self {
        self.default_zone = zone.into();
        self
    }

    /// Sets the per-attempt timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// The Scaleway client. Cheap to clone (shared connection pool).
#[derive(Clone)]
pub struct ScalewayClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    project_id: String,
    default_zone: String,
    retry: RetryPolicy,
}

impl std::fmt::Debug for ScalewayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScalewayClient")
            .field("base_url", &self.inner.base.as_str())
            .field("project_id", &self.inner.project_id)
            .field("default_zone", &self.inner.default_zone)
            .field("secret_key", &"[redacted]")
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// Whether a request may be repeated after an ambiguous failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Repeating it has the same effect (reads, deletes, PATCH, actions, attach/detach).
    Idempotent,
    /// A create: repeating it after the provider acted would make a twin.
    Create,
}

/// Body of a request.
pub(crate) enum Body {
    Empty,
    Json(Vec<u8>),
    Text(String),
}

/// One logical call (possibly several HTTP attempts).
pub(crate) struct Call {
    pub op: &'static str,
    pub method: Method,
    pub url: Url,
    pub body: Body,
    pub idempotency: Idempotency,
}

/// A successful (2xx) answer.
pub(crate) struct Reply {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ScalewayError> {
        serde_json::from_slice(&self.body).map_err(|e| ScalewayError::Decode(e.to_string()))
    }

    /// `X-Total-Count`, when present and numeric.
    pub fn total_count(&self) -> Option<u64> {
        self.headers
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }
}

/// What one HTTP attempt produced.
enum Attempt {
    Answered {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
    Failed(reqwest::Error),
}

impl ScalewayClient {
    /// Builds a client. Installs the `ring` rustls crypto provider as the process default when
    /// none is installed yet (reqwest is built without one).
    pub fn new(config: ScalewayConfig) -> Result<Self, ScalewayError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: some provider is then installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let invalid = |name: &str, help: &str| ScalewayError::InvalidArguments {
            details: vec![InvalidArgument {
                argument_name: name.to_string(),
                reason: "constraint".to_string(),
                help_message: help.to_string(),
            }],
            message: "invalid client configuration".to_string(),
        };
        let base = Url::parse(&config.base_url)
            .map_err(|e| invalid("base_url", &format!("not a URL: {e}")))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("base_url", "must be an http(s) URL"));
        }
        if config.secret_key.is_empty() {
            return Err(invalid("secret_key", "must not be empty"));
        }
        let mut auth = HeaderValue::from_str(config.secret_key.expose_secret())
            .map_err(|_| invalid("secret_key", "contains characters not allowed in a header"))?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| ScalewayError::Transport(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                project_id: config.project_id,
                default_zone: config.default_zone,
                retry: config.retry,
            }),
        })
    }

    /// The configured project id.
    pub fn project_id(&self) -> &str {
        &self.inner.project_id
    }

    /// The configured default zone.
    pub fn default_zone(&self) -> &str {
        &self.inner.default_zone
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// `base/segments…?query`, each segment percent-encoded; empty segments are refused.
    pub(crate) fn url(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Url, ScalewayError> {
        if let Some(empty) = segments.iter().position(|s| s.is_empty()) {
            return Err(ScalewayError::InvalidArguments {
                details: vec![InvalidArgument {
                    argument_name: format!("path segment {empty}"),
                    reason: "required".to_string(),
                    help_message: "zone and ids must not be empty".to_string(),
                }],
                message: "empty path parameter".to_string(),
            });
        }
        let mut url = self.inner.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                ScalewayError::Transport("base URL cannot carry a path".to_string())
            })?;
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// `…/instance/v1/zones/{zone}/{rest…}`
    pub(crate) fn instance_url(
        &self,
        zone: &str,
        rest: &[&str],
        query: &[(&str, String)],
    ) -> Result<Url, ScalewayError> {
        let mut segments = vec!["instance", "v1", "zones", zone];
        segments.extend_from_slice(rest);
        self.url(&segments, query)
    }

    /// `…/block/v1alpha1/zones/{zone}/{rest…}`
    pub(crate) fn block_url(
        &self,
        zone: &str,
        rest: &[&str],
        query: &[(&str, String)],
    ) -> Result<Url, ScalewayError> {
        let mut segments = vec!["block", "v1alpha1", "zones", zone];
        segments.extend_from_slice(rest);
        self.url(&segments, query)
    }

    pub(crate) fn json_body<T: serde::Serialize>(value: &T) -> Result<Body, ScalewayError> {
        serde_json::to_vec(value)
            .map(Body::Json)
            .map_err(|e| ScalewayError::Decode(format!("cannot encode request: {e}")))
    }

    /// Runs a call with the retry policy of its [`Idempotency`].
    pub(crate) async fn execute(&self, call: Call) -> Result<Reply, ScalewayError> {
        let policy = &self.inner.retry;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let outcome = self.attempt(&call).await;
            let elapsed = started.elapsed();
            metrics::histogram!("scaleway_request_duration_seconds", "operation" => call.op)
                .record(elapsed.as_secs_f64());

            let retries_left = attempt <= policy.max_retries;
            match outcome {
                Attempt::Answered {
                    status,
                    headers,
                    body,
                } => {
                    let request_id = headers
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    metrics::counter!(
                        "scaleway_requests_total",
                        "operation" => call.op,
                        "status" => status.to_string()
                    )
                    .increment(1);
                    tracing::debug!(
                        operation = call.op,
                        method = %call.method,
                        path = call.url.path(),
                        status,
                        request_id = %request_id,
                        attempt,
                        elapsed_ms = elapsed.as_millis() as u64,
                        "scaleway request"
                    );
                    if (200..300).contains(&status) {
                        return Ok(Reply { headers, body });
                    }
                    let retry_after = retry::retry_after(status, &headers);
                    let error = if status == 429 {
                        ScalewayError::RateLimited {
                            retry_after_secs: retry_after.map(|d| d.as_secs()),
                        }
                    } else {
                        ScalewayError::from_response(status, &body, None)
                    };
                    let wanted = retry::retry_status(status, call.idempotency);
                    if wanted
                        && retries_left
                        && let Some(delay) = policy.delay(attempt, retry_after)
                    {
                        tracing::debug!(
                            operation = call.op,
                            status,
                            request_id = %request_id,
                            attempt,
                            delay_ms = delay.as_millis() as u64,
                            "retrying scaleway request"
                        );
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(error);
                }
                Attempt::Failed(err) => {
                    let class = retry::classify(&err);
                    metrics::counter!(
                        "scaleway_requests_total",
                        "operation" => call.op,
                        "status" => class.label()
                    )
                    .increment(1);
                    tracing::debug!(
                        operation = call.op,
                        method = %call.method,
                        path = call.url.path(),
                        status = class.label(),
                        attempt,
                        elapsed_ms = elapsed.as_millis() as u64,
                        error = %err,
                        "scaleway request failed"
                    );
                    let error = class.to_error(&err);
                    if class.retryable(call.idempotency)
                        && retries_left
                        && let Some(delay) = policy.delay(attempt, None)
                    {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    async fn attempt(&self, call: &Call) -> Attempt {
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone())
            .header("X-Auth-Token", self.inner.auth.clone());
        request = match &call.body {
            Body::Empty => request,
            Body::Json(bytes) => request
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Text(text) => request
                .header(CONTENT_TYPE, "text/plain")
                .body(text.clone()),
        };
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) => Attempt::Answered {
                        status,
                        headers,
                        body,
                    },
                    Err(err) => Attempt::Failed(err),
                }
            }
            Err(err) => Attempt::Failed(err),
        }
    }
}
