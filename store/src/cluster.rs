//! A private PostgreSQL cluster started from the server binaries installed on the machine, so
//! that `demo` and the test-suite work where no database server runs.
//!
//! The cluster outlives the process on purpose (parallel test binaries and later runs reuse
//! it); call [`EmbeddedPostgres::stop`] to shut it down.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{User, geteuid};
use rand::Rng;

/// The cluster's superuser.
const SUPERUSER: &str = "inferplane";
/// How long pg_ctl waits for the server to start or stop, in seconds.
const WAIT_SECS: &str = "60";

/// Where and how to run the private cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Folder of the cluster's data (created when missing; reused when it holds a cluster).
    pub data_dir: PathBuf,
    /// TCP port on 127.0.0.1; None picks a free one.
    pub port: Option<u16>,
    /// Folder of initdb/pg_ctl; None searches for them.
    pub bin_dir: Option<PathBuf>,
}

/// Why the private cluster could not be found, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No folder with initdb and pg_ctl was found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found{searched}; install them, for example `apt-get install postgresql` on Debian, or point INFERPLANE_PG_BIN at their folder"
    )]
    BinariesNotFound { searched: String },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// initdb or pg_ctl failed; `detail` is the tail of its output and of the server log.
    #[error("`{command}` failed: {detail}")]
    CommandFailed { command: String, detail: String },
    /// pg_ctl gave up waiting for the server to start or stop.
    #[error("`{command}` did not finish within {WAIT_SECS}s; see {}", .log.display())]
    Timeout { command: String, log: PathBuf },
    /// This process is root, and there is no other user to run PostgreSQL as.
    #[error("PostgreSQL refuses root, and no `postgres` or `nobody` user exists to run it")]
    NoUnprivilegedUser,
    /// The folder holds a cluster whose superuser password was lost.
    #[error("{} holds a PostgreSQL cluster without its `password` file; delete the folder to start afresh", .0.display())]
    MissingPassword(PathBuf),
}

fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// Runs the cluster's commands; cheap to clone into blocking tasks.
#[derive(Debug, Clone)]
struct Ctl {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    /// Name, uid and gid of the user PostgreSQL runs as when this process is root.
    run_as: Option<(String, u32, u32)>,
}

/// A running private PostgreSQL cluster on 127.0.0.1.
pub struct EmbeddedPostgres {
    ctl: Ctl,
    port: u16,
    password: String,
    started_here: bool,
}

impl std::fmt::Debug for EmbeddedPostgres {
    // Written by hand so that the password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EmbeddedPostgres({}, port {})",
            self.ctl.data_dir.display(),
            self.port
        )
    }
}

impl EmbeddedPostgres {
    /// Finds the folder holding initdb and pg_ctl: `explicit` if given, else the env var INFERPLANE_PG_BIN, else `pg_config --bindir` if pg_config is on PATH, else the highest version under /usr/lib/postgresql/*/bin, else PATH.
    pub fn find_bin_dir(explicit: Option<&Path>) -> Result<PathBuf, ClusterError> {
        let not_found = |searched| ClusterError::BinariesNotFound { searched };
        let env = std::env::var_os("INFERPLANE_PG_BIN").filter(|v| !v.is_empty());
        // A folder the user named is authoritative: searching on would hide their mistake.
        if let Some(dir) = explicit.map(PathBuf::from).or(env.map(PathBuf::from)) {
            let searched = format!(" in {}", dir.display());
            return has_server_bins(&dir)
                .then_some(dir)
                .ok_or_else(|| not_found(searched));
        }
        let pg_config = path_dirs()
            .into_iter()
            .map(|d| d.join("pg_config"))
            .find(|p| is_executable(p));
        let configured = pg_config.and_then(|pg_config| {
            let out = Command::new(pg_config)
                .arg("--bindir")
                .stdin(Stdio::null())
                .output()
                .ok()?;
            Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        });
        // Debian and Ubuntu keep each major version apart, off PATH.
        let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let version = name
                    .split('.')
                    .map(|n| n.parse().ok())
                    .collect::<Option<_>>()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        versions.sort();
        let newest_first = versions.into_iter().rev().map(|(_, dir)| dir);
        configured
            .into_iter()
            .chain(newest_first)
            .chain(path_dirs())
            .find(|d| has_server_bins(d))
            .ok_or_else(|| {
                not_found(
                    " (looked at pg_config --bindir, /usr/lib/postgresql/*/bin and PATH)".into(),
                )
            })
    }

