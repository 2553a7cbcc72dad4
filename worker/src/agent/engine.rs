//! What the agent reads from its engine: the served models (`/v1/models`) and vLLM's gauges
//! (`/metrics`).

use std::time::Duration;

use serde::Deserialize;

use super::prometheus;
use super::protocol::WorkerStatus;

/// The engine as last observed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineView {
    /// `/v1/models` answered.
    pub reachable: bool,
    pub models: Vec<String>,
    pub waiting: u32,
    pub running: u32,
    pub kv_cache_usage: Option<f64>,
}

impl EngineView {
    /// The worker's status for the expected `model`.
    pub fn status(&self, model: &str) -> WorkerStatus {
        if !self.reachable {
            WorkerStatus::EngineDown
        } else if self.models.iter().any(|m| m == model) {
            WorkerStatus::Ready
        } else {
            WorkerStatus::Starting
        }
    }
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

/// Reads the engine at `base` (`http://127.0.0.1:8000`). An engine that does not answer is
/// not an error: it is what the view reports.
pub async fn observe(client: &reqwest::Client, base: &str, timeout: Duration) -> EngineView {
    let base = base.trim_end_matches('/');
    let models = async {
        let r = client
            .get(format!("{base}/v1/models"))
            .timeout(timeout)
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        r.json::<ModelList>().await.ok()
    };
    let metrics = async {
        let r = client
            .get(format!("{base}/metrics"))
            .timeout(timeout)
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        r.text().await.ok()
    };
    let (models, metrics) = tokio::join!(models, metrics);
    let Some(models) = models else {
        return EngineView::default();
    };
    let mut view = EngineView {
        reachable: true,
        models: models.data.into_iter().map(|m| m.id).collect(),
        ..EngineView::default()
    };
    if let Some(text) = metrics {
        let samples = prometheus::parse(&text);
        let gauge = |name| prometheus::sum(&samples, name).map_or(0, |v| v.max(0.0).round() as u32);
        view.waiting = gauge("vllm:num_requests_waiting");
        view.running = gauge("vllm:num_requests_running");
        view.kv_cache_usage = prometheus::max(&samples, "vllm:kv_cache_usage_perc")
            .or_else(|| prometheus::max(&samples, "vllm:gpu_cache_usage_perc"))
            .map(|v| v.clamp(0.0, 1.0));
    }
    view
}
