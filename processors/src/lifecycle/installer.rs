//! How a running VM becomes a serving worker: the bootstrap, behind a trait.
//!
//! The bootstrap processor does not know how a VM is reached: an [`Installer`] checks that the
//! VM answers (returning its host key fingerprint, pinned by the aggregate on first contact)
//! and runs the bootstrap phases, reporting each through a [`PhaseSink`] that records them as
//! events as they happen.
//!
//! [`LocalInstaller`] serves the simulator's VMs, whose public addresses are loopback
//! addresses of this machine: it runs the phases locally, and its `vllm_start` phase starts a
//! mock vLLM engine listening on the VM's address, so the readiness probes and the gateway talk
//! to a real HTTP engine at the address the provider reported. Its `agent_start` phase starts
//! a worker agent on the VM's address (port 9100 by default) that registers with the control
//! plane over HTTP from that address, with the bootstrap token the SSH bootstrap would put in
//! a real agent's environment ([`agent_env`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use inferplane_domain::instance::{InstanceId, InstanceState, LogStream};
use inferplane_worker::agent::{Agent, AgentConfig, AgentHandle};
use inferplane_worker::engine::{EngineConfig, EngineHandle, MockEngine};
use tokio::sync::Mutex;

use super::worker_credentials::{BOOTSTRAP_TOKEN_VAR, WorkerSecret, agent_env, env_value};
use crate::settings::LifecycleSettings;

/// How the local installer starts each simulated VM's worker agent.
#[derive(Debug, Clone)]
pub struct AgentLaunch {
    pub control_plane_url: String,
    pub secret: WorkerSecret,
    pub heartbeat_interval: std::time::Duration,
    /// Port of the agent's endpoints on the VM's address.
    pub port: u16,
}

impl AgentLaunch {
    /// From the lifecycle settings; `None` without a worker secret or a control plane URL.
    pub fn from_settings(settings: &LifecycleSettings) -> Option<Self> {
        Some(Self {
            control_plane_url: settings.control_plane_url.clone()?,
            secret: settings.worker_secret.clone()?,
            heartbeat_interval: settings.agent_heartbeat_interval,
            port: 9100,
        })
    }
}

/// Why a bootstrap did not complete.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The VM does not answer (yet).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// A phase failed; it was reported through the sink.
    #[error("phase {phase} failed: {message}")]
    PhaseFailed { phase: String, message: String },
    /// The VM presented another host key than the one pinned at first contact: nothing was
    /// run on it.
    #[error("the VM presented host key {presented}, but {pinned} was pinned on first contact")]
    HostKeyChanged { pinned: String, presented: String },
    /// Recording a phase failed (the store); the bootstrap is retried.
    #[error(transparent)]
    Record(#[from] anyhow::Error),
}

/// Receives the phases of a bootstrap as they happen.
#[async_trait::async_trait]
pub trait PhaseSink: Send + Sync {
    async fn started(&self, phase: &str) -> anyhow::Result<()>;
    async fn logged(&self, phase: &str, stream: LogStream, chunk: &str) -> anyhow::Result<()>;
    async fn completed(&self, phase: &str, duration_ms: u64, exit_code: i32) -> anyhow::Result<()>;
    async fn failed(
        &self,
        phase: &str,
        duration_ms: u64,
        exit_code: Option<i32>,
        message: &str,
    ) -> anyhow::Result<()>;
}

/// What the control plane hands to one bootstrap, beside the instance itself.
#[derive(Clone)]
pub struct InstallContext {
    /// Environment of the worker agent, written verbatim (`NAME=value` lines) to
    /// `/etc/inferplane/agent.env` (mode 0600) on the VM. Values may be secret: they are never
    /// logged, and `Debug` shows the names only.
    pub agent_env: Vec<(String, String)>,
    /// The whole bootstrap's budget: past it the installer fails the running phase.
    pub timeout: Duration,
}

