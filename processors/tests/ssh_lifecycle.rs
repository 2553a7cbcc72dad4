//! The instance lifecycle bootstrapped over SSH, end to end: the bootstrap processor, a real
//! sshd on loopback, the Scaleway simulator; phases as events, the HF token in none of them.

mod common;

use std::sync::{Arc, Mutex};

use common::sshd::{Sshd, SshdKeys};
use common::vm::{HARMLESS, TOKEN, Vm, harmless};
use inferplane_domain::instance::{INSTALL_PHASES, InstanceStatus};
use inferplane_processors::ScriptFlavour;

/// Everything the process logs from now on (every test of this binary).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The name inside an event payload (`{"PhaseStarted": {"name": ...}}`).
fn payload_name(payload: &serde_json::Value) -> String {
    payload
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|v| v.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn an_instance_is_bootstrapped_over_ssh_and_the_hf_token_never_reaches_events_or_logs() {
    let logs = captured_logs();
    let Some(vm) = Vm::start().await else { return };
    // A careless script that prints the token, on stdout and stderr.
    let leaking = HARMLESS.replace(
        "step start\n",
        "step start\necho \"token: $(grep -m1 '^HF_TOKEN=' \"$HF_ENV_FILE\" | cut -d= -f2)\"\n\
         cat \"$HF_ENV_FILE\" >&2\n",
    );
    assert_ne!(leaking, HARMLESS);
    let (h, p, id, engine) = ready_over_ssh(&vm, ScriptFlavour::Custom(leaking)).await;

    // The slow phase's output was recorded while it ran, not after it.
    let (logged, completed): (f64, f64) = sqlx::query_as(
        "select
           min(extract(epoch from recorded_at)::float8) filter (where event_type = 'PhaseLogged'),
           min(extract(epoch from recorded_at)::float8) filter (where event_type = 'PhaseCompleted')
         from events where aggregate_id = $1 and payload::text like '%\"docker_pull\"%'",
    )
    .bind(id.to_string())
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert!(
        completed - logged >= 0.3,
        "docker_pull's output was recorded {:.3} s before it completed",
        completed - logged
    );
    let rows: Vec<(String, serde_json::Value, serde_json::Value)> = sqlx::query_as(
        "select event_type, payload, metadata from events where aggregate_id = $1 order by sequence",
    )
    .bind(id.to_string())
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    let started: Vec<String> = rows
        .iter()
        .filter(|(t, _, _)| t == "PhaseStarted")
        .map(|(_, p, _)| payload_name(p))
        .collect();
    assert_eq!(started, INSTALL_PHASES, "every phase, in order, as events");
    let all: String = rows
        .iter()
        .map(|(t, p, m)| format!("{t} {p} {m}\n"))
        .collect();
    assert!(!all.contains(TOKEN), "the HF token reached the events");
    assert!(!all.contains("agent-secret-77"));
    assert!(
        all.contains("token: [REDACTED]") && all.contains("HF_TOKEN=[REDACTED]"),
        "the script's output was recorded, redacted"
    );
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(!text.is_empty(), "logs were captured");
    assert!(!text.contains(TOKEN), "the HF token reached the logs");

    h.terminate(id).await;
    h.wait_for(id, InstanceStatus::Terminated, 30).await;
    let _ = engine.kill().await;
    p.stop().await;
}

/// A control plane bootstrapping over SSH into `vm`, and one instance taken to ready (a mock
/// engine stands in for vLLM at the VM's address).
async fn ready_over_ssh(
    vm: &Vm,
    flavour: ScriptFlavour,
) -> (
    common::Harness,
    common::Process,
    inferplane_domain::instance::InstanceId,
    inferplane_worker::engine::EngineHandle,
) {
    let installer = Arc::new(vm.installer(flavour));
    let h = common::Harness::with_installer(
        inferplane_scaleway::sim::SimConfig::default(),
        common::settings(),
        Some(installer),
    )
    .await;
    let p = h.process().await;
    let id = h.request("fr-par-2", &[]).await;
    let starting = h.wait_for(id, InstanceStatus::Starting, 40).await;
    assert_eq!(
        starting.ssh_host_key,
        Some(vm.keys.host_fingerprint()),
        "the real host key was pinned"
    );
    let ip: std::net::IpAddr = starting.public_ip.clone().unwrap().parse().unwrap();
    let listener = tokio::net::TcpListener::bind((ip, 8000)).await.unwrap();
    let engine = inferplane_worker::engine::MockEngine::start_on(
        listener,
        inferplane_worker::engine::EngineConfig {
            served_model_names: vec![starting.model_repo.clone()],
            ttft_ms: 1,
            itl_ms: 1,
            ..Default::default()
        },
    )
    .unwrap();
    h.wait_for(id, InstanceStatus::Ready, 30).await;
    (h, p, id, engine)
}

#[tokio::test]
async fn a_vm_that_comes_back_with_another_host_key_fails_with_ssh_host_key_changed() {
    let Some(mut vm) = Vm::start().await else {
        return;
    };
    let (h, p, id, engine) = ready_over_ssh(&vm, harmless(0)).await;
    let pinned = vm.keys.host_fingerprint();
    // Same address, another machine (another host key): a reinstall must not trust it.
    let port = vm.sshd.addr.port();
    vm.sshd.kill();
    let other = SshdKeys::generate();
    std::fs::copy(
        vm.keys.dir.path().join("authorized_keys"),
        other.dir.path().join("authorized_keys"),
    )
    .unwrap();
    vm.sshd = Sshd::start_on(&other, port).await;
    h.command(id, inferplane_domain::instance::InstanceCommand::Reinstall)
        .await;
    let failed = h.wait_for(id, InstanceStatus::Failed, 30).await;
    let failure = failed.failure.expect("a failure");
    assert_eq!(
        failure.code,
        inferplane_domain::instance::FailureCode::SshHostKeyChanged
    );
    assert!(
        failure.message.contains(&pinned) && failure.message.contains(&other.host_fingerprint()),
        "{}",
        failure.message
    );
    assert_eq!(failed.ssh_host_key, Some(pinned), "the pin did not move");
    let _ = engine.kill().await;
    p.stop().await;
}
