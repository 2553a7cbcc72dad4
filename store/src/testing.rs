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
        let name = format!("test_{}", Uuid::new_v4().simple());
        let admin = crate::connect(&admin_url, 1)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"));
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
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(admin) = crate::connect(&admin_url, 1).await {
                        let _ =
                            sqlx::query(&format!("drop database if exists {name} with (force)"))
                                .execute(&admin)
                                .await;
                    }
                });
            }
        })
        .join();
    }
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
