//! Bootstrap and readiness: from a running server to a ready worker.
//!
//! - `booting`: wait until the VM answers (SSH), within the SSH wait timeout; its host key is
//!   pinned on first contact, and a different key later fails the instance.
//! - `installing`: run the bootstrap phases through the [`Installer`], each phase recorded as
//!   it starts, logs and ends; a failed phase or the bootstrap timeout fails the instance with
//!   the phase named.
//! - `starting`: the readiness checks in order (engine answers, model listed, one-token
//!   warm-up, then a health check), each recorded with its timing; then ready. Failures are
//!   retried at the probe interval until the readiness timeout. A failed check is recorded
//!   once per failure streak, not once per probe.

use std::sync::Arc;

use inferplane_domain::instance::{
    FailureCode, InstanceCommand, InstanceError, InstanceId, InstanceState, InstanceStatus,
    LogStream, MAX_LOG_CHUNK_BYTES, ReadinessCheck,
};
use inferplane_store::StoredEvent;

use super::installer::{InstallContext, InstallError, PhaseSink};
use super::{InstanceSteps, Lifecycle, Recorded, drive, instance_event};
use crate::probes::{ProbeResult, Probes};
use crate::runtime::{Next, Processor, WakeMemory, Work};

const WAKES: &[&str] = &[
    "ServerStarted",
    "SshAccessible",
    "InstallCompleted",
    "ReadinessCheckPassed",
    "ReinstallRequested",
    "ProviderServerStopped",
    // A worker that becomes healthy lets a refused MarkReady through.
    "WorkerHealthChanged",
];

pub struct Bootstrap {
    lc: Arc<Lifecycle>,
    probes: Probes,
}

impl Bootstrap {
    pub fn new(lc: Arc<Lifecycle>) -> Self {
        let timeout = lc
            .settings
            .readiness_probe_interval
            .max(std::time::Duration::from_secs(2));
        Self {
            probes: Probes::new(timeout),
            lc,
        }
    }
}

#[async_trait::async_trait]
impl Processor for Bootstrap {
    fn name(&self) -> &'static str {
        "bootstrap"
    }

    fn wakes(&self, event: &StoredEvent, _memory: &mut WakeMemory) -> Option<String> {
        instance_event(event, WAKES)
    }

    async fn step(&self, work: &Work) -> anyhow::Result<Next> {
        drive(self, work).await
    }
}

#[async_trait::async_trait]
impl InstanceSteps for Bootstrap {
    fn lifecycle(&self) -> &Lifecycle {
        &self.lc
    }

    async fn once(&self, work: &Work, id: InstanceId, inst: InstanceState) -> anyhow::Result<Next> {
        match inst.status {
            InstanceStatus::Booting => self.reach(work, id, &inst).await,
            InstanceStatus::Installing => self.install(work, id, &inst).await,
            InstanceStatus::Starting => self.ready(work, id, &inst).await,
            _ => Ok(Next::Done),
        }
    }
}

impl Bootstrap {
    async fn reach(
        &self,
        work: &Work,
        id: InstanceId,
        inst: &InstanceState,
    ) -> anyhow::Result<Next> {
        match self.lc.installer.reachable(id, inst).await {
            Ok(fingerprint) => {
                let cmd = InstanceCommand::RecordSshAccessible {
                    host_key_fingerprint: fingerprint,
                };
                if let Recorded::Refused(InstanceError::HostKeyChanged { pinned, presented }) =
                    self.lc.record(work, id, cmd).await?
                {
                    let message = format!(
                        "the VM presented host key {presented}, but {pinned} was pinned on first contact"
                    );
                    self.lc
                        .fail(work, id, FailureCode::SshHostKeyChanged, message)
                        .await?;
                }
                Ok(Next::Done)
            }
            Err(InstallError::Record(e)) => Err(e),
            Err(e) => {
                let waited = self
                    .lc
                    .time_since(id, &["ServerStarted", "ReinstallRequested"])
                    .await?
                    .unwrap_or_default();
                if waited > self.lc.settings.ssh_wait_timeout {
                    let message = format!("not reachable after {} s: {e}", waited.as_secs());
                    self.lc
                        .fail(work, id, FailureCode::SshNotAccessible, message)
                        .await?;
                    return Ok(Next::Done);
                }
                Ok(Next::After(self.lc.settings.readiness_probe_interval))
            }
        }
    }

