//! One SSH session to a VM: its host key checked against a fingerprint, key authentication,
//! files written from memory, SFTP upload, streamed execution.
//!
//! async-ssh2-tokio checks a host key against a whole public key, while the instance pins a
//! fingerprint. So a connection first reads the key the server presents (a key exchange with
//! russh, stopped right after), compares its SHA-256 fingerprint with the pinned one, and
//! then logs in with async-ssh2-tokio accepting exactly that key: a server swapped in between
//! is refused.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_ssh2_tokio::client::{AuthMethod, Client, ServerCheckMethod};
use russh::keys::{HashAlg, PublicKey};
use tokio::sync::mpsc;

/// Why a session could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Nothing answers SSH there (yet), or the connection broke.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    /// The server presented another key than the pinned one.
    #[error("host key {presented} is not the pinned {pinned}")]
    HostKeyChanged { pinned: String, presented: String },
    /// The server answered but refused our key.
    #[error("{addr} refused the control plane's key for user {user}")]
    AuthRefused { addr: SocketAddr, user: String },
    /// A command or transfer failed.
    #[error("{0}")]
    Remote(String),
}

/// How to reach VMs: user, private key, timeouts.
#[derive(Clone)]
pub struct SshAccess {
    pub user: String,
    /// The control plane's private key (OpenSSH format, no passphrase). Never logged.
    pub key_file: std::path::PathBuf,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for SshAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshAccess")
            .field("user", &self.user)
            .field("key_file", &self.key_file)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The server's host key: its OpenSSH fingerprint (`SHA256:…`) and the key itself.
#[derive(Debug, Clone)]
pub struct HostKey {
    pub fingerprint: String,
    key: PublicKey,
}

/// Reads the host key `addr` presents, without logging in.
pub async fn host_key(addr: SocketAddr, timeout: Duration) -> Result<HostKey, SessionError> {
    let seen = Arc::new(Mutex::new(None));
    let handler = KeyCatcher(seen.clone());
    let config = Arc::new(russh::client::Config::default());
    let unreachable = |reason: String| SessionError::Unreachable { addr, reason };
    // The catcher refuses every key, so the handshake ends with an error once it has one.
    let connect = russh::client::connect(config, addr, handler);
    if tokio::time::timeout(timeout, connect).await.is_err() {
        return Err(unreachable(format!(
            "no answer within {} s",
            timeout.as_secs()
        )));
    }
    let key = seen
        .lock()
        .map_err(|_| unreachable("host key lost".into()))?
        .take();
    match key {
        Some(key) => Ok(HostKey {
            fingerprint: fingerprint(&key),
            key,
        }),
        None => {
            // Ask again to report why: the TCP connection or the SSH handshake failed.
            let reason = match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => "no SSH host key received".to_string(),
                Err(e) => e.to_string(),
            };
            Err(unreachable(reason))
        }
    }
}

/// The OpenSSH SHA-256 fingerprint of `key` (`SHA256:` and unpadded base64).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

struct KeyCatcher(Arc<Mutex<Option<PublicKey>>>);

impl russh::client::Handler for KeyCatcher {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKey) -> Result<bool, Self::Error> {
        if let Ok(mut seen) = self.0.lock() {
            *seen = Some(key.clone());
        }
        Ok(false)
    }
}

/// A logged-in session.
pub struct Session {
    client: Client,
    addr: SocketAddr,
}

