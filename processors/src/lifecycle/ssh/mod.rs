//! Bootstraps real VMs over SSH (see `docs/architecture.md`, "Bootstrap over SSH").
//!
//! `reachable` logs in and returns the SHA-256 fingerprint of the VM's host key, which the
//! instance pins. `install` refuses a VM whose key is not the pinned one, then, in phase
//! `start`: writes the agent's environment and the HF token to root-only files (through
//! standard input, never in a command line), writes the rendered script, uploads the agent
//! binary over SFTP; then runs the script as its own process group, reading `::phase::NAME`
//! markers and output as they stream in. A phase running past its timeout, the whole budget
//! running out, a non-zero exit or a dropped connection fail the running phase.

mod config;
mod phases;
mod script;
mod session;
mod stream;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use inferplane_domain::instance::{InstanceId, InstanceState, LogStream};
use tokio::sync::mpsc;

pub use config::{DEFAULT_HAPROXY_IMAGE, DEFAULT_VLLM_IMAGE, Secret, SshConfig};
pub use script::{
    MAX_MULTI_GPUS, RemoteLayout, RenderError, ScriptFlavour, ScriptParams, render, shell_quote,
};
pub use session::{HostKey, Session, SessionError, SshAccess, fingerprint, host_key};
pub use stream::{LineSplitter, LogBuffer, Output, REDACTED, Redactor};

use self::config::is_secret_name;
use self::phases::PhaseRun;
use super::installer::{InstallContext, InstallError, Installer, PhaseSink};

/// Bootstraps VMs over SSH.
#[derive(Debug)]
pub struct SshInstaller {
    config: SshConfig,
}

impl SshInstaller {
    /// Checks what can be checked before any VM exists: the key and the agent binary are
    /// readable, the key is a private key without passphrase.
    pub fn new(config: SshConfig) -> Result<Self, String> {
        russh::keys::load_secret_key(&config.access.key_file, None).map_err(|e| {
            format!(
                "the SSH key file {} cannot be used (an OpenSSH private key without passphrase is needed): {e}",
                config.access.key_file.display()
            )
        })?;
        std::fs::File::open(&config.agent_binary).map_err(|e| {
            format!(
                "the agent binary {} cannot be read: {e}",
                config.agent_binary.display()
            )
        })?;
        Ok(Self { config })
    }

    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    fn target(&self, inst: &InstanceState) -> Result<SocketAddr, InstallError> {
        if let Some(addr) = self.config.target_override {
            return Ok(addr);
        }
        let ip: IpAddr = inst
            .public_ip
            .as_deref()
            .ok_or_else(|| InstallError::Unreachable("no public IP recorded".into()))?
            .parse()
            .map_err(|_| InstallError::Unreachable("the public IP is not an address".into()))?;
        Ok(SocketAddr::new(ip, self.config.port))
    }

    fn redactor(&self, ctx: &InstallContext) -> Redactor {
        let token = self.config.hf_token.iter().map(|t| t.expose().to_string());
        let env = ctx
            .agent_env
            .iter()
            .filter(|(k, _)| is_secret_name(k))
            .map(|(_, v)| v.clone());
        Redactor::new(token.chain(env))
    }

    /// Phase `start`, before the script: secrets, the script and the agent binary on the VM,
    /// each step shown as it is done (the upload of a large binary takes a while).
    async fn prepare(
        &self,
        session: &Session,
        inst: &InstanceState,
        ctx: &InstallContext,
        run: &mut PhaseRun<'_>,
    ) -> Result<(), Prepare> {
        let layout = &self.config.layout;
        let (sha, size) = sha256_file(self.config.agent_binary.clone()).await?;
        let params = ScriptParams {
            model: inst.model_repo.clone(),
            gpu_count: inst.gpu_count,
            mode: inst.vllm_mode,
            data_volume_gb: inst.data_volume_gb,
            vllm_image: self.config.vllm_image.clone(),
            haproxy_image: self.config.haproxy_image.clone(),
            engine_port: self.config.engine_port,
            session_header: self.config.session_header.clone(),
            layout: layout.clone(),
            agent_sha256: sha.clone(),
        };
        let script =
            render(&self.config.flavour, &params).map_err(|e| format!("bootstrap script: {e}"))?;
        let env = agent_env_file(&ctx.agent_env)?;
        let hf = match &self.config.hf_token {
            Some(t) => format!("HF_TOKEN={0}\nHUGGING_FACE_HUB_TOKEN={0}\n", t.expose()),
            None => String::new(),
        };
        let write = |path: String, mode: u32, content: Vec<u8>| async move {
            session
                .write_file(&path, mode, &content)
                .await
                .map_err(|e| e.to_string())
        };
        write(layout.agent_env_file(), 0o600, env.into_bytes()).await?;
        write(layout.hf_env_file(), 0o600, hf.into_bytes()).await?;
        write(layout.script_file(), 0o700, script.into_bytes()).await?;
        let wrote = format!(
            "wrote {} ({} entries) and {} (mode 0600), and the bootstrap script\n",
            layout.agent_env_file(),
            ctx.agent_env.len(),
            layout.hf_env_file()
        );
        note(run, &wrote).await?;
        let uploading = format!(
            "uploading the agent binary over SFTP ({size} bytes, sha256 {sha}) to {}\n",
            layout.agent_staged()
        );
        note(run, &uploading).await?;
        session
            .upload(&self.config.agent_binary, &layout.agent_staged())
            .await
            .map_err(|e| e.to_string())?;
        note(run, "agent binary uploaded\n").await?;
        Ok(())
    }

