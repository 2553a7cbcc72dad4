//! The bootstrap script: templates under `processors/templates/`, rendered with a small,
//! explicit renderer.
//!
//! Template syntax: `{{NAME}}` (upper-case name) is replaced by a value, single-quoted for the
//! shell; `{{>name}}` (lower-case name) by a fragment of trusted script text, itself rendered
//! with the same values. Any other `{{` is literal (so `docker info --format '{{.X}}'` stays as
//! it is). An unknown name is an error, never an empty string.

use std::collections::BTreeMap;

use inferplane_domain::instance::VllmMode;

const BOOTSTRAP: &str = include_str!("../../../templates/bootstrap.sh");
const HARMLESS: &str = include_str!("../../../templates/harmless.sh");
const HEADER: &str = include_str!("../../../templates/header.sh");
const AGENT_INSTALL: &str = include_str!("../../../templates/agent-install.sh");
const VLLM_MONO: &str = include_str!("../../../templates/vllm-mono.sh");
const VLLM_MULTI: &str = include_str!("../../../templates/vllm-multi.sh");
const PULL_MONO: &str = include_str!("../../../templates/pull-mono.sh");
const PULL_MULTI: &str = include_str!("../../../templates/pull-multi.sh");

/// The most vLLM processes of multi mode (one per GPU).
pub const MAX_MULTI_GPUS: u32 = 8;

/// Which script a bootstrap runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptFlavour {
    /// The real thing: docker, the NVIDIA toolkit, vLLM in the instance's mode, the agent.
    Vllm,
    /// Every phase announced and harmless (prints what it would do), except the agent upload
    /// and its environment, checked as on a VM. `docker_pull` sleeps `sleep_secs`;
    /// `fail_phase` names a phase that exits with status 3. For tests and trials.
    Harmless {
        sleep_secs: u32,
        fail_phase: Option<String>,
    },
    /// A template of one's own (`--bootstrap-template`), with the same values and fragments.
    Custom(String),
}

/// Where things go on the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLayout {
    /// The agent binary (`/usr/local/bin/inferplane`).
    pub agent_bin: String,
    /// Configuration and secrets, root only (`/etc/inferplane`).
    pub config_dir: String,
    /// The script, the staged upload, the run's pid (`/var/lib/inferplane`).
    pub work_dir: String,
    /// Mount point of the data volume (`/mnt/inferplane-data`).
    pub data_dir: String,
}

impl Default for RemoteLayout {
    fn default() -> Self {
        Self::under("")
    }
}

impl RemoteLayout {
    /// The default layout under `prefix` (empty: the real paths), for trying the bootstrap on
    /// a machine that is not a worker VM.
    pub fn under(prefix: &str) -> Self {
        let p = prefix.trim_end_matches('/');
        Self {
            agent_bin: format!("{p}/usr/local/bin/inferplane"),
            config_dir: format!("{p}/etc/inferplane"),
            work_dir: format!("{p}/var/lib/inferplane"),
            data_dir: format!("{p}/mnt/inferplane-data"),
        }
    }

    pub fn agent_env_file(&self) -> String {
        format!("{}/agent.env", self.config_dir)
    }

    pub fn hf_env_file(&self) -> String {
        format!("{}/hf.env", self.config_dir)
    }

    pub fn script_file(&self) -> String {
        format!("{}/bootstrap.sh", self.work_dir)
    }

    pub fn agent_staged(&self) -> String {
        format!("{}/inferplane.upload", self.work_dir)
    }

    pub fn pid_file(&self) -> String {
        format!("{}/bootstrap.pid", self.work_dir)
    }
}

/// Everything a script is rendered from. No secret here: secrets travel to the VM in files.
#[derive(Debug, Clone)]
pub struct ScriptParams {
    pub model: String,
    pub gpu_count: u32,
    pub mode: VllmMode,
    /// Size of the data volume (GB, 10^9 bytes), to tell it from other unmounted disks.
    pub data_volume_gb: u32,
    pub vllm_image: String,
    pub haproxy_image: String,
    pub engine_port: u16,
    /// Header HAProxy keeps sessions sticky on (multi mode).
    pub session_header: String,
    pub layout: RemoteLayout,
    /// SHA-256 (hex) of the agent binary the control plane uploads.
    pub agent_sha256: String,
}