    /// Initialises the cluster if the data dir has none (superuser `inferplane`, scram-sha-256
    /// with a random password kept in `<data_dir>/password`), then starts it on 127.0.0.1 only,
    /// without unix sockets, logging to `<data_dir>/postgres.log`. A cluster already running in
    /// this data dir is reused; a stale postmaster.pid left by a crash is handled by pg_ctl.
    pub async fn start(options: ClusterOptions) -> Result<Self, ClusterError> {
        blocking(move || start_blocking(options)).await
    }

    /// True when this call started the cluster; false when it reused one already running
    /// (which belongs to whoever started it and should be left running).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// The TCP port the cluster listens on at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of a database in the cluster, `postgres://inferplane:<pw>@127.0.0.1:<port>/<db>`
    /// (the password is alphanumeric, so it needs no percent-encoding).
    pub fn database_url(&self, database: &str) -> String {
        let (password, port) = (&self.password, self.port);
        format!("postgres://{SUPERUSER}:{password}@127.0.0.1:{port}/{database}")
    }

    /// Stops the cluster (`pg_ctl stop -m fast -w`); stopping a stopped cluster is fine.
    pub async fn stop(&self) -> Result<(), ClusterError> {
        let ctl = self.ctl.clone();
        blocking(move || ctl.stop()).await
    }

    /// [`EmbeddedPostgres::stop`] for synchronous code.
    pub fn stop_blocking(&self) -> Result<(), ClusterError> {
        self.ctl.stop()
    }
}

/// [`EmbeddedPostgres::start`] for synchronous code (no tokio). Several processes may call it
/// on one data dir at once: a lock on the sibling file `<data_dir>.lock` lets exactly one
/// initialise and start the cluster while the others wait, then reuse it.
pub fn start_blocking(options: ClusterOptions) -> Result<EmbeddedPostgres, ClusterError> {
    let bin_dir = EmbeddedPostgres::find_bin_dir(options.bin_dir.as_deref())?;
    let data_dir = std::path::absolute(&options.data_dir).map_err(io_ctx("resolving data_dir"))?;
    let run_as = run_as()?;
    let ctl = Ctl {
        bin_dir,
        data_dir,
        run_as,
    };
    if let Some(parent) = ctl.data_dir.parent() {
        fs::create_dir_all(parent).map_err(io_ctx(format!("creating {}", parent.display())))?;
    }
    let _lock = ctl.lock()?;
    let (port, started_here) = match ctl.running_port() {
        Some(port) => {
            tracing::info!("PostgreSQL listening on 127.0.0.1:{port} (already running)");
            (port, false)
        }
        None => {
            ctl.init_if_needed()?;
            (ctl.start_server(options.port)?, true)
        }
    };
    let path = ctl.data_dir.join("password");
    let password = match fs::read_to_string(&path) {
        Ok(password) => password.trim().to_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ClusterError::MissingPassword(ctl.data_dir));
        }
        Err(e) => return Err(io_ctx(format!("reading {}", path.display()))(e)),
    };
    Ok(EmbeddedPostgres {
        ctl,
        port,
        password,
        started_here,
    })
}