    /// Runs the script, turning its streamed output into phases.
    async fn execute(
        &self,
        session: &Session,
        run: &mut PhaseRun<'_>,
        redactor: Redactor,
        deadline: Instant,
        budget: Duration,
    ) -> Result<(), InstallError> {
        let layout = &self.config.layout;
        let command = format!("setsid -w bash {}", shell_quote(&layout.script_file()));
        let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
        let (err_tx, mut err_rx) = mpsc::channel::<Vec<u8>>(64);
        let mut stdout = LineSplitter::new(LogStream::Stdout, redactor.clone());
        let mut stderr = LineSplitter::new(LogStream::Stderr, redactor);
        let interval = self.config.log_flush_interval;
        let exec = session.stream(&command, out_tx, err_tx);
        tokio::pin!(exec);
        let mut tick = tokio::time::interval(interval.min(Duration::from_millis(250)));
        let status = loop {
            tokio::select! {
                status = &mut exec => break status,
                Some(bytes) = out_rx.recv() => apply(run, stdout.push(&bytes)).await?,
                Some(bytes) = err_rx.recv() => apply(run, stderr.push(&bytes)).await?,
                _ = tick.tick() => {
                    let partial: Vec<Output> =
                        stdout.flush_partial().into_iter().chain(stderr.flush_partial()).collect();
                    apply(run, partial).await?;
                    run.flush(interval, false).await?;
                    let timed_out = if Instant::now() >= deadline {
                        Some(format!("the bootstrap did not finish within {} s", budget.as_secs()))
                    } else if run.elapsed() >= self.config.phase_timeout {
                        Some(format!("timed out after {} s", self.config.phase_timeout.as_secs()))
                    } else {
                        None
                    };
                    if let Some(message) = timed_out {
                        let error = run.fail(None, &message).await;
                        self.stop_script(session).await;
                        return Err(error);
                    }
                }
            }
        };
        while let Some(bytes) = out_rx.recv().await {
            apply(run, stdout.push(&bytes)).await?;
        }
        while let Some(bytes) = err_rx.recv().await {
            apply(run, stderr.push(&bytes)).await?;
        }
        apply(
            run,
            stdout.finish().into_iter().chain(stderr.finish()).collect(),
        )
        .await?;
        match status {
            Ok(0) if run.current() == Some("done") => run.complete(0).await,
            Ok(0) => {
                let phase = run.current().unwrap_or("start").to_string();
                let message = format!("the script ended in phase {phase} without reaching done");
                Err(run.fail(Some(0), &message).await)
            }
            Ok(code) => {
                let message = format!("exit status {code}{}", run.stderr_hint());
                Err(run.fail(Some(code as i32), &message).await)
            }
            Err(e) => {
                let message = format!("the SSH connection was lost: {e}");
                Err(run.fail(None, &message).await)
            }
        }
    }

    /// Stops a script that outlived its timeout: its whole process group (best effort, the
    /// next run stops a leftover too).
    async fn stop_script(&self, session: &Session) {
        let pid_file = shell_quote(&self.config.layout.pid_file());
        let command = format!("pid=$(cat {pid_file}) && kill -TERM -- -\"$pid\"");
        let _ = tokio::time::timeout(Duration::from_secs(5), session.run(&command)).await;
    }
}

/// Why phase `start`'s preparation stopped: the VM refused something, or recording failed.
enum Prepare {
    Failed(String),
    Record(InstallError),
}

impl From<String> for Prepare {
    fn from(message: String) -> Self {
        Self::Failed(message)
    }
}

impl From<InstallError> for Prepare {
    fn from(e: InstallError) -> Self {
        Self::Record(e)
    }
}

/// A line of the installer's own, recorded at once.
async fn note(run: &mut PhaseRun<'_>, text: &str) -> Result<(), InstallError> {
    run.text(LogStream::Stdout, text).await?;
    run.flush(Duration::ZERO, true).await
}

async fn apply(run: &mut PhaseRun<'_>, outputs: Vec<Output>) -> Result<(), InstallError> {
    for output in outputs {
        match output {
            Output::Marker(name) => run.enter(&name).await?,
            Output::Text(stream, text) => run.text(stream, &text).await?,
        }
    }
    Ok(())
}

