//! The rendered bootstrap scripts, compared with the committed files under `tests/golden/`,
//! and checked by `bash -n` and (when installed) `shellcheck`.
//!
//! After a deliberate template change: `INFERPLANE_UPDATE_GOLDEN=1 cargo test -p
//! inferplane-processors --test golden`, then review the diff of `tests/golden/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use inferplane_domain::instance::VllmMode;
use inferplane_processors::ScriptFlavour;
use inferplane_processors::lifecycle::ssh::{RemoteLayout, ScriptParams, render};

fn params(mode: VllmMode, gpu_count: u32) -> ScriptParams {
    ScriptParams {
        model: "meta-llama/Llama-3.1-8B-Instruct".into(),
        gpu_count,
        mode,
        data_volume_gb: 100,
        vllm_image: "vllm/vllm-openai:v0.11.0".into(),
        haproxy_image: "haproxy:3.2".into(),
        engine_port: 8000,
        session_header: "X-Session-Id".into(),
        layout: RemoteLayout::default(),
        agent_sha256: "0123456789abcdef".repeat(4),
    }
}

fn cases() -> Vec<(&'static str, String)> {
    let harmless = ScriptFlavour::Harmless {
        sleep_secs: 2,
        fail_phase: None,
    };
    let vllm = ScriptFlavour::Vllm;
    [
        ("mono-1gpu.sh", &vllm, params(VllmMode::Mono, 1)),
        ("mono-4gpu.sh", &vllm, params(VllmMode::Mono, 4)),
        ("multi-2gpu.sh", &vllm, params(VllmMode::Multi, 2)),
        ("harmless.sh", &harmless, params(VllmMode::Mono, 1)),
    ]
    .into_iter()
    .map(|(name, flavour, p)| (name, render(flavour, &p).expect("renders")))
    .collect()
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn rendered_scripts_match_the_golden_files() {
    let update = std::env::var("INFERPLANE_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    for (name, script) in cases() {
        let path = golden_dir().join(name);
        if update {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &script).unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (INFERPLANE_UPDATE_GOLDEN=1 writes it)",
                path.display()
            )
        });
        assert!(
            golden == script,
            "{name} differs from {}; if the change is deliberate, regenerate with \
             INFERPLANE_UPDATE_GOLDEN=1 and review the diff",
            path.display()
        );
    }
}

#[test]
fn the_modes_differ_where_they_should() {
    let cases = cases();
    let get = |n: &str| cases.iter().find(|(name, _)| *name == n).unwrap().1.clone();
    let mono4 = get("mono-4gpu.sh");
    assert!(mono4.contains("GPU_COUNT='4'") && mono4.contains("--tensor-parallel-size"));
    assert!(!mono4.contains("haproxy.cfg"));
    let multi = get("multi-2gpu.sh");
    for needle in [
        "stick on req.hdr($SESSION_HEADER)",
        "option httpchk GET /v1/models",
        "SESSION_HEADER='X-Session-Id'",
        "FIRST_BACKEND_PORT='8001'",
        "docker pull \"$HAPROXY_IMAGE\"",
    ] {
        assert!(multi.contains(needle), "multi lacks {needle}");
    }
}

fn write_all(dir: &Path) -> Vec<PathBuf> {
    cases()
        .into_iter()
        .map(|(name, script)| {
            let path = dir.join(name);
            std::fs::write(&path, script).unwrap();
            path
        })
        .collect()
}

#[test]
fn rendered_scripts_parse_with_bash() {
    let dir = tempfile::tempdir().unwrap();
    for path in write_all(dir.path()) {
        let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "bash -n {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn rendered_scripts_pass_shellcheck() {
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: shellcheck is not installed (apt-get install shellcheck)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for path in write_all(dir.path()) {
        let out = Command::new("shellcheck")
            .args(["--shell=bash", "--severity=warning"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck {}:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
