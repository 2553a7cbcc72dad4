//! The SSH installer against a real OpenSSH server on loopback (see `common/sshd.rs`): host
//! key pinning, streamed phases, failures, timeouts, a dropped connection, the agent upload,
//! and the HF token kept out of every log chunk and event.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sshd::{self, Sshd, SshdKeys};
use inferplane_domain::catalog::Provider;
use inferplane_domain::instance::{
    INSTALL_PHASES, InstanceEvent, InstanceRequested, InstanceState, InstanceStatus, LogStream,
    VllmMode, state_after,
};
use inferplane_processors::lifecycle::ssh::RemoteLayout;
use inferplane_processors::lifecycle::{InstallError, PhaseSink};
use inferplane_processors::{InstallContext, Installer, ScriptFlavour, SshConfig, SshInstaller};

const TOKEN: &str = "hf_TestTokenThatMustNeverLeak42";
const HARMLESS: &str = include_str!("../templates/harmless.sh");

/// A loopback "VM": an sshd, a folder standing for its root file system, an agent binary.
struct Vm {
    keys: SshdKeys,
    sshd: Sshd,
    root: tempfile::TempDir,
    agent: PathBuf,
    _agent_dir: tempfile::TempDir,
}

impl Vm {
    async fn start() -> Option<Self> {
        if !sshd::available() {
            return None;
        }
        let keys = SshdKeys::generate();
        let sshd = Sshd::start(&keys).await;
        let agent_dir = tempfile::tempdir().unwrap();
        let agent = agent_dir.path().join("inferplane");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&agent, bytes).unwrap();
        Some(Self {
            keys,
            sshd,
            root: tempfile::tempdir().unwrap(),
            agent,
            _agent_dir: agent_dir,
        })
    }

    fn layout(&self) -> RemoteLayout {
        RemoteLayout::under(&self.root.path().display().to_string())
    }

    fn config(&self, flavour: ScriptFlavour) -> SshConfig {
        let mut c = SshConfig::new(self.keys.client_key(), self.agent.clone());
        c.access.user = sshd::current_user();
        c.target_override = Some(self.sshd.addr);
        c.layout = self.layout();
        c.flavour = flavour;
        c.phase_timeout = Duration::from_secs(30);
        c.log_flush_interval = Duration::from_millis(100);
        c.hf_token = Some(inferplane_processors::lifecycle::ssh::Secret::new(TOKEN));
        c
    }

    fn installer(&self, flavour: ScriptFlavour) -> SshInstaller {
        SshInstaller::new(self.config(flavour)).expect("installer")
    }

    /// An installing instance whose pinned host key is this server's.
    fn instance(&self) -> InstanceState {
        instance_pinned(&self.keys.host_fingerprint())
    }
}

fn harmless(sleep_secs: u32) -> ScriptFlavour {
    ScriptFlavour::Harmless {
        sleep_secs,
        fail_phase: None,
    }
}

fn instance_pinned(fingerprint: &str) -> InstanceState {
    let requested = InstanceRequested {
        model_id: uuid::Uuid::now_v7(),
        model_repo: "org/test-model-8b".into(),
        model_required_vram_gb: 16,
        zone: "fr-par-2".into(),
        allowed_zones: vec!["fr-par-2".into()],
        instance_type: "L4-1-24G".into(),
        gpu_count: 1,
        vram_per_gpu_gb: 24,
        hourly_price_micro_eur: 750_000,
        data_volume_gb: 50,
        vllm_mode: VllmMode::Mono,
        provider: Provider::Scaleway,
    };
    let mut state = state_after([InstanceEvent::InstanceRequested(requested)])
        .state
        .expect("requested");
    state.status = InstanceStatus::Installing;
    state.public_ip = Some("127.0.0.1".into());
    state.ssh_host_key = Some(fingerprint.to_string());
    state
}