/// The agent's environment file: `NAME=value` lines, verbatim.
fn agent_env_file(entries: &[(String, String)]) -> Result<String, String> {
    let mut out = String::new();
    for (name, value) in entries {
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(format!("invalid agent environment name {name:?}"));
        }
        if value.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "the agent environment value of {name} holds a line break"
            ));
        }
        out.push_str(&format!("{name}={value}\n"));
    }
    Ok(out)
}

/// SHA-256 (hex) and size of a local file, read off the async runtime.
async fn sha256_file(path: PathBuf) -> Result<(String, u64), String> {
    tokio::task::spawn_blocking(move || {
        use sha2::Digest;
        use std::io::Read;
        let mut file = std::fs::File::open(&path)
            .map_err(|e| format!("reading the agent binary {}: {e}", path.display()))?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| format!("reading the agent binary {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        Ok((hex::encode(hasher.finalize()), size))
    })
    .await
    .map_err(|e| format!("hashing the agent binary: {e}"))?
}

fn install_error(e: SessionError) -> InstallError {
    match e {
        SessionError::HostKeyChanged { pinned, presented } => {
            InstallError::HostKeyChanged { pinned, presented }
        }
        other => InstallError::Unreachable(other.to_string()),
    }
}

#[async_trait::async_trait]
impl Installer for SshInstaller {
    async fn reachable(
        &self,
        _id: InstanceId,
        inst: &InstanceState,
    ) -> Result<String, InstallError> {
        let addr = self.target(inst)?;
        let (session, key) = Session::open(addr, &self.config.access, None)
            .await
            .map_err(install_error)?;
        session.close().await;
        Ok(key.fingerprint)
    }

    async fn install(
        &self,
        id: InstanceId,
        inst: &InstanceState,
        ctx: &InstallContext,
        sink: &dyn PhaseSink,
    ) -> Result<(), InstallError> {
        let addr = self.target(inst)?;
        let pinned = inst.ssh_host_key.as_deref().ok_or_else(|| {
            InstallError::Unreachable("no host key was pinned for this instance".into())
        })?;
        let deadline = Instant::now() + ctx.timeout;
        let (session, key) = Session::open(addr, &self.config.access, Some(pinned))
            .await
            .map_err(install_error)?;
        tracing::info!(instance = %id, %addr, host_key = %key.fingerprint, "bootstrap over SSH");
        let redactor = self.redactor(ctx);
        let mut run = PhaseRun::new(sink, redactor.clone(), self.config.log_chunk_bytes);
        let result = async {
            run.enter("start").await?;
            let hello = format!(
                "instance {id}: connected to {}@{} (host key {})\n",
                self.config.access.user,
                session.addr(),
                key.fingerprint
            );
            note(&mut run, &hello).await?;
            let limit = self
                .config
                .phase_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let prepared =
                tokio::time::timeout(limit, self.prepare(&session, inst, ctx, &mut run)).await;
            let failure = match prepared {
                Ok(Ok(())) => None,
                Ok(Err(Prepare::Record(e))) => return Err(e),
                Ok(Err(Prepare::Failed(message))) => Some(message),
                Err(_) => Some(format!(
                    "preparing the VM (files, agent upload) timed out after {} s",
                    limit.as_secs()
                )),
            };
            if let Some(message) = failure {
                return Err(run.fail(None, &message).await);
            }
            self.execute(&session, &mut run, redactor, deadline, ctx.timeout)
                .await
        }
        .await;
        session.close().await;
        result
    }

    fn engine_url(&self, inst: &InstanceState) -> Option<String> {
        let ip: IpAddr = inst.public_ip.as_deref()?.parse().ok()?;
        Some(format!(
            "http://{}",
            SocketAddr::new(ip, self.config.engine_port)
        ))
    }

    async fn release(&self, _id: InstanceId) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_environment_is_written_verbatim_and_checked() {
        let env = vec![
            ("INFERPLANE_AGENT_MODEL".to_string(), "org/m".to_string()),
            ("INFERPLANE_AGENT_X_TOKEN".to_string(), "a b'c".to_string()),
        ];
        assert_eq!(
            agent_env_file(&env).unwrap(),
            "INFERPLANE_AGENT_MODEL=org/m\nINFERPLANE_AGENT_X_TOKEN=a b'c\n"
        );
        assert!(agent_env_file(&[("bad name".into(), "v".into())]).is_err());
        assert!(agent_env_file(&[("A".into(), "x\ny".into())]).is_err());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let mut config = SshConfig::new("/k".into(), "/a".into());
        config.hf_token = Some(Secret::new("hf_verysecret"));
        let shown = format!("{config:?}");
        assert!(!shown.contains("hf_verysecret"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
        let ctx = InstallContext {
            agent_env: vec![("INFERPLANE_AGENT_BOOTSTRAP_TOKEN".into(), "tok123".into())],
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{ctx:?}").contains("tok123"));
    }

    #[test]
    fn secret_looking_agent_entries_are_redacted_from_the_output() {
        assert!(is_secret_name("INFERPLANE_AGENT_BOOTSTRAP_TOKEN"));
        assert!(!is_secret_name("INFERPLANE_AGENT_MODEL"));
    }
}
