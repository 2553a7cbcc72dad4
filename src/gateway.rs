//! Flags of the `/v1` gateway (each with its `INFERPLANE_GATEWAY_*` environment twin).

use std::time::Duration;

use inferplane_gateway::GatewaySettings;

#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Largest request body accepted on /v1, in bytes.
    #[arg(long, env = "INFERPLANE_GATEWAY_BODY_LIMIT_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub gateway_body_limit_bytes: usize,
    /// Workers tried for one request before answering 502/504 (only while nothing was sent).
    #[arg(long, env = "INFERPLANE_GATEWAY_MAX_ATTEMPTS", default_value_t = 3)]
    pub gateway_max_attempts: u32,
    /// How long a worker that failed (connection refused, 5xx) is skipped, in milliseconds.
    #[arg(long, env = "INFERPLANE_GATEWAY_COOLDOWN_MS", default_value_t = 5000)]
    pub gateway_cooldown_ms: u64,
    /// Connect timeout to a worker, in milliseconds.
    #[arg(
        long,
        env = "INFERPLANE_GATEWAY_CONNECT_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub gateway_connect_timeout_ms: u64,
    /// Longest wait for a worker's answer to start, and between two chunks of a stream, in
    /// seconds.
    #[arg(
        long,
        env = "INFERPLANE_GATEWAY_UPSTREAM_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub gateway_upstream_timeout_secs: u64,
    /// Header whose value keeps a session on one worker.
    #[arg(
        long,
        env = "INFERPLANE_GATEWAY_SESSION_HEADER",
        default_value = "x-session-id"
    )]
    pub gateway_session_header: String,
    /// Usage records are appended at least this often, in milliseconds (the most a hard crash
    /// can lose).
    #[arg(
        long,
        env = "INFERPLANE_GATEWAY_USAGE_FLUSH_MS",
        default_value_t = 1000
    )]
    pub gateway_usage_flush_ms: u64,
    /// ...or as soon as this many records wait.
    #[arg(
        long,
        env = "INFERPLANE_GATEWAY_USAGE_FLUSH_RECORDS",
        default_value_t = 1000
    )]
    pub gateway_usage_flush_records: usize,
    /// How often worker queue depths and key budgets are re-read, in milliseconds.
    #[arg(long, env = "INFERPLANE_GATEWAY_REFRESH_MS", default_value_t = 500)]
    pub gateway_refresh_ms: u64,
}

impl GatewayArgs {
    pub fn settings(&self, engine_port: u16) -> Result<GatewaySettings, crate::ConfigError> {
        let session_header = axum_header(&self.gateway_session_header)?;
        Ok(GatewaySettings {
            body_limit_bytes: self.gateway_body_limit_bytes.max(1024),
            max_attempts: self.gateway_max_attempts.clamp(1, 10),
            cooldown: Duration::from_millis(self.gateway_cooldown_ms),
            connect_timeout: Duration::from_millis(self.gateway_connect_timeout_ms.max(1)),
            upstream_timeout: Duration::from_secs(self.gateway_upstream_timeout_secs.max(1)),
            engine_port,
            session_header,
            flush_interval: Duration::from_millis(self.gateway_usage_flush_ms.max(10)),
            flush_records: self.gateway_usage_flush_records.max(1),
            refresh_interval: Duration::from_millis(self.gateway_refresh_ms.max(50)),
        })
    }
}

fn axum_header(name: &str) -> Result<axum::http::HeaderName, crate::ConfigError> {
    axum::http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).map_err(|_| {
        crate::ConfigError(format!(
            "--gateway-session-header: {name:?} is not a valid header name"
        ))
    })
}