impl InstallContext {
    /// The value of agent environment entry `name`.
    pub fn agent_env_var(&self, name: &str) -> Option<&str> {
        self.agent_env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Debug for InstallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .agent_env
            .iter()
            .map(|(k, _)| format!("{k}=[REDACTED]"))
            .collect();
        f.debug_struct("InstallContext")
            .field("agent_env", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Reaches VMs and bootstraps them.
#[async_trait::async_trait]
pub trait Installer: Send + Sync + 'static {
    /// Checks that the VM answers; returns the fingerprint of its host key.
    async fn reachable(&self, id: InstanceId, inst: &InstanceState)
    -> Result<String, InstallError>;
    /// Runs every bootstrap phase in order. Must be safe to run again on the same VM. Refuses
    /// ([`InstallError::HostKeyChanged`]) a VM whose host key is not the one pinned on `inst`.
    async fn install(
        &self,
        id: InstanceId,
        inst: &InstanceState,
        ctx: &InstallContext,
        sink: &dyn PhaseSink,
    ) -> Result<(), InstallError>;
    /// The base URL of the VM's engine (`http://<ip>:<port>`).
    fn engine_url(&self, inst: &InstanceState) -> Option<String>;
    /// The VM is gone: drop anything held for it.
    async fn release(&self, id: InstanceId);
}

/// Bootstraps the simulator's VMs on this machine (see the module documentation).
pub struct LocalInstaller {
    port: u16,
    engine: EngineConfig,
    engines: Mutex<HashMap<InstanceId, EngineHandle>>,
    agent: Option<AgentLaunch>,
    agents: Mutex<HashMap<InstanceId, AgentHandle>>,
}

impl LocalInstaller {
    /// `engine` is the template of each VM's mock engine (latencies, limits); the served model
    /// is the instance's.
    pub fn new(port: u16, engine: EngineConfig) -> Self {
        Self {
            port,
            engine,
            engines: Mutex::new(HashMap::new()),
            agent: None,
            agents: Mutex::new(HashMap::new()),
        }
    }

    /// Also starts a worker agent on each VM (phase `agent_start`).
    pub fn with_agents(mut self, launch: Option<AgentLaunch>) -> Self {
        self.agent = launch;
        self
    }

    /// Number of worker agents running for VMs.
    pub async fn agents_running(&self) -> usize {
        self.agents.lock().await.len()
    }

    /// Stops the agent of `id` at once, as if its VM had lost the agent (tests of staleness).
    pub async fn kill_agent(&self, id: InstanceId) -> bool {
        match self.agents.lock().await.remove(&id) {
            Some(agent) => {
                agent.abort();
                true
            }
            None => false,
        }
    }

    async fn start_agent(
        &self,
        launch: &AgentLaunch,
        id: InstanceId,
        inst: &InstanceState,
        engine: SocketAddr,
    ) -> Result<String, String> {
        let env = agent_env(
            Some(&launch.secret),
            Some(&launch.control_plane_url),
            id,
            inst,
        );
        let config = AgentConfig {
            instance_id: id.0,
            control_plane_url: launch.control_plane_url.trim_end_matches('/').to_string(),
            engine_url: format!("http://{engine}"),
            model: inst.model_repo.clone(),
            heartbeat_interval: launch.heartbeat_interval,
            bootstrap_token: env_value(&env, BOOTSTRAP_TOKEN_VAR).map(str::to_string),
            // The token stays in memory: the simulated VM lives as long as this process.
            state_dir: None,
            // Connect from the VM's address, as a real VM would: registration checks it.
            source_ip: Some(engine.ip()),
            nvidia_smi: None,
            disk_path: std::path::PathBuf::from("/"),
        };
        let addr = SocketAddr::new(engine.ip(), launch.port);
        let mut agents = self.agents.lock().await;
        if let Some(old) = agents.remove(&id) {
            old.shutdown().await;
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let handle = Agent::start_on(listener, config)
            .map_err(|e| format!("cannot start the agent on {addr}: {e}"))?;
        agents.insert(id, handle);
        Ok(format!(
            "worker agent on http://{addr} reporting to {} (install attempt {})\n",
            launch.control_plane_url, inst.install.attempt
        ))
    }

    fn address(&self, inst: &InstanceState) -> Result<SocketAddr, InstallError> {
        let ip: IpAddr = inst
            .public_ip
            .as_deref()
            .ok_or_else(|| InstallError::Unreachable("no public IP recorded".into()))?
            .parse()
            .map_err(|_| InstallError::Unreachable("the public IP is not an address".into()))?;
        if !ip.is_loopback() {
            return Err(InstallError::Unreachable(format!(
                "{ip} is not a simulated VM (the local installer only reaches loopback addresses)"
            )));
        }
        Ok(SocketAddr::new(ip, self.port))
    }

    /// Number of engines running for VMs.
    pub async fn running(&self) -> usize {
        self.engines.lock().await.len()
    }
}

#[async_trait::async_trait]
impl Installer for LocalInstaller {
    async fn reachable(
        &self,
        _id: InstanceId,
        inst: &InstanceState,
    ) -> Result<String, InstallError> {
        let addr = self.address(inst)?;
        // The simulated VM's identity: stable per address, as a host key is per machine.
        let digest = sha256_hex(format!("local-vm:{}", addr.ip()).as_bytes());
        Ok(format!("SHA256:{}", &digest[..43]))
    }

    async fn install(
        &self,
        id: InstanceId,
        inst: &InstanceState,
        _ctx: &InstallContext,
        sink: &dyn PhaseSink,
    ) -> Result<(), InstallError> {
        let addr = self.address(inst)?;
        run_phase(sink, "start", async {
            Ok(format!(
                "local executor for the simulated VM {} (instance {id}, {} x {} GB GPU, vLLM {} mode)\n",
                addr.ip(),
                inst.gpu_count,
                inst.vram_per_gpu_gb,
                inst.vllm_mode.as_str()
            ))
        })
        .await?;
        run_phase(sink, "vllm_start", async {
            let mut engines = self.engines.lock().await;
            if let Some(old) = engines.remove(&id) {
                let _ = old.shutdown().await;
            }
            let mut config = self.engine.clone();
            config.served_model_names = vec![inst.model_repo.clone()];
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let handle = MockEngine::start_on(listener, config)
                .map_err(|e| format!("cannot start the engine on {addr}: {e}"))?;
            engines.insert(id, handle);
            Ok(format!(
                "mock vLLM engine serving {} on http://{addr}\n",
                inst.model_repo
            ))
        })
        .await?;
        if let Some(launch) = &self.agent {
            run_phase(
                sink,
                "agent_start",
                self.start_agent(launch, id, inst, addr),
            )
            .await?;
        }
        run_phase(sink, "done", async {
            Ok("bootstrap complete\n".to_string())
        })
        .await?;
        Ok(())
    }

    fn engine_url(&self, inst: &InstanceState) -> Option<String> {
        self.address(inst).ok().map(|a| format!("http://{a}"))
    }

    async fn release(&self, id: InstanceId) {
        if let Some(agent) = self.agents.lock().await.remove(&id) {
            agent.abort();
        }
        let engine = self.engines.lock().await.remove(&id);
        if let Some(engine) = engine {
            // The VM is gone: its engine dies with it, connections and all.
            let _ = engine.kill().await;
        }
    }
}

/// Runs one phase: started, its log, completed or failed, with its duration.
async fn run_phase(
    sink: &dyn PhaseSink,
    phase: &str,
    body: impl std::future::Future<Output = Result<String, String>>,
) -> Result<(), InstallError> {
    sink.started(phase).await?;
    let started = Instant::now();
    let result = body.await;
    let ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(log) => {
            sink.logged(phase, LogStream::Stdout, &log).await?;
            sink.completed(phase, ms, 0).await?;
            Ok(())
        }
        Err(message) => {
            sink.logged(phase, LogStream::Stderr, &message).await?;
            sink.failed(phase, ms, Some(1), &message).await?;
            Err(InstallError::PhaseFailed {
                phase: phase.to_string(),
                message,
            })
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
