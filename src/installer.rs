//! Flags of the bootstrap (which installer, SSH access, the script, the agent binary, the HF
//! token) and the choice of installer for `serve` and `demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use inferplane_processors::lifecycle::ssh::{RemoteLayout, Secret};
use inferplane_processors::{
    AgentLaunch, Installer, LocalInstaller, ScriptFlavour, SshConfig, SshInstaller,
};
use inferplane_worker::engine::EngineConfig;

use crate::ConfigError;
use crate::secrets;

/// How VMs are bootstrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InstallerKind {
    /// `ssh` when an SSH key file is given, else `local` (`demo`: always `local`).
    Auto,
    /// Simulated VMs on loopback addresses, bootstrapped on this machine (mock engine).
    Local,
    /// Real VMs over SSH.
    Ssh,
}

/// Which bootstrap script the SSH installer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlavourArg {
    /// docker, the NVIDIA toolkit, vLLM in the instance's mode, the agent.
    Vllm,
    /// Every phase announced but harmless (nothing installed but the agent binary).
    Harmless,
}

#[derive(Debug, Clone, Args)]
pub struct InstallerArgs {
    /// How VMs are bootstrapped: auto, local or ssh.
    #[arg(long, env = "INFERPLANE_INSTALLER", value_enum, default_value = "auto")]
    pub installer: InstallerKind,
    /// The control plane's SSH private key (OpenSSH format, no passphrase). Never logged.
    #[arg(long, env = "INFERPLANE_SSH_KEY_FILE")]
    pub ssh_key_file: Option<PathBuf>,
    /// User logged in as on the VMs.
    #[arg(long, env = "INFERPLANE_SSH_USER", default_value = "root")]
    pub ssh_user: String,
    /// SSH port of the VMs.
    #[arg(long, env = "INFERPLANE_SSH_PORT", default_value_t = 22)]
    pub ssh_port: u16,
    /// Timeout of one SSH connection attempt, in seconds.
    #[arg(
        long,
        env = "INFERPLANE_SSH_CONNECT_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub ssh_connect_timeout_secs: u64,
    /// Connect to this address instead of each VM's public IP (a local sshd, for trials).
    #[arg(long, env = "INFERPLANE_SSH_TARGET")]
    pub ssh_target: Option<SocketAddr>,
    /// One bootstrap phase may run this long, in seconds (then INSTALL_FAILED naming it).
    #[arg(
        long,
        env = "INFERPLANE_BOOTSTRAP_PHASE_TIMEOUT_SECS",
        default_value_t = 600
    )]
    pub bootstrap_phase_timeout_secs: u64,
    /// The bootstrap script: vllm (the real one) or harmless.
    #[arg(
        long,
        env = "INFERPLANE_BOOTSTRAP_FLAVOUR",
        value_enum,
        default_value = "vllm"
    )]
    pub bootstrap_flavour: FlavourArg,
    /// A template of one's own instead of the built-in script (same values and fragments).
    #[arg(long, env = "INFERPLANE_BOOTSTRAP_TEMPLATE")]
    pub bootstrap_template: Option<PathBuf>,
    /// Prefix of every path the bootstrap writes on the VM (trials on a machine that is not a
    /// worker VM); empty: the real paths.
    #[arg(long, env = "INFERPLANE_BOOTSTRAP_REMOTE_PREFIX", default_value = "")]
    pub bootstrap_remote_prefix: String,
    /// The worker agent binary uploaded to each VM [default: this inferplane binary].
    #[arg(long, env = "INFERPLANE_AGENT_BINARY")]
    pub agent_binary: Option<PathBuf>,
    /// Hugging Face token for gated models (prefer INFERPLANE_HF_TOKEN_FILE).
    #[arg(long, env = "INFERPLANE_HF_TOKEN", hide_env_values = true)]
    pub hf_token: Option<String>,
    /// File holding the Hugging Face token.
    #[arg(long, env = "INFERPLANE_HF_TOKEN_FILE")]
    pub hf_token_file: Option<PathBuf>,
    /// vLLM image run on the VMs.
    #[arg(long, env = "INFERPLANE_VLLM_IMAGE", default_value = inferplane_processors::lifecycle::ssh::DEFAULT_VLLM_IMAGE)]
    pub vllm_image: String,
    /// HAProxy image of multi mode.
    #[arg(long, env = "INFERPLANE_HAPROXY_IMAGE", default_value = inferplane_processors::lifecycle::ssh::DEFAULT_HAPROXY_IMAGE)]
    pub haproxy_image: String,
    /// Header multi mode's HAProxy keeps sessions sticky on.
    #[arg(
        long,
        env = "INFERPLANE_SESSION_HEADER",
        default_value = "X-Session-Id"
    )]
    pub session_header: String,
}

impl InstallerArgs {
    /// Whether the SSH installer is chosen (`serve`'s auto: when a key file is given).
    /// Whether VMs are bootstrapped over SSH (`demo`: only when asked for explicitly).
    pub fn wants_ssh(&self, demo: bool) -> bool {
        match self.installer {
            InstallerKind::Ssh => true,
            InstallerKind::Local => false,
            InstallerKind::Auto => !demo && self.ssh_key_file.is_some(),
        }
    }