/// Why a script could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the template uses {{{{{0}}}}}, which is not a known value")]
    UnknownValue(String),
    #[error("the template uses {{{{>{0}}}}}, which is not a known fragment")]
    UnknownFragment(String),
    #[error("an instance needs at least one GPU")]
    NoGpu,
    #[error("multi mode runs at most {MAX_MULTI_GPUS} vLLM processes, not {0}")]
    TooManyGpus(u32),
}

/// Renders the bootstrap script of `flavour` for `params`.
pub fn render(flavour: &ScriptFlavour, params: &ScriptParams) -> Result<String, RenderError> {
    if params.gpu_count == 0 {
        return Err(RenderError::NoGpu);
    }
    if params.mode == VllmMode::Multi && params.gpu_count > MAX_MULTI_GPUS {
        return Err(RenderError::TooManyGpus(params.gpu_count));
    }
    let mut values = values(params);
    let (template, harmless) = match flavour {
        ScriptFlavour::Vllm => (BOOTSTRAP, None),
        ScriptFlavour::Harmless {
            sleep_secs,
            fail_phase,
        } => (HARMLESS, Some((sleep_secs, fail_phase))),
        ScriptFlavour::Custom(t) => (t.as_str(), None),
    };
    let (sleep, fail) = harmless
        .map(|(s, f)| (s.to_string(), f.clone().unwrap_or_default()))
        .unwrap_or_else(|| ("1".into(), String::new()));
    values.insert("SLEEP_SECS", sleep);
    values.insert("FAIL_PHASE", fail);
    let multi = params.mode == VllmMode::Multi;
    let fragments: BTreeMap<&str, &str> = [
        ("header", HEADER),
        ("agent_install", AGENT_INSTALL),
        ("mode", params.mode.as_str()),
        ("vllm_start", if multi { VLLM_MULTI } else { VLLM_MONO }),
        ("docker_pull", if multi { PULL_MULTI } else { PULL_MONO }),
    ]
    .into();
    Renderer {
        values: &values,
        fragments: &fragments,
    }
    .render(template, 0)
}

fn values(p: &ScriptParams) -> BTreeMap<&'static str, String> {
    [
        ("MODEL", p.model.clone()),
        ("GPU_COUNT", p.gpu_count.to_string()),
        ("VLLM_IMAGE", p.vllm_image.clone()),
        ("HAPROXY_IMAGE", p.haproxy_image.clone()),
        ("ENGINE_PORT", p.engine_port.to_string()),
        (
            "FIRST_BACKEND_PORT",
            (u32::from(p.engine_port) + 1).to_string(),
        ),
        ("SESSION_HEADER", p.session_header.clone()),
        ("DATA_VOLUME_GB", p.data_volume_gb.to_string()),
        ("DATA_DIR", p.layout.data_dir.clone()),
        ("CONFIG_DIR", p.layout.config_dir.clone()),
        ("WORK_DIR", p.layout.work_dir.clone()),
        ("AGENT_BIN", p.layout.agent_bin.clone()),
        ("AGENT_STAGED", p.layout.agent_staged()),
        ("AGENT_SHA256", p.agent_sha256.clone()),
    ]
    .into()
}

struct Renderer<'a> {
    values: &'a BTreeMap<&'static str, String>,
    fragments: &'a BTreeMap<&'static str, &'static str>,
}

