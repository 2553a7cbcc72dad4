//! The `/v1` routes.
//!
//! A request is authenticated against the in-memory key table, its body read once (bounded)
//! and checked only for what the gateway needs (`model`, `stream`, `stream_options`), then sent
//! to a worker chosen by the [directory](crate::directory). Until the first byte goes back to
//! the client, a connection failure or a 5xx from the worker cools that worker down and the
//! request is tried on another one (at most `max_attempts` workers). Answers and engine errors
//! (4xx) pass through unchanged; streams pass through event by event.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use futures::StreamExt;
use inferplane_domain::DEFAULT_TENANT;
use inferplane_domain::usage::UsageRecord;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::Gateway;
use crate::directory::{Candidates, Worker, choose};
use crate::error::OpenAiError;
use crate::keys::{KeyInfo, KeyRefusal};
use crate::limits::Refusal;
use crate::stream::{Counts, Splitter};

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    Key(Arc<KeyInfo>),
    /// The operator's console, with the operator token.
    Operator,
}

impl Principal {
    fn allows_model(&self, model: &str) -> bool {
        match self {
            Self::Key(k) => k.allows_model(model),
            Self::Operator => true,
        }
    }

    fn prefix(&self) -> &str {
        match self {
            Self::Key(k) => &k.prefix,
            Self::Operator => "operator",
        }
    }

    fn key_id(&self) -> Option<Uuid> {
        match self {
            Self::Key(k) => Some(k.id),
            Self::Operator => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat/completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }
}

/// The `/v1` router, to be nested at `/v1`.
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/models", get(list_models))
        .route("/models/{*id}", get(get_model))
        .route("/chat/completions", post(chat))
        .route("/completions", post(completions))
        .route("/embeddings", post(embeddings))
        .fallback(|req: Request| async move { OpenAiError::not_found(req.uri().path()) })
        .method_not_allowed_fallback(|| async { OpenAiError::method_not_allowed() })
        .with_state(gw)
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

impl Gateway {
    /// Authenticates a request: an API key, or the operator token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, OpenAiError> {
        let Some(presented) = presented_key(headers) else {
            metrics::counter!("inferplane_gateway_auth_failures_total", "reason" => "missing")
                .increment(1);
            return Err(OpenAiError::invalid_api_key(
                "You didn't provide an API key. Send it as `Authorization: Bearer sk-...` or in the `X-API-Key` header.",
            ));
        };
        match self.keys.authenticate(presented, Utc::now()) {
            Ok(k) => Ok(Principal::Key(k)),
            Err(KeyRefusal::Malformed) if self.operator.as_ref().is_some_and(|f| f(presented)) => {
                Ok(Principal::Operator)
            }
            Err(refusal) => {
                let reason = match refusal {
                    KeyRefusal::Expired => "expired",
                    KeyRefusal::Malformed => "malformed",
                    KeyRefusal::Unknown => "unknown",
                };
                metrics::counter!("inferplane_gateway_auth_failures_total", "reason" => reason)
                    .increment(1);
                // Never log the key; its prefix is not secret.
                tracing::info!(
                    reason,
                    key_prefix = inferplane_domain::api_key::prefix_of(presented).unwrap_or("-"),
                    "refused an API key"
                );
                Err(OpenAiError::invalid_api_key(
                    if refusal == KeyRefusal::Expired {
                        "This API key has expired."
                    } else {
                        "Incorrect API key provided."
                    },
                ))
            }
        }
    }
}

async fn list_models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let principal = match gw.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let data: Vec<Value> = gw
        .directory
        .served_models()
        .into_iter()
        .filter(|m| principal.allows_model(m))
        .map(|m| model_object(&m))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "inferplane"})
}

async fn get_model(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let principal = match gw.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if principal.allows_model(&id) && gw.directory.served_models().contains(&id) {
        axum::Json(model_object(&id)).into_response()
    } else {
        OpenAiError::model_not_found(&id).into_response()
    }
}

async fn chat(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    handle(gw, Endpoint::Chat, req).await
}

