//! Prometheus metrics and per-request instrumentation.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The process-wide Prometheus recorder (installed once; later calls share it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            // Bootstrap phases take seconds to many minutes (image pulls): buckets of their own
            // (a full-name matcher wins over the suffix one).
            let phases = [
                0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 2700.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("inferplane_bootstrap_phase_duration_seconds".into()),
                        &phases,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("inferplane_append_group_size".into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                    )
                })
                .expect("valid buckets");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (e.g. by a test harness): render ours unused.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Counts requests and measures latency by route template (never by raw path, so ids do not
/// explode label cardinality), and records the request in a span with its request id.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = req.method().as_str().to_string();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let span = tracing::info_span!("http", %method, %route, %request_id);
    let start = Instant::now();
    let response = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    span.in_scope(|| {
        // Accepted heartbeats arrive every few seconds from every worker: not worth a line each.
        let routine = route == "/api/workers/heartbeat" && status == 200;
        if routine {
            tracing::debug!(
                status,
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
        } else if route != "/metrics" && route != "/healthz" {
            tracing::info!(
                status,
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
        }
    });
    metrics::counter!(
        "inferplane_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(
        "inferplane_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(elapsed.as_secs_f64());
    response
}
