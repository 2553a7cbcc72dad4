//! Readiness probes of a worker's engine over its OpenAI-compatible HTTP API.
//!
//! The predecessor's checks, in order: the engine answers (`WORKER_VLLM_HTTP_OK`), it lists the
//! model (`WORKER_MODEL_LOADED`), one tiny completion succeeds (`WORKER_VLLM_WARMUP`). Each
//! probe reports how long it took and, on failure, a short reason fit for an event (never a
//! response body that could echo a secret).

use std::time::{Duration, Instant};

use serde_json::json;

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub ok: bool,
    pub duration_ms: u64,
    pub detail: String,
}

/// Probes engines with one shared HTTP client.
#[derive(Clone)]
pub struct Probes {
    http: reqwest::Client,
}

impl Probes {
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .unwrap_or_default();
        Self { http }
    }

    /// `GET /health` answers 200.
    pub async fn engine_http_ok(&self, base: &str) -> ProbeResult {
        let started = Instant::now();
        let r = self.http.get(format!("{base}/health")).send().await;
        finish(
            started,
            match r {
                Ok(r) if r.status().is_success() => Ok("engine answered /health".to_string()),
                Ok(r) => Err(format!("/health answered {}", r.status().as_u16())),
                Err(e) => Err(transport(&e)),
            },
        )
    }

    /// `GET /v1/models` lists `model`.
    pub async fn model_loaded(&self, base: &str, model: &str) -> ProbeResult {
        let started = Instant::now();
        let r = async {
            let r = self
                .http
                .get(format!("{base}/v1/models"))
                .send()
                .await
                .map_err(|e| transport(&e))?;
            if !r.status().is_success() {
                return Err(format!("/v1/models answered {}", r.status().as_u16()));
            }
            let body: serde_json::Value = r
                .json()
                .await
                .map_err(|_| "/v1/models did not answer JSON".to_string())?;
            let listed: Vec<&str> = body["data"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m["id"].as_str()).collect())
                .unwrap_or_default();
            if listed.contains(&model) {
                Ok(format!("{model} is listed"))
            } else {
                Err(format!(
                    "{model} is not listed (listed: {})",
                    listed
                        .iter()
                        .take(5)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
        .await;
        finish(started, r)
    }

    /// One chat completion of at most one token.
    pub async fn warmup(&self, base: &str, model: &str) -> ProbeResult {
        let started = Instant::now();
        let r = async {
            let r = self
                .http
                .post(format!("{base}/v1/chat/completions"))
                .json(&json!({
                    "model": model,
                    "messages": [{"role": "user", "content": "ping"}],
                    "max_tokens": 1,
                }))
                .send()
                .await
                .map_err(|e| transport(&e))?;
            if r.status().is_success() {
                Ok("one-token completion answered".to_string())
            } else {
                Err(format!("completion answered {}", r.status().as_u16()))
            }
        }
        .await;
        finish(started, r)
    }
}

fn finish(started: Instant, r: Result<String, String>) -> ProbeResult {
    let duration_ms = started.elapsed().as_millis() as u64;
    match r {
        Ok(detail) => ProbeResult {
            ok: true,
            duration_ms,
            detail,
        },
        Err(detail) => ProbeResult {
            ok: false,
            duration_ms,
            detail,
        },
    }
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection refused or unreachable".to_string()
    } else {
        "request failed".to_string()
    }
}
