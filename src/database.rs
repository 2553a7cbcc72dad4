//! Which database a command uses: `DATABASE_URL`, or the private cluster under the data dir.

use anyhow::Context;
use inferplane_store::cluster::{ClusterOptions, EmbeddedPostgres};
use sqlx::PgPool;

use crate::cli::DbArgs;

/// An open pool, and the private cluster behind it when this command started one.
pub struct Database {
    pub pool: PgPool,
    cluster: Option<EmbeddedPostgres>,
}

const DATABASE: &str = "inferplane";

impl Database {
    /// Connects to `DATABASE_URL`, or starts (or reuses) the private cluster and its
    /// `inferplane` database.
    pub async fn open(args: &DbArgs) -> anyhow::Result<Self> {
        inferplane_store::set_append_group_max(usize::from(args.append_group_max));
        if let Some(url) = args.database_url.as_deref().filter(|u| !u.is_empty()) {
            let pool = inferplane_store::connect(url, args.db_max_connections)
                .await
                .context("cannot connect to DATABASE_URL")?;
            return Ok(Self {
                pool,
                cluster: None,
            });
        }
        let cluster = EmbeddedPostgres::start(ClusterOptions {
            data_dir: args.data_dir.join("postgres"),
            port: None,
            bin_dir: args.pg_bin.clone(),
        })
        .await?;
        let admin = inferplane_store::connect(&cluster.database_url("postgres"), 1).await?;
        let exists: bool =
            sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
                .bind(DATABASE)
                .fetch_one(&admin)
                .await?;
        if !exists {
            sqlx::query(&format!("create database {DATABASE}"))
                .execute(&admin)
                .await?;
        }
        admin.close().await;
        let pool =
            inferplane_store::connect(&cluster.database_url(DATABASE), args.db_max_connections)
                .await?;
        Ok(Self {
            pool,
            cluster: Some(cluster),
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        inferplane_store::MIGRATOR
            .run(&self.pool)
            .await
            .context("applying migrations")
    }

    /// Closes the pool and, when `stop_cluster` is set and this command started the private
    /// cluster, stops it. A cluster another process started keeps running for that process.
    pub async fn close(self, stop_cluster: bool) -> anyhow::Result<()> {
        self.pool.close().await;
        if let Some(cluster) = self.cluster.filter(|c| stop_cluster && c.started_here()) {
            tracing::info!("stopping PostgreSQL");
            cluster.stop().await?;
        }
        Ok(())
    }

    /// Closes the pool and stops the private cluster, whoever started it.
    pub async fn stop_cluster(self) -> anyhow::Result<()> {
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            cluster.stop().await?;
        }
        Ok(())
    }

    pub fn is_private(&self) -> bool {
        self.cluster.is_some()
    }
}
