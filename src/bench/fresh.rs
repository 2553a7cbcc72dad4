//! A fresh, migrated database per benchmark, and a real server on it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use inferplane_api::{OperatorToken, Server, Settings};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

/// A database `bench_<uuid>` in the server of the admin pool; [`drop`](Self::drop) removes it.
pub struct FreshDb {
    name: String,
    admin: PgPool,
    /// A pool on the fresh database.
    pub pool: PgPool,
}

impl FreshDb {
    /// Creates the database and applies every migration.
    pub async fn create(admin: &PgPool, max_connections: u32) -> anyhow::Result<Self> {
        let name = format!("bench_{}", Uuid::new_v4().simple());
        sqlx::query(&format!("create database {name}"))
            .execute(admin)
            .await
            .with_context(|| format!("creating the database {name}"))?;
        let pool = match connect(admin, &name, max_connections).await {
            Ok(pool) => pool,
            Err(e) => {
                drop_database(admin, &name).await;
                return Err(e);
            }
        };
        let db = Self {
            name,
            admin: admin.clone(),
            pool,
        };
        if let Err(e) = inferplane_store::MIGRATOR.run(&db.pool).await {
            db.drop().await;
            return Err(anyhow::Error::new(e).context("migrating the bench database"));
        }
        Ok(db)
    }

    /// Another pool on the fresh database, of at most `max_connections`, configured like
    /// `inferplane_store::connect` (no ping when a connection is acquired).
    pub async fn pool(&self, max_connections: u32) -> anyhow::Result<PgPool> {
        connect(&self.admin, &self.name, max_connections).await
    }

    /// A pool for raw baselines: the same settings, kept apart from the product's pools.
    pub async fn raw_pool(&self, max_connections: u32) -> anyhow::Result<PgPool> {
        connect(&self.admin, &self.name, max_connections).await
    }

    /// Closes the pool and drops the database, disconnecting whatever still uses it.
    pub async fn drop(self) {
        self.pool.close().await;
        drop_database(&self.admin, &self.name).await;
    }
}

async fn connect(admin: &PgPool, name: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = admin.connect_options().as_ref().clone().database(name);
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to {name}"))
}

async fn drop_database(admin: &PgPool, name: &str) {
    let dropped = sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(admin)
        .await;
    if let Err(e) = dropped {
        eprintln!("bench: could not drop the database {name}: {e}");
    }
}

/// A server process's parts, started in this process on 127.0.0.1 with a random token.
pub struct TestServer {
    pub server: Server,
    pub addr: SocketAddr,
    pub token: String,
    pool: PgPool,
}

impl TestServer {
    /// Stops the server (its stream clients are disconnected) and closes its pool.
    pub async fn stop(self) {
        self.server.shutdown().await;
        self.pool.close().await;
    }
}

/// Starts the whole server (`inferplane_api::start`, default settings: projections run too)
/// on a free port with a listen backlog large enough for connection bursts.
pub async fn start_server(pool: PgPool) -> anyhow::Result<TestServer> {
    start_server_with(pool, Settings::default()).await
}

/// [`start_server`] with these settings.
pub async fn start_server_with(pool: PgPool, settings: Settings) -> anyhow::Result<TestServer> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let listener = socket.listen(4096)?;
    let token = Uuid::new_v4().simple().to_string();
    let server =
        inferplane_api::start(pool.clone(), listener, OperatorToken::new(&token), settings).await?;
    Ok(TestServer {
        addr: server.addr,
        server,
        token,
        pool,
    })
}