fn context() -> InstallContext {
    InstallContext {
        agent_env: vec![
            ("INFERPLANE_AGENT_INSTANCE_ID".into(), "i-1".into()),
            ("INFERPLANE_AGENT_MODEL".into(), "org/test-model-8b".into()),
            (
                "INFERPLANE_AGENT_TEST_TOKEN".into(),
                "agent-secret-77".into(),
            ),
        ],
        timeout: Duration::from_secs(60),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Started(String),
    Logged(String, LogStream, String),
    Completed(String, i32),
    Failed(String, Option<i32>, String),
}

/// Keeps what an installer reports, with when.
#[derive(Default)]
struct MemorySink {
    calls: Mutex<Vec<(Instant, Call)>>,
}

impl MemorySink {
    fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn when(&self, pred: impl Fn(&Call) -> bool) -> Option<Instant> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .find(|(_, c)| pred(c))
            .map(|(t, _)| *t)
    }

    fn started(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Started(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    fn output(&self) -> String {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Logged(_, _, t) => Some(t),
                Call::Failed(_, _, m) => Some(m),
                _ => None,
            })
            .collect()
    }

    async fn wait_started(&self, phase: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.started().iter().any(|p| p == phase) {
            assert!(Instant::now() < deadline, "{phase} never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn push(&self, call: Call) {
        self.calls.lock().unwrap().push((Instant::now(), call));
    }
}

#[async_trait::async_trait]
impl PhaseSink for MemorySink {
    async fn started(&self, phase: &str) -> anyhow::Result<()> {
        self.push(Call::Started(phase.into()));
        Ok(())
    }
    async fn logged(&self, phase: &str, stream: LogStream, chunk: &str) -> anyhow::Result<()> {
        self.push(Call::Logged(phase.into(), stream, chunk.into()));
        Ok(())
    }
    async fn completed(&self, phase: &str, _ms: u64, exit_code: i32) -> anyhow::Result<()> {
        self.push(Call::Completed(phase.into(), exit_code));
        Ok(())
    }
    async fn failed(
        &self,
        phase: &str,
        _ms: u64,
        exit_code: Option<i32>,
        message: &str,
    ) -> anyhow::Result<()> {
        self.push(Call::Failed(phase.into(), exit_code, message.into()));
        Ok(())
    }
}

fn id() -> inferplane_domain::instance::InstanceId {
    inferplane_domain::instance::InstanceId::new_v7()
}

#[tokio::test]
async fn the_host_key_fingerprint_is_the_one_openssh_shows_and_a_changed_key_is_refused() {
    let Some(vm) = Vm::start().await else { return };
    let installer = vm.installer(harmless(0));
    let presented = installer.reachable(id(), &vm.instance()).await.unwrap();
    assert_eq!(presented, vm.keys.host_fingerprint());
    assert!(presented.starts_with("SHA256:"), "{presented}");

    let pinned = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let sink = MemorySink::default();
    let err = installer
        .install(id(), &instance_pinned(pinned), &context(), &sink)
        .await
        .unwrap_err();
    match err {
        InstallError::HostKeyChanged {
            pinned: p,
            presented: q,
        } => {
            assert_eq!(p, pinned);
            assert_eq!(q, presented);
        }
        other => panic!("expected a host key change, got {other:?}"),
    }
    assert!(sink.calls().is_empty(), "nothing ran: {:?}", sink.calls());
    assert!(
        !vm.layout().script_file().is_empty()
            && !std::path::Path::new(&vm.layout().script_file()).exists(),
        "nothing was written on the refused VM"
    );
}

#[tokio::test]
async fn phases_stream_in_order_with_output_before_a_slow_phase_ends() {
    let Some(vm) = Vm::start().await else { return };
    let installer = vm.installer(harmless(2));
    let sink = MemorySink::default();
    installer
        .install(id(), &vm.instance(), &context(), &sink)
        .await
        .expect("install");
    assert_eq!(sink.started(), INSTALL_PHASES);
    let completed: Vec<Call> = sink
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Completed(..)))
        .collect();
    let expected: Vec<Call> = INSTALL_PHASES
        .iter()
        .map(|p| Call::Completed(p.to_string(), 0))
        .collect();
    assert_eq!(completed, expected);
    // The slow phase's first output was recorded while it still ran.
    let logged = sink
        .when(|c| matches!(c, Call::Logged(p, _, t) if p == "docker_pull" && t.contains("pulling")))
        .expect("docker_pull logged");
    let done = sink
        .when(|c| matches!(c, Call::Completed(p, _) if p == "docker_pull"))
        .unwrap();
    assert!(
        done.duration_since(logged) >= Duration::from_millis(1500),
        "output of docker_pull arrived only {:?} before it completed",
        done.duration_since(logged)
    );
    // Every log chunk is bounded and belongs to a started phase.
    for c in sink.calls() {
        if let Call::Logged(p, _, t) = c {
            assert!(t.len() <= 4096 && INSTALL_PHASES.contains(&p.as_str()));
        }
    }
}

#[tokio::test]
async fn the_agent_is_uploaded_and_verified_and_its_environment_is_root_only() {
    let Some(vm) = Vm::start().await else { return };
    let installer = vm.installer(harmless(0));
    let sink = MemorySink::default();
    installer
        .install(id(), &vm.instance(), &context(), &sink)
        .await
        .expect("install");
    let layout = vm.layout();
    assert_eq!(
        std::fs::read(&layout.agent_bin).unwrap(),
        std::fs::read(&vm.agent).unwrap(),
        "the installed agent is the local binary"
    );
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&layout.agent_bin), 0o755);
    assert_eq!(mode(&layout.agent_env_file()), 0o600);
    assert_eq!(mode(&layout.hf_env_file()), 0o600);
    assert_eq!(
        std::fs::read_to_string(layout.agent_env_file()).unwrap(),
        "INFERPLANE_AGENT_INSTANCE_ID=i-1\nINFERPLANE_AGENT_MODEL=org/test-model-8b\n\
         INFERPLANE_AGENT_TEST_TOKEN=agent-secret-77\n"
    );
    assert!(
        std::fs::read_to_string(layout.hf_env_file())
            .unwrap()
            .contains(&format!("HF_TOKEN={TOKEN}"))
    );
    assert!(sink.output().contains("checksum verified"));
    // The script carries no secret.
    let script = std::fs::read_to_string(layout.script_file()).unwrap();
    assert!(!script.contains(TOKEN) && !script.contains("agent-secret-77"));
}