impl Ctl {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        // "/" because the unprivileged user may not be allowed into our working directory.
        cmd.current_dir("/").stdin(Stdio::null());
        if let Some((_, uid, gid)) = &self.run_as {
            cmd.uid(*uid).gid(*gid);
        }
        cmd
    }

    fn pg_ctl(&self, action: &str) -> Command {
        let mut cmd = self.command("pg_ctl");
        cmd.args([action, "-w", "-t", WAIT_SECS, "-D"])
            .arg(&self.data_dir);
        cmd
    }

    fn chown(&self, path: &Path) -> Result<(), ClusterError> {
        let Some((_, uid, gid)) = &self.run_as else {
            return Ok(());
        };
        std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
            .map_err(io_ctx(format!("chown {}", path.display())))
    }

    fn lock(&self) -> Result<Flock<File>, ClusterError> {
        let path = sibling(&self.data_dir, "lock");
        let mut open = OpenOptions::new();
        let file = open.create(true).truncate(false).write(true).open(&path);
        let file = file.map_err(io_ctx(format!("opening {}", path.display())))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_ctx(format!("locking {}", path.display()))(errno.into()))
    }

    /// The port of the server running in the data dir, if one runs and answers: a live pid
    /// alone is no proof, as after a crash the pid may belong to another process.
    fn running_port(&self) -> Option<u16> {
        let pid_file = fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        if !self.is_running() {
            return None;
        }
        // Line 4 of postmaster.pid is the port, written by the server itself.
        let port = pid_file.lines().nth(3)?.trim().parse().ok()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(port)
    }

    /// `pg_ctl status` succeeds when the pid in postmaster.pid is alive.
    fn is_running(&self) -> bool {
        let mut status = self.command("pg_ctl");
        status.args(["status", "-D"]).arg(&self.data_dir);
        status
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn init_if_needed(&self) -> Result<(), ClusterError> {
        // The password waits beside the data dir (initdb wants an empty folder) and moves in
        // once initdb succeeded, so a crash in between still leaves it recoverable.
        let pending = sibling(&self.data_dir, "pwfile");
        if !self.data_dir.join("PG_VERSION").exists() {
            tracing::info!(
                "initialising PostgreSQL cluster in {}",
                self.data_dir.display()
            );
            let mut dir = DirBuilder::new();
            let created = dir.recursive(true).mode(0o700).create(&self.data_dir);
            created.map_err(io_ctx(format!("creating {}", self.data_dir.display())))?;
            self.chown(&self.data_dir)?;
            let mut rng = rand::rng();
            let password: String = (0..32)
                .map(|_| char::from(rng.sample(rand::distr::Alphanumeric)))
                .collect();
            let _ = fs::remove_file(&pending); // so that mode 0600 applies to a new file
            let mut open = OpenOptions::new();
            let file = open.write(true).create_new(true).mode(0o600).open(&pending);
            file.and_then(|mut f| f.write_all(password.as_bytes()))
                .map_err(io_ctx(format!("writing {}", pending.display())))?;
            self.chown(&pending)?;
            let mut initdb = self.command("initdb");
            initdb
                .arg("-D")
                .arg(&self.data_dir)
                .arg(format!("--username={SUPERUSER}"));
            initdb.arg(format!("--pwfile={}", pending.display()));
            initdb.args([
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]);
            if let Err(e) = self.run(initdb, "initdb") {
                let _ = fs::remove_file(&pending);
                return Err(e);
            }
        }
        let password = self.data_dir.join("password");
        if password.exists() {
            return Ok(());
        }
        if !pending.exists() {
            return Err(ClusterError::MissingPassword(self.data_dir.clone()));
        }
        fs::rename(&pending, &password).map_err(io_ctx(format!("moving {}", pending.display())))
    }

    /// Starts the server on `wanted`, else on the last port if still free, else on a free one.
    fn start_server(&self, wanted: Option<u16>) -> Result<u16, ClusterError> {
        let log = self.data_dir.join("postgres.log");
        // The server's user appends to the log through pg_ctl's shell, so it must own it.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log);
        file.map_err(io_ctx(format!("creating {}", log.display())))?;
        self.chown(&self.data_dir)?;
        self.chown(&log)?;
        let port_file = self.data_dir.join("port");
        let mut last = fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let mut retries = 2;
        let port = loop {
            let port = match wanted {
                Some(port) => port,
                None => free_port(last.take())?,
            };
            let mut start = self.pg_ctl("start");
            // pg_ctl hands -o to /bin/sh, which turns '' into the empty string. Parallel test
            // processes each hold a pool, so allow more than the default 100 connections.
            let settings = format!(
                "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' \
                 -c max_connections=300"
            );
            start.arg("-l").arg(&log).arg("-o").arg(settings);
            match self.run(start, "pg_ctl start") {
                // A port found free may be taken before postgres binds it: then try another.
                Err(e)
                    if wanted.is_none()
                        && retries > 0
                        && e.to_string().contains("already in use") =>
                {
                    retries -= 1;
                }
                result => break result.map(|()| port)?,
            }
        };
        fs::write(&port_file, port.to_string())
            .map_err(io_ctx(format!("writing {}", port_file.display())))?;
        tracing::info!("PostgreSQL listening on 127.0.0.1:{port}");
        Ok(port)
    }

    fn stop(&self) -> Result<(), ClusterError> {
        let _lock = self.lock()?;
        if !self.data_dir.join("postmaster.pid").exists() || !self.is_running() {
            return Ok(());
        }
        let mut stop = self.pg_ctl("stop");
        stop.args(["-m", "fast"]);
        self.run(stop, "pg_ctl stop")
    }

    /// Runs a command; a failure carries the tail of its output and of the server log.
    fn run(&self, mut cmd: Command, what: &str) -> Result<(), ClusterError> {
        let out = cmd.output().map_err(io_ctx(format!("running {what}")))?;
        if out.status.success() {
            return Ok(());
        }
        let log = self.data_dir.join("postgres.log");
        let text = if out.stderr.is_empty() {
            out.stdout
        } else {
            out.stderr
        };
        let printed = String::from_utf8_lossy(&text);
        if printed.contains("did not start in time") || printed.contains("does not shut down") {
            return Err(ClusterError::Timeout {
                command: what.into(),
                log,
            });
        }
        let mut detail = format!("{} ({})", tail(&printed), out.status);
        if let Some((user, ..)) = self.run_as.as_ref().filter(|_| printed.contains("denied")) {
            // The usual cause as root: a parent folder (a 0700 temp dir, say) shuts them out.
            detail += &format!(
                " (as root, PostgreSQL runs as `{user}`, who must be able to enter every parent folder of the data dir)"
            );
        }
        if let Ok(text) = fs::read_to_string(&log) {
            detail = format!("{detail}; {}: {}", log.display(), tail(&text));
        }
        Err(ClusterError::CommandFailed {
            command: what.into(),
            detail,
        })
    }
}

/// PostgreSQL refuses root, so as root it runs as `postgres`, else `nobody`.
fn run_as() -> Result<Option<(String, u32, u32)>, ClusterError> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    let user = ["postgres", "nobody"]
        .into_iter()
        .find_map(|name| User::from_name(name).ok()?);
    let user = user.ok_or(ClusterError::NoUnprivilegedUser)?;
    Ok(Some((user.name, user.uid.as_raw(), user.gid.as_raw())))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ClusterError> + Send + 'static,
) -> Result<T, ClusterError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(io_ctx("the PostgreSQL cluster task")(io::Error::other(e))),
    }
}

/// The last few non-empty lines, on one line for error messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

fn free_port(preferred: Option<u16>) -> Result<u16, ClusterError> {
    if let Some(port) = preferred.filter(|&p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
        return Ok(port);
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0));
    listener
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io_ctx("finding a free port"))
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn has_server_bins(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl"))
}