async fn completions(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    handle(gw, Endpoint::Completions, req).await
}

async fn embeddings(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    handle(gw, Endpoint::Embeddings, req).await
}

/// What the gateway reads from a request body.
struct Parsed {
    model: String,
    stream: bool,
    client_wants_usage: bool,
    body: Bytes,
    prompt_estimate: u64,
}

/// The only fields the gateway reads; the rest of the body (messages, prompts) is skipped
/// without building a tree.
#[derive(serde::Deserialize)]
struct Peek {
    #[serde(default)]
    model: Option<Value>,
    #[serde(default)]
    stream: Option<Value>,
}

fn parse_body(endpoint: Endpoint, raw: Bytes) -> Result<Parsed, OpenAiError> {
    // Serde would also read a struct from an array: only an object is a request.
    let first = raw.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(&raw).is_ok()
    {
        return Err(OpenAiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let peek: Peek = match serde_json::from_slice(&raw) {
        Ok(p) => p,
        // Valid JSON of another shape (an array, a string...).
        Err(e) if e.is_data() => {
            return Err(OpenAiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        Err(e) => {
            return Err(OpenAiError::bad_request(format!(
                "We could not parse the JSON body of your request: {e}"
            )));
        }
    };
    let model = match peek.model {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(
                OpenAiError::bad_request("you must provide a model parameter").with_param("model"),
            );
        }
        Some(_) => {
            return Err(OpenAiError::bad_request("model must be a string").with_param("model"));
        }
    };
    let stream = match peek.stream {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(OpenAiError::bad_request("stream must be a boolean").with_param("stream"));
        }
    };
    if stream && endpoint == Endpoint::Embeddings {
        return Err(OpenAiError::bad_request("embeddings cannot be streamed").with_param("stream"));
    }
    let prompt_estimate = (raw.len() as u64).div_ceil(4);
    if !stream {
        // Forwarded byte for byte.
        return Ok(Parsed {
            model,
            stream,
            client_wants_usage: false,
            body: raw,
            prompt_estimate,
        });
    }
    // A stream: the body is rewritten, so it is parsed in full (an object, checked above).
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&raw) else {
        return Err(OpenAiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    // Ask the engine for the usage chunk; remember whether the client did.
    let options = map
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if options.is_null() {
        *options = Value::Object(Map::new());
    }
    let Value::Object(options) = options else {
        return Err(OpenAiError::bad_request("stream_options must be an object")
            .with_param("stream_options"));
    };
    let client_wants_usage = match options.get("include_usage") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(OpenAiError::bad_request("include_usage must be a boolean")
                .with_param("stream_options.include_usage"));
        }
    };
    options.insert("include_usage".into(), Value::Bool(true));
    let body = serde_json::to_vec(&map)
        .map(Bytes::from)
        .map_err(|e| OpenAiError::bad_request(format!("cannot re-encode the body: {e}")))?;
    Ok(Parsed {
        model,
        stream,
        client_wants_usage,
        body,
        prompt_estimate,
    })
}

/// Everything known about one request, recorded once when it ends (whatever way it ends).
struct Metering {
    gw: Arc<Gateway>,
    principal: Principal,
    request_id: String,
    model: String,
    endpoint: Endpoint,
    streamed: bool,
    started: Instant,
    started_at: chrono::DateTime<Utc>,
    instance_id: Option<Uuid>,
    ttft: Option<Duration>,
    counts: Option<Counts>,
    /// Fallback when the engine never reported usage.
    prompt_estimate: u64,
    chunks: u64,
    status: u16,
    /// Time spent in the gateway before the request left for the worker.
    overhead: Duration,
    worker: Option<Worker>,
    recorded: bool,
}

impl Metering {
    fn finish(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        if let Some(w) = &self.worker {
            w.load.inflight.fetch_sub(1, Ordering::Relaxed);
        }
        metrics::gauge!("inferplane_gateway_inflight").decrement(1.0);
        let duration = self.started.elapsed();
        let (prompt, completion, reported) = match self.counts {
            Some(c) => (c.prompt_tokens, c.completion_tokens, true),
            None if self.instance_id.is_some() && self.status < 500 || self.status == 499 => {
                (self.prompt_estimate, self.chunks, false)
            }
            None => (0, 0, false),
        };
        let model_label = self.model_label();
        let status = self.status.to_string();
        metrics::counter!("inferplane_gateway_requests_total",
            "model" => model_label.clone(), "key" => self.principal.prefix().to_string(), "status" => status)
        .increment(1);
        metrics::counter!("inferplane_gateway_tokens_total", "model" => model_label.clone(), "kind" => "prompt")
            .increment(prompt);
        metrics::counter!("inferplane_gateway_tokens_total", "model" => model_label.clone(), "kind" => "completion")
            .increment(completion);
        metrics::histogram!("inferplane_gateway_request_duration_seconds", "model" => model_label.clone(),
            "streamed" => if self.streamed { "true" } else { "false" })
        .record(duration.as_secs_f64());
        if let Some(t) = self.ttft {
            metrics::histogram!("inferplane_gateway_ttft_seconds", "model" => model_label)
                .record(t.as_secs_f64());
        }
        metrics::histogram!("inferplane_gateway_overhead_seconds")
            .record(self.overhead.as_secs_f64());
        if let Principal::Key(k) = &self.principal {
            self.gw
                .limiter
                .charge(k, prompt + completion, Instant::now());
        }
        self.gw.meter.record(UsageRecord {
            request_id: std::mem::take(&mut self.request_id),
            key_id: self.principal.key_id(),
            key_prefix: self.principal.prefix().to_string(),
            model: std::mem::take(&mut self.model),
            instance_id: self.instance_id,
            endpoint: self.endpoint.name().to_string(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            usage_reported: reported,
            ttft_ms: self
                .ttft
                .map(|t| t.as_millis().min(u128::from(u32::MAX)) as u32),
            duration_ms: duration.as_millis().min(u128::from(u32::MAX)) as u32,
            status: self.status,
            streamed: self.streamed,
            started_at: self.started_at,
            tenant_id: DEFAULT_TENANT,
        });
    }

    /// Model names are bounded to the ones the directory knows, for metric cardinality.
    fn model_label(&self) -> String {
        if self.instance_id.is_some() || self.gw.directory.serves(&self.model) {
            self.model.clone()
        } else {
            "other".to_string()
        }
    }
}

impl Drop for Metering {
    fn drop(&mut self) {
        // Dropped before it was recorded: the client went away, while the worker was being
        // asked (no status yet) or while its stream was being passed on.
        if !self.recorded && (self.status == 0 || self.status == 200) {
            self.status = 499;
        }
        self.finish();
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

async fn handle(gw: Arc<Gateway>, endpoint: Endpoint, req: Request) -> Response {
    let started = Instant::now();
    let started_at = Utc::now();
    let (parts, body) = req.into_parts();
    let principal = match gw.authenticate(&parts.headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let limit = gw.settings.body_limit_bytes;
    let raw = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util_limited::LengthLimitError>())
                || e.to_string().contains("length limit");
            return if too_large {
                OpenAiError::too_large(limit).into_response()
            } else {
                OpenAiError::bad_request(format!("could not read the request body: {e}"))
                    .into_response()
            };
        }
    };
    let parsed = match parse_body(endpoint, raw) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if !principal.allows_model(&parsed.model) {
        return OpenAiError::model_not_allowed(&parsed.model).into_response();
    }
    if let Principal::Key(k) = &principal
        && let Err(refusal) = gw.limiter.admit(k, Instant::now())
    {
        metrics::counter!("inferplane_gateway_rate_limited_total", "key" => k.prefix.clone())
            .increment(1);
        return match refusal {
            Refusal::Requests { limit, retry_after } => OpenAiError::rate_limited(
                format!("Rate limit reached: {limit} requests per minute for this key."),
                retry_after,
            ),
            Refusal::Tokens { limit, retry_after } => OpenAiError::rate_limited(
                format!("Rate limit reached: {limit} tokens per minute for this key."),
                retry_after,
            ),
            Refusal::Budget { limit, used } => OpenAiError::quota_exceeded(
                format!("This key has used {used} of its {limit} tokens this month."),
                Duration::from_secs(3600),
            ),
        }
        .into_response();
    }
    metrics::gauge!("inferplane_gateway_inflight").increment(1.0);
    let mut meter = Metering {
        gw: gw.clone(),
        principal,
        request_id: request_id(&parts.headers),
        model: parsed.model.clone(),
        endpoint,
        streamed: parsed.stream,
        started,
        started_at,
        instance_id: None,
        ttft: None,
        counts: None,
        prompt_estimate: parsed.prompt_estimate,
        chunks: 0,
        status: 0,
        overhead: Duration::ZERO,
        worker: None,
        recorded: false,
    };
    let session = parts
        .headers
        .get(&gw.settings.session_header)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string);

    let mut tried: Vec<Uuid> = Vec::new();
    let mut last_error: Option<OpenAiError> = None;
    let upstream = loop {
        let candidates = match gw.directory.candidates(&parsed.model, &tried) {
            Candidates::Some(c) => c,
            Candidates::UnknownModel => {
                meter.status = 404;
                return OpenAiError::model_not_found(&parsed.model).into_response();
            }
            Candidates::NoWorker => {
                let e = last_error.unwrap_or_else(|| OpenAiError::no_worker(&parsed.model));
                meter.status = e.status.as_u16();
                return e.into_response();
            }
        };
        let Some(worker) = choose(candidates, session.as_deref()) else {
            meter.status = 503;
            return OpenAiError::no_worker(&parsed.model).into_response();
        };
        tried.push(worker.instance_id);
        worker.load.inflight.fetch_add(1, Ordering::Relaxed);
        if let Some(previous) = meter.worker.replace(worker.clone()) {
            previous.load.inflight.fetch_sub(1, Ordering::Relaxed);
        }
        meter.instance_id = Some(worker.instance_id);
        meter.overhead = started.elapsed();
        let url = format!("{}{}", worker.base_url, endpoint.path());
        let sent = gw
            .client
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", &meter.request_id)
            .body(parsed.body.clone())
            .send();
        let failure = match tokio::time::timeout(gw.settings.upstream_timeout, sent).await {
            Ok(Ok(resp)) if !resp.status().is_server_error() => break resp,
            Ok(Ok(resp)) => OpenAiError::upstream(format!(
                "the worker answered {} for this request",
                resp.status().as_u16()
            )),
            Ok(Err(e)) if e.is_timeout() => {
                OpenAiError::upstream_timeout("the worker did not answer in time")
            }
            Ok(Err(e)) => {
                OpenAiError::upstream(format!("the worker could not be reached: {}", redact(&e)))
            }
            Err(_) => OpenAiError::upstream_timeout("the worker did not answer in time"),
        };
        tracing::warn!(
            instance = %worker.instance_id,
            status = failure.status.as_u16(),
            message = %failure.message,
            "worker failed; cooling it down"
        );
        metrics::counter!("inferplane_gateway_worker_failures_total", "instance" => worker.instance_id.to_string())
            .increment(1);
        gw.directory.cool_down(&worker, gw.settings.cooldown);
        if tried.len() as u32 >= gw.settings.max_attempts {
            meter.status = failure.status.as_u16();
            return failure.into_response();
        }
        last_error = Some(failure);
    };
    let status = upstream.status();
    meter.ttft = Some(started.elapsed());
    let content_type = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/json"));
    let is_stream = content_type
        .to_str()
        .is_ok_and(|c| c.starts_with("text/event-stream"));
    if parsed.stream && status.is_success() && is_stream {
        meter.ttft = None;
        meter.status = 200;
        return stream_response(gw, upstream, meter, parsed.client_wants_usage, content_type);
    }
    // A whole answer (or an engine error, passed through as it is).
    let body = match tokio::time::timeout(gw.settings.upstream_timeout, upstream.bytes()).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let e = OpenAiError::upstream(format!("the worker's answer broke off: {}", redact(&e)));
            meter.status = e.status.as_u16();
            return e.into_response();
        }
        Err(_) => {
            let e = OpenAiError::upstream_timeout("the worker's answer did not complete in time");
            meter.status = e.status.as_u16();
            return e.into_response();
        }
    };
    if status.is_success() {
        #[derive(serde::Deserialize)]
        struct WithUsage {
            usage: Option<Counts>,
        }
        meter.counts = serde_json::from_slice::<WithUsage>(&body)
            .ok()
            .and_then(|w| w.usage);
    }
    meter.status = status.as_u16();
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    res.headers_mut().insert(header::CONTENT_TYPE, content_type);
    meter.finish();
    res
}

