//! The SSH installer against a real OpenSSH server on loopback (see `common/sshd.rs`): host
//! key pinning, streamed phases, a failing phase, timeouts, a dropped connection, the agent
//! upload and its checksum.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sshd::Sshd;
use common::vm::{HARMLESS, TOKEN, Vm, context, harmless, instance_pinned};
use inferplane_domain::instance::{INSTALL_PHASES, LogStream};
use inferplane_processors::lifecycle::{InstallError, PhaseSink};
use inferplane_processors::{Installer, ScriptFlavour, SshInstaller};

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
