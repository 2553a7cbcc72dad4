//! vLLM's Prometheus metrics, kept per engine and per model.
//!
//! Each engine owns its counters (no global recorder), so hundreds of engines can share a
//! process and each `/metrics` shows only its own traffic. The exposition follows what vLLM's
//! `prometheus_client` prints: `# HELP`/`# TYPE` lines, counters suffixed `_total`, float
//! values, labels sorted by name with `engine="0"` and `model_name` on every series, and
//! vLLM's histogram buckets.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::state::ModelRuntime;
use super::text::FinishReason;

/// Buckets of `vllm:time_to_first_token_seconds`.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// Buckets of `vllm:inter_token_latency_seconds`.
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// Buckets of the request-level latencies (end to end, queue time).
const REQUEST_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

#[derive(Debug, Default)]
struct HistogramState {
    /// Per bucket (not cumulative), plus the `+Inf` overflow at the end.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A fixed-bucket histogram.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    state: Mutex<HistogramState>,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            state: Mutex::new(HistogramState::default()),
        }
    }

    /// Records one observation, `times` times.
    pub(crate) fn observe_n(&self, value: Duration, times: u64) {
        if times == 0 {
            return;
        }
        let seconds = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.counts.is_empty() {
            state.counts = vec![0; self.bounds.len() + 1];
        }
        state.counts[bucket] += times;
        state.sum += seconds * times as f64;
        state.count += times;
    }

    /// (cumulative counts per bound then `+Inf`, sum, count)
    fn snapshot(&self) -> (Vec<u64>, f64, u64) {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut running = 0;
        let cumulative = (0..=self.bounds.len())
            .map(|index| {
                running += state.counts.get(index).copied().unwrap_or(0);
                running
            })
            .collect();
        (cumulative, state.sum, state.count)
    }
}

/// The counters and histograms of one model.
#[derive(Debug)]
pub(crate) struct ModelMetrics {
    pub prompt_tokens: AtomicU64,
    pub generation_tokens: AtomicU64,
    success: [AtomicU64; 3],
    pub prefix_cache_queries: AtomicU64,
    pub prefix_cache_hits: AtomicU64,
    pub time_to_first_token: Histogram,
    pub inter_token_latency: Histogram,
    pub e2e_request_latency: Histogram,
    pub request_queue_time: Histogram,
}

impl Default for ModelMetrics {
    fn default() -> Self {
        Self {
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            success: Default::default(),
            prefix_cache_queries: AtomicU64::new(0),
            prefix_cache_hits: AtomicU64::new(0),
            time_to_first_token: Histogram::new(TTFT_BUCKETS),
            inter_token_latency: Histogram::new(ITL_BUCKETS),
            e2e_request_latency: Histogram::new(REQUEST_BUCKETS),
            request_queue_time: Histogram::new(REQUEST_BUCKETS),
        }
    }
}

fn reason_index(reason: FinishReason) -> usize {
    match reason {
        FinishReason::Stop => 0,
        FinishReason::Length => 1,
        FinishReason::Abort => 2,
    }
}

impl ModelMetrics {
    pub(crate) fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts finished sequences in `vllm:request_success_total{finished_reason}`.
    pub(crate) fn record_finish(&self, reason: FinishReason, sequences: u64) {
        Self::add(&self.success[reason_index(reason)], sequences);
    }
}

/// Reads a gauge of a model.
type GaugeRead = fn(&ModelRuntime) -> f64;
/// Picks a counter of a model.
type CounterRead = fn(&ModelMetrics) -> &AtomicU64;
/// Picks a histogram of a model.
type HistogramRead = fn(&ModelMetrics) -> &Histogram;

