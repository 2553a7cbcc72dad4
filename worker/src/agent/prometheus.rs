//! A small parser of the Prometheus text exposition format (version 0.0.4), enough to read
//! vLLM's gauges: `name{label="value",...} value [timestamp]` lines, comments skipped.

/// One sample: a metric name, its labels, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample of `text`. Lines that do not parse are skipped (an exporter's bug must not
/// hide the other metrics); `# HELP` / `# TYPE` and blank lines are ignored.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

/// The sum of every sample of metric `name` (over all label sets), or `None` if absent.
pub fn sum(samples: &[Sample], name: &str) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .fold(None, |acc, v| Some(acc.unwrap_or(0.0) + v))
}

/// The largest sample of metric `name`, or `None` if absent.
pub fn max(samples: &[Sample], name: &str) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s.name == name && !s.value.is_nan())
        .map(|s| s.value)
        .fold(None, |acc: Option<f64>, v| {
            Some(acc.map_or(v, |a| a.max(v)))
        })
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_:".contains(c))
    {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after)?;
        labels = parsed;
        rest = remaining;
    }
    let value = rest.split_whitespace().next()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(value)?,
    })
}

/// Labels up to the closing brace; returns them and what follows the brace.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VLLM: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.5
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 12 1700000000000
label_escapes{path="C:\\dir",quote="say \"hi\"",nl="a\nb"} 1e3

garbage line without value
process_open_fds 42
"#;

    #[test]
    fn vllm_gauges_are_read_and_summed_over_engines() {
        let samples = parse(VLLM);
        assert_eq!(sum(&samples, "vllm:num_requests_running"), Some(5.0));
        assert_eq!(sum(&samples, "vllm:num_requests_waiting"), Some(7.0));
        assert_eq!(max(&samples, "vllm:kv_cache_usage_perc"), Some(0.5));
        assert_eq!(sum(&samples, "vllm:gpu_cache_usage_perc"), None);
        assert_eq!(sum(&samples, "process_open_fds"), Some(42.0));
        let first = &samples[0];
        assert_eq!(
            first.label("model_name"),
            Some("meta-llama/Llama-3.1-8B-Instruct")
        );
        assert_eq!(first.label("engine"), Some("0"));
    }

    #[test]
    fn timestamps_special_values_and_escapes_are_understood() {
        let samples = parse(VLLM);
        let bucket = samples
            .iter()
            .find(|s| s.name == "vllm:time_to_first_token_seconds_bucket")
            .unwrap();
        assert_eq!(bucket.label("le"), Some("+Inf"));
        assert_eq!(bucket.value, 12.0);
        let esc = samples.iter().find(|s| s.name == "label_escapes").unwrap();
        assert_eq!(esc.label("path"), Some("C:\\dir"));
        assert_eq!(esc.label("quote"), Some("say \"hi\""));
        assert_eq!(esc.label("nl"), Some("a\nb"));
        assert_eq!(esc.value, 1000.0);
        assert!(parse("x +Inf").first().unwrap().value.is_infinite());
        assert!(parse("x NaN").first().unwrap().value.is_nan());
    }

    #[test]
    fn malformed_lines_are_skipped_not_fatal() {
        let samples = parse("a{b=\"unterminated 1\nok 2\n{} 3\nname{x=\"1\"}\nv 1 2 3\n");
        let names: Vec<_> = samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ok", "v"]);
        assert!(parse("").is_empty());
    }
}