impl Session {
    /// Connects to `addr`, refusing it unless its host key has the fingerprint `pinned`
    /// (when given), and logs in.
    pub async fn open(
        addr: SocketAddr,
        access: &SshAccess,
        pinned: Option<&str>,
    ) -> Result<(Self, HostKey), SessionError> {
        let key = host_key(addr, access.connect_timeout).await?;
        if let Some(pinned) = pinned
            && pinned != key.fingerprint
        {
            return Err(SessionError::HostKeyChanged {
                pinned: pinned.to_string(),
                presented: key.fingerprint,
            });
        }
        let openssh = key
            .key
            .to_openssh()
            .map_err(|e| SessionError::Remote(format!("encoding the host key: {e}")))?;
        let base64 = openssh.split_whitespace().nth(1).unwrap_or_default();
        let config = russh::client::Config {
            // A VM that vanishes without closing the connection is noticed within a minute.
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 3,
            ..Default::default()
        };
        let connect = Client::connect_with_config(
            addr,
            &access.user,
            AuthMethod::with_key_file(&access.key_file, None),
            ServerCheckMethod::with_public_key(base64),
            config,
        );
        let client = match tokio::time::timeout(access.connect_timeout, connect).await {
            Err(_) => {
                return Err(SessionError::Unreachable {
                    addr,
                    reason: "login timed out".into(),
                });
            }
            Ok(Ok(c)) => c,
            Ok(Err(async_ssh2_tokio::Error::KeyAuthFailed)) => {
                return Err(SessionError::AuthRefused {
                    addr,
                    user: access.user.clone(),
                });
            }
            Ok(Err(async_ssh2_tokio::Error::KeyInvalid(e))) => {
                return Err(SessionError::Remote(format!(
                    "the SSH private key cannot be used: {e}"
                )));
            }
            Ok(Err(async_ssh2_tokio::Error::SshError(russh::Error::UnknownKey))) => {
                return Err(SessionError::HostKeyChanged {
                    pinned: key.fingerprint.clone(),
                    presented: "another key, presented on login".into(),
                });
            }
            Ok(Err(e)) => {
                return Err(SessionError::Unreachable {
                    addr,
                    reason: e.to_string(),
                });
            }
        };
        Ok((Self { client, addr }, key))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs `command`, collecting its output; an exit status other than 0 is an error.
    pub async fn run(&self, command: &str) -> Result<String, SessionError> {
        let result = self
            .client
            .execute(command)
            .await
            .map_err(|e| self.lost(e))?;
        if result.exit_status != 0 {
            return Err(SessionError::Remote(format!(
                "exit status {}: {}",
                result.exit_status,
                result.stderr.trim()
            )));
        }
        Ok(result.stdout)
    }

    /// Writes `content` to `path` on the VM with `mode`, through the command's standard input
    /// (so it is in no command line and no script), atomically (a temporary file renamed).
    pub async fn write_file(
        &self,
        path: &str,
        mode: u32,
        content: &[u8],
    ) -> Result<(), SessionError> {
        let quoted = super::script::shell_quote(path);
        let tmp = super::script::shell_quote(&format!("{path}.tmp"));
        let command = format!(
            "umask 077 && mkdir -p \"$(dirname {quoted})\" && cat > {tmp} && chmod {mode:o} {tmp} && mv -f {tmp} {quoted}"
        );
        let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(8);
        let (err_tx, mut err_rx) = mpsc::channel::<Vec<u8>>(8);
        let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(2);
        // The sender stays alive until the command ends: a closed stdin channel would make
        // the library spin on it.
        let feed = async {
            if !content.is_empty() {
                let _ = in_tx.send(content.to_vec()).await;
            }
            let _ = in_tx.send(Vec::new()).await;
        };
        let exec = self
            .client
            .execute_io(&command, out_tx, Some(err_tx), Some(in_rx), false, None);
        let drain = async {
            let mut stderr = Vec::new();
            loop {
                tokio::select! {
                    Some(_) = out_rx.recv() => {}
                    Some(e) = err_rx.recv() => stderr.extend(e),
                    else => break,
                }
            }
            stderr
        };
        let (status, (), stderr) = tokio::join!(exec, feed, drain);
        drop(in_tx);
        match status.map_err(|e| self.lost(e))? {
            0 => Ok(()),
            code => Err(SessionError::Remote(format!(
                "writing {path}: exit status {code}: {}",
                String::from_utf8_lossy(&stderr).trim()
            ))),
        }
    }

    /// Uploads the local file `from` to `to` over SFTP.
    pub async fn upload(&self, from: &Path, to: &str) -> Result<(), SessionError> {
        let from = from.display().to_string();
        self.client
            .upload_file(from.as_str(), to, Some(60), Some(256 * 1024), false)
            .await
            .map_err(|e| SessionError::Remote(format!("uploading {from} to {to}: {e}")))
    }

    /// Starts `command`, its output streamed to `stdout` and `stderr` as it comes; the future
    /// ends with the exit status.
    pub async fn stream(
        &self,
        command: &str,
        stdout: mpsc::Sender<Vec<u8>>,
        stderr: mpsc::Sender<Vec<u8>>,
    ) -> Result<u32, SessionError> {
        self.client
            .execute_io(command, stdout, Some(stderr), None, false, None)
            .await
            .map_err(|e| self.lost(e))
    }

    pub async fn close(&self) {
        let _ = self.client.disconnect().await;
    }

    fn lost(&self, e: async_ssh2_tokio::Error) -> SessionError {
        let reason = match e {
            async_ssh2_tokio::Error::CommandDidntExit => {
                "the connection closed before the command ended".to_string()
            }
            other => other.to_string(),
        };
        SessionError::Unreachable {
            addr: self.addr,
            reason,
        }
    }
}