/// Renders the whole exposition for `models`.
pub(crate) fn render(models: &[std::sync::Arc<ModelRuntime>]) -> String {
    let mut out = String::with_capacity(4096 + models.len() * 8192);
    let labels = |model: &ModelRuntime| {
        format!(
            "engine=\"0\",model_name=\"{}\"",
            escape_label(&model.spec.name)
        )
    };

    let gauges: [(&str, &str, GaugeRead); 4] = [
        (
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            |m| m.scheduler.running() as f64,
        ),
        (
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            |m| m.scheduler.waiting() as f64,
        ),
        (
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            |m| m.scheduler.kv_usage(),
        ),
        (
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage. (Deprecated name of vllm:kv_cache_usage_perc.)",
            |m| m.scheduler.kv_usage(),
        ),
    ];
    for (name, help, read) in gauges {
        header(&mut out, name, help, "gauge");
        for model in models {
            sample(&mut out, name, &labels(model), read(model));
        }
    }

    let counters: [(&str, &str, CounterRead); 4] = [
        (
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            |m| &m.prompt_tokens,
        ),
        (
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            |m| &m.generation_tokens,
        ),
        (
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.",
            |m| &m.prefix_cache_queries,
        ),
        (
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in terms of number of cached tokens.",
            |m| &m.prefix_cache_hits,
        ),
    ];
    for (name, help, read) in counters {
        header(&mut out, name, help, "counter");
        for model in models {
            let value = read(&model.metrics).load(Ordering::Relaxed);
            sample(&mut out, name, &labels(model), value as f64);
        }
    }

    let name = "vllm:request_success_total";
    header(
        &mut out,
        name,
        "Count of successfully processed requests.",
        "counter",
    );
    for model in models {
        for reason in FinishReason::ALL {
            let value = model.metrics.success[reason_index(reason)].load(Ordering::Relaxed);
            let series_labels = format!(
                "engine=\"0\",finished_reason=\"{}\",model_name=\"{}\"",
                reason.as_str(),
                escape_label(&model.spec.name)
            );
            sample(&mut out, name, &series_labels, value as f64);
        }
    }

    let histograms: [(&str, &str, HistogramRead); 4] = [
        (
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            |m| &m.time_to_first_token,
        ),
        (
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            |m| &m.inter_token_latency,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            |m| &m.e2e_request_latency,
        ),
        (
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            |m| &m.request_queue_time,
        ),
    ];
    for (name, help, read) in histograms {
        header(&mut out, name, help, "histogram");
        for model in models {
            let histogram = read(&model.metrics);
            let (cumulative, sum, count) = histogram.snapshot();
            let model_name = escape_label(&model.spec.name);
            for (index, value) in cumulative.iter().enumerate() {
                let le = histogram
                    .bounds
                    .get(index)
                    .map_or_else(|| "+Inf".to_owned(), |bound| format_float(*bound));
                let series_labels = format!("engine=\"0\",le=\"{le}\",model_name=\"{model_name}\"");
                sample(
                    &mut out,
                    &format!("{name}_bucket"),
                    &series_labels,
                    *value as f64,
                );
            }
            sample(
                &mut out,
                &format!("{name}_count"),
                &labels(model),
                count as f64,
            );
            sample(&mut out, &format!("{name}_sum"), &labels(model), sum);
        }
    }
    out
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "{name}{{{labels}}} {}", format_float(value));
}

/// Python-like float text: `3.0`, `0.25`, `1e-07` style exponents are also valid Prometheus.
fn format_float(value: f64) -> String {
    format!("{value:?}")
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_with_inf() {
        let histogram = Histogram::new(&[0.1, 1.0]);
        histogram.observe_n(Duration::from_millis(50), 2);
        histogram.observe_n(Duration::from_millis(500), 1);
        histogram.observe_n(Duration::from_secs(5), 1);
        let (cumulative, sum, count) = histogram.snapshot();
        assert_eq!(cumulative, vec![2, 3, 4]);
        assert_eq!(count, 4);
        assert!((sum - 5.6).abs() < 1e-9);
    }

    #[test]
    fn labels_are_escaped_and_floats_python_like() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(format_float(3.0), "3.0");
        assert_eq!(format_float(0.25), "0.25");
    }
}