/// A transport error without its URL (which names the worker's address).
fn redact(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<worker>");
    }
    s
}

fn stream_response(
    gw: Arc<Gateway>,
    upstream: reqwest::Response,
    mut meter: Metering,
    client_wants_usage: bool,
    content_type: HeaderValue,
) -> Response {
    let idle = gw.settings.upstream_timeout;
    let body = async_stream::stream! {
        let mut splitter = Splitter::new(client_wants_usage);
        let mut chunks = upstream.bytes_stream();
        loop {
            match tokio::time::timeout(idle, chunks.next()).await {
                Ok(Some(Ok(chunk))) => {
                    let out = splitter.feed(&chunk);
                    meter.chunks = splitter.chunks;
                    if meter.ttft.is_none() && splitter.chunks > 0 {
                        meter.ttft = Some(meter.started.elapsed());
                    }
                    if !out.is_empty() {
                        yield Ok::<Bytes, std::io::Error>(out);
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %redact(&e), "the worker's stream broke off");
                    meter.status = 502;
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!("the worker's stream stalled; closing it");
                    meter.status = 504;
                    break;
                }
            }
        }
        let tail = splitter.finish();
        if !tail.is_empty() {
            yield Ok(tail);
        }
        meter.counts = splitter.usage;
        meter.chunks = splitter.chunks;
        if meter.status == 200 && !splitter.done {
            // The engine ended the stream without [DONE]: it died mid-answer.
            meter.status = 502;
        }
        meter.finish();
    };
    let mut res = Response::new(Body::from_stream(body));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

mod http_body_util_limited {
    pub use http_body_util::LengthLimitError;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_asks_for_usage_and_remembers_whether_the_client_did() {
        let p = parse_body(
            Endpoint::Chat,
            Bytes::from(r#"{"model":"m","stream":true,"messages":[]}"#),
        )
        .unwrap();
        assert!(p.stream && !p.client_wants_usage);
        let v: Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        let p = parse_body(
            Endpoint::Chat,
            Bytes::from(r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#),
        )
        .unwrap();
        assert!(p.client_wants_usage);
        // Non-streaming bodies are forwarded byte for byte.
        let raw = Bytes::from(r#"{"model":"m",  "messages":[]}"#);
        assert_eq!(parse_body(Endpoint::Chat, raw.clone()).unwrap().body, raw);
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_parameter_named() {
        for (body, param) in [
            (r#"{"messages":[]}"#, Some("model")),
            (r#"{"model":3}"#, Some("model")),
            (r#"{"model":"m","stream":"yes"}"#, Some("stream")),
            (
                r#"{"model":"m","stream":true,"stream_options":1}"#,
                Some("stream_options"),
            ),
            (r#"[1,2]"#, None),
            (r#"{"model":"#, None),
        ] {
            let e = parse_body(Endpoint::Chat, Bytes::from(body)).err().unwrap();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(e.param, param, "{body}");
        }
        let e = parse_body(
            Endpoint::Embeddings,
            Bytes::from(r#"{"model":"m","stream":true}"#),
        )
        .err()
        .unwrap();
        assert_eq!(e.param, Some("stream"));
    }
}
