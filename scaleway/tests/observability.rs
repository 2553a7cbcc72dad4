//! Observability: metrics with fixed operation labels, debug logs on both sides, and the secret
//! key absent from every log line.
//!
//! This binary holds a single test: it installs a thread-local `tracing` subscriber, and a test
//! running concurrently in the same process could register the log callsites first with a
//! cached "not interested" answer.

use std::io::Write;
use std::sync::{Arc, Mutex};

use inferplane_scaleway::sim::{BurstFault, Faults};
use inferplane_scaleway::{ListServersFilter, ScalewayError, SecretKey};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

#[path = "client_sim/support.rs"]
mod support;

use support::*;

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A recorder keeping every counter increment and histogram sample.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Sample>>>);

struct Handle {
    capture: Capture,
    name: String,
    labels: Vec<(String, String)>,
}

impl Handle {
    fn push(&self, value: f64) {
        if let Ok(mut samples) = self.capture.0.lock() {
            samples.push(Sample {
                name: self.name.clone(),
                labels: self.labels.clone(),
                value,
            });
        }
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.push(value as f64);
    }
    fn absolute(&self, value: u64) {
        self.push(value as f64);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

impl Capture {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        Arc::new(Handle {
            capture: self.clone(),
            name: key.name().to_string(),
            labels: key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect(),
        })
    }

    fn samples(&self) -> Vec<Sample> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

/// A log sink for a `tracing` subscriber.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

fn count(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> usize {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .count()
}

#[test]
fn metrics_and_logs_name_operations_and_never_the_key() {
    let capture = Capture::default();
    let logs = LogBuffer::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };

    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&capture, || {
            runtime.block_on(async {
                let env = env().await;
                let server = create(&env, "vm-metrics", "instance:m").await;
                ok(
                    env.sim.set_faults(Faults {
                        burst: Some(BurstFault {
                            status: 429,
                            count: 1,
                            retry_after_secs: Some(0),
                            operations: vec!["list_servers".into()],
                            after_handler: false,
                        }),
                        ..Faults::default()
                    }),
                    "faults",
                );
                ok(
                    env.client
                        .list_servers(ZONE, &ListServersFilter::tagged("instance:m"))
                        .await,
                    "list",
                );
                ok(env.client.get_server(ZONE, &server.id).await, "get");
                let missing = env
                    .client
                    .get_server(ZONE, "00000000-0000-4000-8000-000000000000")
                    .await;
                assert!(matches!(missing, Err(ScalewayError::NotFound { .. })));
                let wrong = client_for(inferplane_scaleway::ScalewayConfig {
                    secret_key: SecretKey::new("another-secret-that-must-not-leak"),
                    ..client_config(env.sim.base_url())
                });
                let denied = wrong.get_server(ZONE, &server.id).await;
                let text = denied
                    .map(|_| ())
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                assert!(!text.contains("another-secret"), "{text}");
            });
        });
    });

    let samples = capture.samples();
    let total = "scaleway_requests_total";
    assert_eq!(
        count(
            &samples,
            total,
            &[("operation", "create_server"), ("status", "201")]
        ),
        1
    );
    assert_eq!(
        count(
            &samples,
            total,
            &[("operation", "list_servers"), ("status", "429")]
        ),
        1
    );
    assert_eq!(
        count(
            &samples,
            total,
            &[("operation", "list_servers"), ("status", "200")]
        ),
        1
    );
    assert_eq!(
        count(
            &samples,
            total,
            &[("operation", "get_server"), ("status", "404")]
        ),
        1
    );
    assert_eq!(
        count(
            &samples,
            total,
            &[("operation", "get_server"), ("status", "401")]
        ),
        1
    );
    let durations = "scaleway_request_duration_seconds";
    assert_eq!(
        count(&samples, durations, &[("operation", "list_servers")]),
        2
    );
    for sample in &samples {
        if sample.name == total {
            assert_eq!(sample.value, 1.0, "{sample:?}");
        } else {
            assert!(sample.value > 0.0 && sample.value < 10.0, "{sample:?}");
        }
    }
    // Labels are fixed names, never ids.
    for sample in &samples {
        for (key, value) in &sample.labels {
            let fixed = match key.as_str() {
                "operation" => inferplane_scaleway::operations::ALL.contains(&value.as_str()),
                "status" => {
                    value.bytes().all(|b| b.is_ascii_digit())
                        || ["timeout", "connect_error", "transport_error"].contains(&value.as_str())
                }
                _ => false,
            };
            assert!(fixed, "{sample:?}");
        }
    }

    let text = logs.text();
    assert!(
        text.contains("scaleway request"),
        "client logs each request"
    );
    assert!(
        text.contains("simulated scaleway request"),
        "simulator logs each request: {text}"
    );
    assert!(text.contains("request_id="), "with Scaleway's request id");
    assert!(text.contains("attempt=2"), "and the attempt number");
    assert!(!text.contains(KEY), "the key is never logged");
    assert!(!text.contains("another-secret"), "nor a wrong key");
}
