//! GPUs as `nvidia-smi` reports them.

use std::time::Duration;

use super::protocol::GpuStats;

/// The query the agent runs; [`parse`] reads its output.
pub const QUERY_ARGS: [&str; 2] = [
    "--query-gpu=index,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw",
    "--format=csv,noheader,nounits",
];

/// Parses `nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total,
/// temperature.gpu,power.draw --format=csv,noheader,nounits`: one GPU per line, fields
/// separated by commas. `[N/A]`, `[Not Supported]` and unparsable fields become `None`; a line
/// without an index is skipped.
pub fn parse(csv: &str) -> Vec<GpuStats> {
    csv.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let index = fields.first()?.parse().ok()?;
            let num = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
            Some(GpuStats {
                index,
                utilization_pct: num(1),
                memory_used_mib: num(2),
                memory_total_mib: num(3),
                temperature_c: num(4),
                power_w: num(5),
            })
        })
        .collect()
}

/// Runs `nvidia-smi` (named by `program`), within `timeout`. No GPU tooling (a CPU VM, the
/// demo) gives an empty list, not an error.
pub async fn query(program: &str, timeout: Duration) -> Vec<GpuStats> {
    let run = tokio::process::Command::new(program)
        .args(QUERY_ARGS)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(out)) if out.status.success() => parse(&String::from_utf8_lossy(&out.stdout)),
        Ok(Ok(out)) => {
            tracing::debug!(status = %out.status, "nvidia-smi failed");
            Vec::new()
        }
        Ok(Err(e)) => {
            tracing::trace!(error = %e, "nvidia-smi not available");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("nvidia-smi did not answer in time");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_output_of_two_gpus_is_parsed() {
        let out = "0, 87, 20123, 23034, 64, 71.23\n1, 0, 0, 23034, 35, [N/A]\n";
        let gpus = parse(out);
        assert_eq!(
            gpus,
            vec![
                GpuStats {
                    index: 0,
                    utilization_pct: Some(87.0),
                    memory_used_mib: Some(20123.0),
                    memory_total_mib: Some(23034.0),
                    temperature_c: Some(64.0),
                    power_w: Some(71.23),
                },
                GpuStats {
                    index: 1,
                    utilization_pct: Some(0.0),
                    memory_used_mib: Some(0.0),
                    memory_total_mib: Some(23034.0),
                    temperature_c: Some(35.0),
                    power_w: None,
                },
            ]
        );
    }

    #[test]
    fn unsupported_fields_and_junk_lines_do_not_break_the_rest() {
        let out = "\nNo devices were found\n3, [Not Supported], 100, 81920, 40\n";
        let gpus = parse(out);
        assert_eq!(gpus.len(), 1);
        assert_eq!(gpus[0].index, 3);
        assert_eq!(gpus[0].utilization_pct, None);
        assert_eq!(gpus[0].memory_total_mib, Some(81920.0));
        assert_eq!(gpus[0].power_w, None, "a missing column is absent");
        assert!(parse("").is_empty());
    }

    #[tokio::test]
    async fn a_missing_nvidia_smi_gives_no_gpus() {
        let gpus = query("/nonexistent/nvidia-smi", Duration::from_secs(1)).await;
        assert!(gpus.is_empty());
    }
}