    async fn install(
        &self,
        work: &Work,
        id: InstanceId,
        inst: &InstanceState,
    ) -> anyhow::Result<Next> {
        let sink = RecordingSink {
            lc: &self.lc,
            work,
            id,
        };
        let ctx = install_context(&self.lc.settings, id, inst);
        let budget = ctx.timeout;
        // The installer fails the running phase when the budget runs out; this is the backstop
        // for an installer that does not return.
        let backstop = budget + BACKSTOP_GRACE;
        let run = self.lc.installer.install(id, inst, &ctx, &sink);
        match tokio::time::timeout(backstop, run).await {
            Ok(Ok(())) => {
                self.lc
                    .record(work, id, InstanceCommand::RecordInstallCompleted)
                    .await?;
            }
            Ok(Err(InstallError::Record(e))) => return Err(e),
            Ok(Err(InstallError::PhaseFailed { phase, message })) => {
                let message = format!("phase {phase} failed: {message}");
                self.lc
                    .fail(work, id, FailureCode::InstallFailed, message)
                    .await?;
            }
            Ok(Err(e @ InstallError::HostKeyChanged { .. })) => {
                self.lc
                    .fail(work, id, FailureCode::SshHostKeyChanged, e.to_string())
                    .await?;
            }
            Ok(Err(InstallError::Unreachable(reason))) => {
                let message = format!("the VM became unreachable during the bootstrap: {reason}");
                self.lc
                    .fail(work, id, FailureCode::SshNotAccessible, message)
                    .await?;
            }
            Err(_) => {
                let message = format!("the bootstrap did not finish within {} s", budget.as_secs());
                self.lc
                    .fail(work, id, FailureCode::InstallFailed, message)
                    .await?;
            }
        }
        Ok(Next::Done)
    }

    async fn ready(
        &self,
        work: &Work,
        id: InstanceId,
        inst: &InstanceState,
    ) -> anyhow::Result<Next> {
        let Some(base) = self.lc.installer.engine_url(inst) else {
            self.lc
                .fail(
                    work,
                    id,
                    FailureCode::HealthCheckFailed,
                    "the instance has no engine address".into(),
                )
                .await?;
            return Ok(Next::Done);
        };
        let model = inst.model_repo.as_str();
        for check in [
            ReadinessCheck::VllmHttpOk,
            ReadinessCheck::ModelLoaded,
            ReadinessCheck::VllmWarmup,
            ReadinessCheck::HealthCheck,
        ] {
            if inst.readiness_of(check).is_some_and(|r| r.ok) {
                continue;
            }
            let result: ProbeResult = match check {
                ReadinessCheck::VllmHttpOk | ReadinessCheck::HealthCheck => {
                    self.probes.engine_http_ok(&base).await
                }
                ReadinessCheck::ModelLoaded => self.probes.model_loaded(&base, model).await,
                ReadinessCheck::VllmWarmup => self.probes.warmup(&base, model).await,
            };
            let already_failing = inst.readiness_of(check).is_some_and(|r| !r.ok);
            if result.ok || !already_failing {
                let cmd = InstanceCommand::RecordReadinessCheck {
                    check,
                    ok: result.ok,
                    duration_ms: result.duration_ms,
                    detail: result.detail.clone(),
                };
                self.lc.record(work, id, cmd).await?;
            }
            if result.ok {
                // The recorded pass wakes the next check.
                return Ok(Next::Done);
            }
            let waited = self
                .lc
                .time_since(id, &["InstallCompleted"])
                .await?
                .unwrap_or_default();
            if waited > self.lc.settings.readiness_timeout {
                let message = format!(
                    "{} still failing after {} s: {}",
                    check.as_str(),
                    waited.as_secs(),
                    result.detail
                );
                self.lc
                    .fail(work, id, FailureCode::StartupTimeout, message)
                    .await?;
                return Ok(Next::Done);
            }
            return Ok(Next::After(self.lc.settings.readiness_probe_interval));
        }
        if let Recorded::Refused(InstanceError::WorkerUnhealthy { reason }) =
            self.lc.record(work, id, InstanceCommand::MarkReady).await?
        {
            // The checks pass but the worker agent says the engine does not serve yet: wait
            // for its heartbeats (a `WorkerHealthChanged` wakes this step), within the
            // readiness timeout.
            let waited = self
                .lc
                .time_since(id, &["InstallCompleted"])
                .await?
                .unwrap_or_default();
            if waited > self.lc.settings.readiness_timeout {
                let message = format!(
                    "the worker agent still reports unhealthy after {} s: {reason}",
                    waited.as_secs()
                );
                self.lc
                    .fail(work, id, FailureCode::StartupTimeout, message)
                    .await?;
                return Ok(Next::Done);
            }
            return Ok(Next::After(self.lc.settings.readiness_probe_interval));
        }
        Ok(Next::Done)
    }
}