impl Renderer<'_> {
    fn render(&self, template: &str, depth: usize) -> Result<String, RenderError> {
        let mut out = String::with_capacity(template.len() + 256);
        let mut rest = template;
        while let Some(at) = rest.find("{{") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            match placeholder(after) {
                Some((Placeholder::Value(name), used)) => {
                    let value = self
                        .values
                        .get(name)
                        .ok_or_else(|| RenderError::UnknownValue(name.to_string()))?;
                    out.push_str(&shell_quote(value));
                    rest = &after[used..];
                }
                Some((Placeholder::Fragment(name), used)) => {
                    let fragment = self
                        .fragments
                        .get(name)
                        .filter(|_| depth < 4)
                        .ok_or_else(|| RenderError::UnknownFragment(name.to_string()))?;
                    out.push_str(self.render(fragment, depth + 1)?.trim_end_matches('\n'));
                    rest = &after[used..];
                }
                None => {
                    out.push_str("{{");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

enum Placeholder<'a> {
    Value(&'a str),
    Fragment(&'a str),
}

/// The placeholder at the start of `s` (just after `{{`) and the bytes it spans with `}}`.
fn placeholder(s: &str) -> Option<(Placeholder<'_>, usize)> {
    let end = s.find("}}")?;
    let inner = &s[..end];
    let is = |name: &str, upper: bool| {
        !name.is_empty()
            && name.chars().all(|c| {
                c == '_'
                    || c.is_ascii_digit()
                    || if upper {
                        c.is_ascii_uppercase()
                    } else {
                        c.is_ascii_lowercase()
                    }
            })
    };
    if let Some(name) = inner.strip_prefix('>') {
        return is(name, false).then_some((Placeholder::Fragment(name), end + 2));
    }
    is(inner, true).then_some((Placeholder::Value(inner), end + 2))
}

/// `value` as one shell word: single quotes, a quote inside written `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: VllmMode, gpus: u32) -> ScriptParams {
        ScriptParams {
            model: "org/model".into(),
            gpu_count: gpus,
            mode,
            data_volume_gb: 100,
            vllm_image: "vllm/vllm-openai:v1".into(),
            haproxy_image: "haproxy:3".into(),
            engine_port: 8000,
            session_header: "X-Session-Id".into(),
            layout: RemoteLayout::default(),
            agent_sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn values_are_single_quoted_for_the_shell() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn a_model_name_with_shell_syntax_stays_one_word() {
        let mut p = params(VllmMode::Mono, 1);
        p.model = "org/$(reboot)'x".into();
        let script = render(&ScriptFlavour::Vllm, &p).unwrap();
        assert!(script.contains(r"MODEL='org/$(reboot)'\''x'"), "{script}");
    }

    #[test]
    fn unknown_placeholders_are_errors_and_other_braces_are_literal() {
        let p = params(VllmMode::Mono, 1);
        let custom = |t: &str| render(&ScriptFlavour::Custom(t.into()), &p);
        assert_eq!(
            custom("echo {{NOPE}}").unwrap_err(),
            RenderError::UnknownValue("NOPE".into())
        );
        assert_eq!(
            custom("{{>nope}}").unwrap_err(),
            RenderError::UnknownFragment("nope".into())
        );
        assert_eq!(
            custom("docker info --format '{{.X}}' {{MODEL}} {{ x }}").unwrap(),
            "docker info --format '{{.X}}' 'org/model' {{ x }}"
        );
    }

    #[test]
    fn gpu_counts_are_checked() {
        assert_eq!(
            render(&ScriptFlavour::Vllm, &params(VllmMode::Mono, 0)).unwrap_err(),
            RenderError::NoGpu
        );
        assert_eq!(
            render(&ScriptFlavour::Vllm, &params(VllmMode::Multi, 9)).unwrap_err(),
            RenderError::TooManyGpus(9)
        );
    }

    #[test]
    fn every_phase_is_announced_in_order_in_each_flavour() {
        let harmless = ScriptFlavour::Harmless {
            sleep_secs: 1,
            fail_phase: None,
        };
        for (flavour, mode) in [
            (&ScriptFlavour::Vllm, VllmMode::Mono),
            (&ScriptFlavour::Vllm, VllmMode::Multi),
            (&harmless, VllmMode::Mono),
        ] {
            let script = render(flavour, &params(mode, 2)).unwrap();
            let announced: Vec<&str> = script
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("phase ")
                        .or_else(|| l.strip_prefix("step "))
                        .filter(|n| !n.contains(' '))
                })
                .collect();
            assert_eq!(
                announced,
                inferplane_domain::instance::INSTALL_PHASES,
                "{flavour:?} {mode:?}"
            );
        }
    }
}