#[tokio::test]
async fn an_agent_binary_changed_on_the_way_fails_agent_install() {
    let Some(vm) = Vm::start().await else { return };
    let tampered = HARMLESS.replace(
        "step agent_install\n",
        "step agent_install\necho corrupted >> \"$AGENT_STAGED\"\n",
    );
    assert_ne!(tampered, HARMLESS);
    let installer = vm.installer(ScriptFlavour::Custom(tampered));
    let sink = MemorySink::default();
    let err = installer
        .install(id(), &vm.instance(), &context(), &sink)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, InstallError::PhaseFailed { phase, .. } if phase == "agent_install"),
        "{err:?}"
    );
    let failed = sink.calls().into_iter().find_map(|c| match c {
        Call::Failed(p, code, m) => Some((p, code, m)),
        _ => None,
    });
    let (phase, code, message) = failed.expect("a failed phase");
    assert_eq!((phase.as_str(), code), ("agent_install", Some(1)));
    assert!(message.contains("checksum mismatch"), "{message}");
    assert!(!std::path::Path::new(&vm.layout().agent_bin).exists());
}

#[tokio::test]
async fn a_failing_phase_fails_the_install_with_its_name_and_exit_code() {
    let Some(vm) = Vm::start().await else { return };
    let installer = vm.installer(ScriptFlavour::Harmless {
        sleep_secs: 0,
        fail_phase: Some("nvidia_toolkit".into()),
    });
    let sink = MemorySink::default();
    let err = installer
        .install(id(), &vm.instance(), &context(), &sink)
        .await
        .unwrap_err();
    match err {
        InstallError::PhaseFailed { phase, message } => {
            assert_eq!(phase, "nvidia_toolkit");
            assert!(message.contains("exit status 3"), "{message}");
            assert!(message.contains("fails as asked"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sink.started(),
        INSTALL_PHASES[..5].to_vec(),
        "nothing after the failed phase started"
    );
    assert!(matches!(
        sink.calls().last(),
        Some(Call::Failed(p, Some(3), _)) if p == "nvidia_toolkit"
    ));
}

#[tokio::test]
async fn a_phase_past_its_timeout_fails_and_its_script_is_stopped() {
    let Some(vm) = Vm::start().await else { return };
    let mut config = vm.config(harmless(60));
    // Long enough for phase start (files and the upload) on a loaded machine.
    config.phase_timeout = Duration::from_secs(5);
    let installer = SshInstaller::new(config).unwrap();
    let sink = MemorySink::default();
    let started = Instant::now();
    let err = installer
        .install(id(), &vm.instance(), &context(), &sink)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(25));
    match err {
        InstallError::PhaseFailed { phase, message } => {
            assert_eq!(phase, "docker_pull");
            assert!(message.contains("timed out after 5 s"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The script's process group was stopped on the VM.
    let pid = std::fs::read_to_string(vm.layout().pid_file()).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_dir.exists() {
        assert!(Instant::now() < deadline, "the script still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_dropped_connection_fails_the_phase_and_a_reinstall_on_the_restarted_server_works() {
    let Some(mut vm) = Vm::start().await else {
        return;
    };
    let installer = Arc::new(vm.installer(harmless(60)));
    let sink = Arc::new(MemorySink::default());
    let inst = vm.instance();
    let run = {
        let (installer, sink, inst) = (installer.clone(), sink.clone(), inst.clone());
        tokio::spawn(async move {
            installer
                .install(id(), &inst, &context(), sink.as_ref())
                .await
        })
    };
    sink.wait_started("docker_pull").await;
    let port = vm.sshd.addr.port();
    vm.sshd.kill();
    let err = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the install noticed")
        .unwrap()
        .unwrap_err();
    match err {
        InstallError::PhaseFailed { phase, message } => {
            assert_eq!(phase, "docker_pull");
            assert!(message.contains("connection"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The VM comes back (same host key); the reinstall runs everything again.
    vm.sshd = Sshd::start_on(&vm.keys, port).await;
    let again = vm.installer(harmless(0));
    let sink = MemorySink::default();
    again
        .install(id(), &inst, &context(), &sink)
        .await
        .expect("reinstall");
    assert_eq!(sink.started(), INSTALL_PHASES);
}

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
