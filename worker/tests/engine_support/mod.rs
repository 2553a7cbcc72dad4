//! Helpers shared by the engine test suites: start engines, call them over real HTTP, read SSE
//! streams and Prometheus expositions.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use inferplane_worker::engine::{EngineConfig, EngineHandle, MockEngine};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Installs the rustls provider (reqwest is built without one) once per process.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn client() -> Client {
    init();
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_else(|err| panic!("http client: {err}"))
}

/// Small latencies: the suites stay fast.
pub fn fast_config() -> EngineConfig {
    EngineConfig {
        ttft_ms: 2,
        itl_ms: 1,
        ..EngineConfig::default()
    }
}

pub async fn start(config: EngineConfig) -> EngineHandle {
    MockEngine::start(config)
        .await
        .unwrap_or_else(|err| panic!("engine start: {err}"))
}

/// POSTs JSON and returns the status and the parsed body.
pub async fn post_json(
    client: &Client,
    url: &str,
    body: &Value,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let response = client.post(url).json(body).send().await?;
    let status = response.status();
    let json = response.json::<Value>().await?;
    Ok((status, json))
}

pub async fn get_json(client: &Client, url: &str) -> Result<(StatusCode, Value), reqwest::Error> {
    let response = client.get(url).send().await?;
    let status = response.status();
    Ok((status, response.json::<Value>().await?))
}

/// Reads SSE `data:` payloads until the stream ends. `Err` carries what was read before the
/// stream broke.
pub async fn sse_payloads(mut response: Response) -> Result<Vec<String>, Vec<String>> {
    let mut buffer = String::new();
    let mut payloads = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                drain_events(&mut buffer, &mut payloads);
            }
            Ok(None) => return Ok(payloads),
            Err(_) => return Err(payloads),
        }
    }
}

fn drain_events(buffer: &mut String, payloads: &mut Vec<String>) {
    while let Some(end) = buffer.find("\n\n") {
        let event: String = buffer.drain(..end + 2).collect();
        for line in event.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                payloads.push(data.to_owned());
            }
        }
    }
}

/// Parses payloads as JSON, except a trailing `[DONE]` (returned as a flag).
pub fn parse_chunks(payloads: &[String]) -> (Vec<Value>, bool) {
    let done = payloads.last().is_some_and(|last| last == "[DONE]");
    let chunks = payloads
        .iter()
        .filter(|p| p.as_str() != "[DONE]")
        .map(|p| serde_json::from_str(p).unwrap_or_else(|err| panic!("bad chunk {p}: {err}")))
        .collect();
    (chunks, done)
}

/// The value of the sample `name{labels}` in a Prometheus exposition, where `labels` is the
/// exact label text between braces.
pub fn metric(exposition: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

/// A metric of model `model` with only the standard labels.
pub fn model_metric(exposition: &str, name: &str, model: &str) -> f64 {
    metric(
        exposition,
        name,
        &format!("engine=\"0\",model_name=\"{model}\""),
    )
    .unwrap_or_else(|| panic!("{name} for {model} missing in:\n{exposition}"))
}

pub async fn metrics_text(client: &Client, base: &str) -> Result<String, reqwest::Error> {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn chat_body(model: &str, content: &str, extra: Value) -> Value {
    let mut body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}