/// How long past the bootstrap budget the processor waits for an installer that does not
/// return by itself.
const BACKSTOP_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// What the bootstrap hands to the installer: the worker agent's environment (its contract
/// with the agent, see `docs/architecture.md`) and the time budget.
fn install_context(
    settings: &crate::settings::LifecycleSettings,
    id: InstanceId,
    inst: &InstanceState,
) -> InstallContext {
    // Instance id, control plane URL, model and the one-time bootstrap token of this attempt
    // (nothing when the control plane has no worker secret: no agent could register).
    let mut agent_env = super::worker_credentials::agent_env(
        settings.worker_secret.as_ref(),
        settings.control_plane_url.as_deref(),
        id,
        inst,
    );
    if !agent_env.is_empty() {
        agent_env.push((
            "INFERPLANE_AGENT_ENGINE_URL".into(),
            format!("http://127.0.0.1:{}", settings.engine_port),
        ));
    }
    InstallContext {
        agent_env,
        timeout: settings.bootstrap_timeout,
    }
}

/// Records each phase on the instance as it happens.
struct RecordingSink<'a> {
    lc: &'a Lifecycle,
    work: &'a Work,
    id: InstanceId,
}

#[async_trait::async_trait]
impl PhaseSink for RecordingSink<'_> {
    async fn started(&self, phase: &str) -> anyhow::Result<()> {
        let cmd = InstanceCommand::RecordPhaseStarted {
            name: phase.to_string(),
        };
        self.lc.record(self.work, self.id, cmd).await.map(|_| ())
    }

    async fn logged(&self, phase: &str, stream: LogStream, chunk: &str) -> anyhow::Result<()> {
        for piece in chunks(chunk, MAX_LOG_CHUNK_BYTES) {
            let cmd = InstanceCommand::RecordPhaseLogged {
                name: phase.to_string(),
                stream,
                chunk: piece.to_string(),
            };
            self.lc.record(self.work, self.id, cmd).await?;
        }
        Ok(())
    }

    async fn completed(&self, phase: &str, duration_ms: u64, exit_code: i32) -> anyhow::Result<()> {
        observe_phase(phase, "completed", duration_ms);
        let cmd = InstanceCommand::RecordPhaseCompleted {
            name: phase.to_string(),
            duration_ms,
            exit_code,
        };
        self.lc.record(self.work, self.id, cmd).await.map(|_| ())
    }

    async fn failed(
        &self,
        phase: &str,
        duration_ms: u64,
        exit_code: Option<i32>,
        message: &str,
    ) -> anyhow::Result<()> {
        observe_phase(phase, "failed", duration_ms);
        let cmd = InstanceCommand::RecordPhaseFailed {
            name: phase.to_string(),
            duration_ms,
            exit_code,
            message: message.chars().take(2000).collect(),
        };
        self.lc.record(self.work, self.id, cmd).await.map(|_| ())
    }
}

