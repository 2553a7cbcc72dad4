//! A real OpenSSH server on loopback, started and stopped by the test: its own host key,
//! client key, config, port, pid file and log in a temporary folder.
//!
//! Without `/usr/sbin/sshd` the SSH tests are skipped with a message, except under `CI`,
//! where a missing sshd fails them (`.ci/run` installs `openssh-server`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SSHD: &str = "/usr/sbin/sshd";

/// The keys of a test server, kept across restarts (a restarted VM keeps its host key).
pub struct SshdKeys {
    pub dir: tempfile::TempDir,
}

impl SshdKeys {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["host_ed25519", "client_ed25519"] {
            keygen(&dir.path().join(name));
        }
        std::fs::copy(
            dir.path().join("client_ed25519.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        Self { dir }
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// The host key's fingerprint as `ssh-keygen -l -E sha256` prints it.
    pub fn host_fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(self.dir.path().join("host_ed25519.pub"))
            .output()
            .expect("ssh-keygen -l");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
            .to_string()
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "inferplane-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// A running sshd; stopped (with its sessions) on drop.
pub struct Sshd {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: PathBuf,
    _run_dir: tempfile::TempDir,
}

/// Whether sshd can run here; `false` (with a message) means skip the test.
pub fn available() -> bool {
    if Path::new(SSHD).exists() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "{SSHD} is missing and CI is set: install openssh-server (see .ci/run)"
    );
    eprintln!("skipping: {SSHD} is not installed (apt-get install openssh-server)");
    false
}

/// The user the tests log in as: whoever runs them.
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// True when `addr` answers with an SSH identification line (so it is an sshd, not another
/// listener that took the port).
async fn ssh_banner(addr: SocketAddr) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let mut banner = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut banner)).await,
        Ok(Ok(_)) if &banner == b"SSH-"
    )
}

impl Sshd {
    /// Starts sshd with `keys` on a free loopback port.
    ///
    /// The port is found free, released, then given to sshd: something else in the process
    /// (another test's listener) can take it in between, and sshd then exits. So it counts as
    /// started only once the port answers with an SSH banner and sshd still runs, and it is
    /// tried again on another port otherwise.
    pub async fn start(keys: &SshdKeys) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            match Self::try_start_on(keys, port).await {
                Ok(sshd) => return sshd,
                Err(why) => last = why,
            }
        }
        panic!("sshd did not start: {last}");
    }

    /// Starts sshd with `keys` on `port` (a restart: same port, same host key).
    pub async fn start_on(keys: &SshdKeys, port: u16) -> Self {
        match Self::try_start_on(keys, port).await {
            Ok(sshd) => sshd,
            Err(why) => panic!("{why}"),
        }
    }

    async fn try_start_on(keys: &SshdKeys, port: u16) -> Result<Self, String> {
        let _ = std::fs::create_dir_all("/run/sshd");
        let run_dir = tempfile::tempdir().expect("temp dir");
        let k = keys.dir.path();
        let config = run_dir.path().join("sshd_config");
        let log = run_dir.path().join("sshd.log");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {auth}\n\
                 PidFile {pid}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
                host = k.join("host_ed25519").display(),
                auth = k.join("authorized_keys").display(),
                pid = run_dir.path().join("sshd.pid").display(),
            ),
        )
        .expect("sshd_config");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let sshd = Self {
            child: Some(child),
            addr,
            log,
            _run_dir: run_dir,
        };
        let mut sshd = sshd;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(Ok(Some(status))) = sshd.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("sshd on {addr} exited ({status}): {}", sshd.log()));
            }
            if ssh_banner(addr).await {
                return Ok(sshd);
            }
            if tokio::time::Instant::now() >= deadline {
                sshd.kill();
                return Err(format!("sshd did not answer on {addr}: {}", sshd.log()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the daemon and every session it serves, as a VM that goes away mid-phase.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        // The sessions first (children of the daemon), then the daemon.
        for session in children(child.id()) {
            let _ = Command::new("kill")
                .args(["-TERM", &session.to_string()])
                .status();
        }
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = child.wait();
    }
}

/// Pids of the processes whose parent is `pid` (from `/proc`, no tool needed).
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            // `/proc/<p>/stat`: "pid (comm) state ppid ..."; comm may hold spaces.
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1;
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}
