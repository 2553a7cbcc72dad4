//! A fresh, migrated database per test, on a real PostgreSQL.
//!
//! Uses the server named by `DATABASE_URL` when set; otherwise a private cluster started from
//! the installed PostgreSQL binaries in `$TMPDIR/inferplane-test-pg-<uid>` (shared by all test
//! processes through a file lock, reused across runs; `just test-pg-stop` stops it).

use std::sync::OnceLock;

use sqlx::PgPool;
use uuid::Uuid;

use crate::cluster::{ClusterOptions, EmbeddedPostgres};

/// A database created for one test and dropped when the test ends.
pub struct TestDatabase {
    pub pool: PgPool,
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates the database and applies every migration.
    pub async fn new() -> Self {
        let admin_url = admin_url();
        // The creation time in the name lets a later run drop what this one leaves behind.
        let name = format!("{PREFIX}{}_{}", unix_secs(), Uuid::new_v4().simple());
        let admin = crate::connect(&admin_url, 1)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"));
        sweep_once(&admin).await;
        sqlx::query(&format!("create database {name}"))
            .execute(&admin)
            .await
            .expect("create the test database");
        admin.close().await;
        let url = with_database(&admin_url, &name);
        let pool = crate::connect(&url, 20)
            .await
            .expect("connect to the test database");
        crate::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate the test database");
        Self {
            pool,
            url,
            name,
            admin_url,
        }
    }

    /// Another pool on the same database, as a second process would have.
    pub async fn second_pool(&self, max_connections: u32) -> PgPool {
        crate::connect(&self.url, max_connections)
            .await
            .expect("connect")
    }
}

impl Drop for TestDatabase {
    /// Drops the database from another thread, waiting for it at most 2 s. Waiting longer
    /// would freeze the test's runtime while its background tasks may be half-way through
    /// opening a connection, and `drop database ... with (force)` would then wait for that
    /// connection until the server's authentication timeout (60 s). Whatever a finished
    /// process did not get to drop, a later run sweeps (see `sweep_once`).
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let (done, finished) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(admin) = crate::connect(&admin_url, 1).await {
                        drop_database(&admin, &name).await;
                    }
                });
            }
            let _ = done.send(());
        });
        // Usually done in well under a second; never wait long enough to deadlock.
        let _ = finished.recv_timeout(std::time::Duration::from_secs(2));
    }
}

async fn drop_database(admin: &PgPool, name: &str) {
    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(admin)
        .await;
}

/// Prefix of every database this harness creates (and the only ones it ever drops).
const PREFIX: &str = "inferplane_test_";

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Once per process: drops test databases created more than ten minutes ago (left behind by
/// processes that ended before their detached drop finished).
async fn sweep_once(admin: &PgPool) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let names: Vec<String> = sqlx::query_scalar(
                "select datname from pg_database where starts_with(datname, $1)",
            )
            .bind(PREFIX)
            .fetch_all(admin)
            .await
            .unwrap_or_default();
            let cutoff = unix_secs().saturating_sub(600);
            for name in names {
                // Only names this harness makes: `<prefix><seconds>_<32 hex digits>`.
                let Some((secs, id)) = name[PREFIX.len()..].split_once('_') else {
                    continue;
                };
                let ours = id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit());
                if ours && secs.parse::<u64>().is_ok_and(|t| t < cutoff) {
                    drop_database(admin, &name).await;
                }
            }
        })
        .await;
}

fn admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            return url;
        }
        let uid = nix::unistd::geteuid();
        let data_dir = std::env::var_os("INFERPLANE_TEST_PG_DIR")
            .map(Into::into)
            .unwrap_or_else(|| std::env::temp_dir().join(format!("inferplane-test-pg-{uid}")));
        let cluster = crate::cluster::start_blocking(ClusterOptions {
            data_dir,
            port: None,
            bin_dir: None,
        })
        .unwrap_or_else(|e| panic!("cannot start the private test cluster: {e}"));
        let url = cluster.database_url("postgres");
        // The cluster outlives this process on purpose: the next test process reuses it.
        std::mem::forget::<EmbeddedPostgres>(cluster);
        url
    })
    .clone()
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}