/// The bootstrap phase durations histogram (phase names are the fixed
/// [`INSTALL_PHASES`](inferplane_domain::instance::INSTALL_PHASES), so labels stay bounded).
fn observe_phase(phase: &str, outcome: &'static str, duration_ms: u64) {
    metrics::histogram!(
        "inferplane_bootstrap_phase_duration_seconds",
        "phase" => phase.to_string(),
        "outcome" => outcome
    )
    .record(duration_ms as f64 / 1000.0);
}

/// Splits `text` into pieces of at most `max` bytes on character boundaries.
fn chunks(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{chunks, install_context};
    use inferplane_domain::catalog::Provider;
    use inferplane_domain::instance::{
        InstanceEvent, InstanceId, InstanceRequested, VllmMode, state_after,
    };

    #[test]
    fn the_agent_environment_names_the_instance_the_control_plane_the_engine_and_the_model() {
        let requested = InstanceRequested {
            model_id: uuid::Uuid::now_v7(),
            model_repo: "org/model".into(),
            model_required_vram_gb: 16,
            zone: "fr-par-2".into(),
            allowed_zones: vec!["fr-par-2".into()],
            instance_type: "L4-1-24G".into(),
            gpu_count: 1,
            vram_per_gpu_gb: 24,
            hourly_price_micro_eur: 1,
            data_volume_gb: 50,
            vllm_mode: VllmMode::Mono,
            provider: Provider::Scaleway,
        };
        let inst = state_after([InstanceEvent::InstanceRequested(requested)])
            .state
            .unwrap();
        let settings = crate::settings::LifecycleSettings {
            control_plane_url: Some("https://cp.example:8443".into()),
            worker_secret: Some(inferplane_domain::worker_credentials::WorkerSecret::new(
                "a-worker-secret-of-sufficient-length",
            )),
            ..Default::default()
        };
        let id = InstanceId::new_v7();
        let ctx = install_context(&settings, id, &inst);
        let id_text = id.to_string();
        for (name, value) in [
            ("INFERPLANE_AGENT_INSTANCE_ID", id_text.as_str()),
            (
                "INFERPLANE_AGENT_CONTROL_PLANE_URL",
                "https://cp.example:8443",
            ),
            ("INFERPLANE_AGENT_ENGINE_URL", "http://127.0.0.1:8000"),
            ("INFERPLANE_AGENT_MODEL", "org/model"),
        ] {
            assert_eq!(ctx.agent_env_var(name), Some(value), "{name}");
        }
        let token = ctx
            .agent_env_var("INFERPLANE_AGENT_BOOTSTRAP_TOKEN")
            .unwrap();
        assert_eq!(token.len(), 64);
        // Without a worker secret no agent could register: no agent environment at all.
        let bare = install_context(&crate::settings::LifecycleSettings::default(), id, &inst);
        assert!(bare.agent_env.is_empty());
        assert_eq!(ctx.timeout, settings.bootstrap_timeout);
    }

    #[test]
    fn chunks_respect_the_limit_and_characters() {
        assert!(chunks("", 4).is_empty());
        assert_eq!(chunks("abcdefgh", 3), vec!["abc", "def", "gh"]);
        let s = "ééé"; // two bytes each
        assert_eq!(chunks(s, 3), vec!["é", "é", "é"]);
        assert_eq!(chunks(s, 3).concat(), s);
    }
}
