//! Result rows, percentiles, and the closed-loop load driver shared by the benchmarks.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;

/// One line of a benchmark's table.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub measured: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    pub pass: bool,
    /// A miss here is a lost event, not a slow one: the command fails.
    pub correctness: bool,
}

impl Row {
    pub fn new(label: impl Into<String>, measured: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            measured: measured.into(),
            baseline: String::new(),
            ratio: String::new(),
            target: String::new(),
            pass: true,
            correctness: false,
        }
    }

    pub fn baseline(mut self, baseline: impl Into<String>, ratio: Option<f64>) -> Self {
        self.baseline = baseline.into();
        self.ratio = ratio.map_or(String::new(), |r| format!("ratio {r:.2}"));
        self
    }

    pub fn target(mut self, target: impl Into<String>, pass: bool) -> Self {
        self.target = target.into();
        self.pass = pass;
        self
    }

    pub fn correctness(mut self) -> Self {
        self.correctness = true;
        self
    }

    pub fn print(&self) {
        let verdict = if self.target.is_empty() {
            ""
        } else if self.pass {
            "PASS"
        } else {
            "MISS"
        };
        let line = format!(
            "{:<36} {:<34} {:<38} {:<11} {:<26} {verdict}",
            self.label, self.measured, self.baseline, self.ratio, self.target
        );
        println!("{}", line.trim_end());
    }
}

/// Wall-clock nanoseconds since the epoch: comparable across processes of one machine.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// p50, p99 and max of a set of durations in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50: i64,
    pub p99: i64,
    pub max: i64,
}

/// Nearest-rank percentiles of `samples`; `None` when there are none.
pub fn summarize(mut samples: Vec<i64>) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |p: f64| {
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    Some(Summary {
        p50: at(50.0),
        p99: at(99.0),
        max: samples[samples.len() - 1],
    })
}

/// Milliseconds with a precision that suits the value.
pub fn ms(ns: i64) -> String {
    let v = ns as f64 / 1e6;
    if v.abs() < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// 1234567.8 as "1,234,568".
pub fn grouped(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Delays from commit to receipt: `receipts` are (position, received at), `commits` maps a
/// position to its commit time. Receipts of positions not in `commits` are ignored.
pub fn delays(receipts: &[(i64, i64)], commits: &HashMap<i64, i64>) -> Vec<i64> {
    receipts
        .iter()
        .filter_map(|(pos, at)| commits.get(pos).map(|c| at - c))
        .collect()
}

/// What a closed-loop run achieved.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Units (commands, events) completed inside the measured window.
    pub measured: u64,
    /// Units completed in all, warm-up included (to check against the table).
    pub total: u64,
    pub secs: f64,
}

impl Throughput {
    pub fn rate(&self) -> f64 {
        self.measured as f64 / self.secs
    }
}

/// Runs `clients` loops of `op(client, iteration)` back to back for `warmup + duration`;
/// counts the units returned by operations that completed after the warm-up.
pub async fn drive<F, Fut>(
    clients: usize,
    warmup: Duration,
    duration: Duration,
    op: F,
) -> anyhow::Result<Throughput>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let op = op.clone();
        tasks.spawn(async move {
            let (mut measured, mut total, mut k) = (0u64, 0u64, 0u64);
            while Instant::now() < end {
                let units = op(client, k).await?;
                k += 1;
                total += units;
                let now = Instant::now();
                if now >= measure_from && now <= end {
                    measured += units;
                }
            }
            anyhow::Ok((measured, total))
        });
    }
    let mut result = Throughput {
        measured: 0,
        total: 0,
        secs: duration.as_secs_f64(),
    };
    while let Some(joined) = tasks.join_next().await {
        let (measured, total) = joined??;
        result.measured += measured;
        result.total += total;
    }
    Ok(result)
}