    /// The SSH installer's configuration from the flags.
    pub fn ssh_config(&self, engine_port: u16) -> Result<SshConfig, ConfigError> {
        let key = self.ssh_key_file.clone().ok_or_else(|| {
            ConfigError("the SSH installer needs a private key: set INFERPLANE_SSH_KEY_FILE".into())
        })?;
        let agent = match &self.agent_binary {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| {
                ConfigError(format!(
                    "cannot find this binary to upload as the agent ({e}): set INFERPLANE_AGENT_BINARY"
                ))
            })?,
        };
        let hf = secrets::resolve(
            "the Hugging Face token",
            self.hf_token.as_deref(),
            self.hf_token_file.as_deref(),
        )?;
        let flavour = match (&self.bootstrap_template, self.bootstrap_flavour) {
            (Some(path), _) => {
                ScriptFlavour::Custom(std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!(
                        "cannot read the bootstrap template {}: {e}",
                        path.display()
                    ))
                })?)
            }
            (None, FlavourArg::Vllm) => ScriptFlavour::Vllm,
            (None, FlavourArg::Harmless) => ScriptFlavour::Harmless {
                sleep_secs: 1,
                fail_phase: None,
            },
        };
        let mut c = SshConfig::new(key, agent);
        c.access.user = self.ssh_user.clone();
        c.access.connect_timeout = Duration::from_secs(self.ssh_connect_timeout_secs.max(1));
        c.port = self.ssh_port;
        c.target_override = self.ssh_target;
        c.phase_timeout = Duration::from_secs(self.bootstrap_phase_timeout_secs.max(1));
        c.hf_token = hf.map(Secret::new);
        c.flavour = flavour;
        c.layout = RemoteLayout::under(&self.bootstrap_remote_prefix);
        c.vllm_image = self.vllm_image.clone();
        c.haproxy_image = self.haproxy_image.clone();
        c.engine_port = engine_port;
        c.session_header = self.session_header.clone();
        Ok(c)
    }

    /// The installer `serve` (`demo == false`) or `demo` uses.
    pub fn installer(
        &self,
        demo: bool,
        engine_port: u16,
        engine: EngineConfig,
        agents: Option<AgentLaunch>,
    ) -> Result<Arc<dyn Installer>, ConfigError> {
        if !self.wants_ssh(demo) {
            if !demo {
                tracing::warn!(
                    "no SSH key (INFERPLANE_SSH_KEY_FILE): VMs are bootstrapped by the local installer, which reaches only simulated VMs on loopback; real VMs fail with SSH_NOT_ACCESSIBLE"
                );
            }
            return Ok(Arc::new(
                LocalInstaller::new(engine_port, engine).with_agents(agents),
            ));
        }
        let config = self.ssh_config(engine_port)?;
        tracing::info!(
            user = %config.access.user,
            port = config.port,
            target = ?config.target_override,
            agent = %config.agent_binary.display(),
            hf_token = config.hf_token.is_some(),
            "VMs are bootstrapped over SSH"
        );
        Ok(Arc::new(SshInstaller::new(config).map_err(ConfigError)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: InstallerArgs,
    }

    fn parse(args: &[&str]) -> InstallerArgs {
        let mut all = vec!["test"];
        all.extend(args);
        Cli::parse_from(all).args
    }

    #[test]
    fn auto_picks_ssh_for_serve_only_with_a_key() {
        assert!(!parse(&[]).wants_ssh(false));
        assert!(parse(&["--ssh-key-file", "/k"]).wants_ssh(false));
        assert!(!parse(&["--ssh-key-file", "/k"]).wants_ssh(true));
        assert!(parse(&["--installer", "ssh"]).wants_ssh(true));
        assert!(!parse(&["--installer", "local", "--ssh-key-file", "/k"]).wants_ssh(false));
    }

    #[test]
    fn ssh_without_a_key_or_with_a_bad_key_is_a_configuration_error() {
        let err = parse(&["--installer", "ssh"])
            .installer(true, 8000, EngineConfig::default(), None)
            .err()
            .expect("refused");
        assert!(err.0.contains("INFERPLANE_SSH_KEY_FILE"), "{}", err.0);
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "not a key").unwrap();
        let err = parse(&[
            "--installer",
            "ssh",
            "--ssh-key-file",
            key.to_str().unwrap(),
        ])
        .installer(true, 8000, EngineConfig::default(), None)
        .err()
        .expect("refused");
        assert!(err.0.contains("cannot be used"), "{}", err.0);
    }

    #[test]
    fn the_hf_token_comes_from_a_file_and_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hf");
        std::fs::write(&file, "hf_fromfile\n").unwrap();
        let args = parse(&[
            "--ssh-key-file",
            "/k",
            "--hf-token-file",
            file.to_str().unwrap(),
            "--agent-binary",
            "/bin/true",
        ]);
        let config = args.ssh_config(8000).unwrap();
        assert_eq!(
            config.hf_token.as_ref().map(|t| t.expose()),
            Some("hf_fromfile")
        );
        assert!(!format!("{config:?}").contains("hf_fromfile"));
    }
}
