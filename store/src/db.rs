use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// The schema, embedded from `migrations/` at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Opens a pool on `url`, waiting up to 10 s for a connection.
///
/// Connections are not pinged on every acquire (a round trip per command): a connection that
/// died fails its next query, which sqlx then drops from the pool.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .connect(url)
        .await
}

/// Number of embedded migrations not yet applied to the database (for `/readyz`).
pub async fn migrations_pending(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let applied: Vec<i64> = match sqlx::query_scalar(
        "select version from _sqlx_migrations where success order by version",
    )
    .fetch_all(pool)
    .await
    {
        Ok(v) => v,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count())
}
