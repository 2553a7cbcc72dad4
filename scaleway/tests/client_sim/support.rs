//! Shared test setup: a simulator with a 10 ms step and a client pointed at it.
//! (Included by two test binaries, each using a part of it.)
#![allow(dead_code)]

use std::time::{Duration, Instant};

use inferplane_scaleway::sim::{SimConfig, SimHandle, Simulator};
use inferplane_scaleway::{
    CreateServerRequest, RetryPolicy, ScalewayClient, ScalewayConfig, SecretKey, Server,
    ServerState,
};

pub const ZONE: &str = "fr-par-2";
pub const PROJECT: &str = "6f2c7d52-3a8e-4b55-9d0e-2f1c0b7e9a11";
pub const KEY: &str = "scw-secret-0b1e7c4a-very-secret-value";
pub const STEP: Duration = Duration::from_millis(10);
pub const SLOW_STEP: Duration = Duration::from_millis(80);
pub const IMAGE: &str = "ubuntu_jammy_gpu_os_12";

pub struct Env {
    pub sim: SimHandle,
    pub client: ScalewayClient,
}

/// Fast retries for tests: 3 retries from 10 ms.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

pub fn sim_config() -> SimConfig {
    SimConfig::default()
        .with_step(STEP)
        .with_secret_key(SecretKey::new(KEY))
}

pub fn client_config(base_url: &str) -> ScalewayConfig {
    ScalewayConfig::new(SecretKey::new(KEY), PROJECT)
        .with_base_url(base_url)
        .with_default_zone(ZONE)
        .with_request_timeout(Duration::from_secs(5))
        .with_retry(fast_retry())
}

pub fn client_for(config: ScalewayConfig) -> ScalewayClient {
    match ScalewayClient::new(config) {
        Ok(client) => client,
        Err(e) => panic!("client must build: {e}"),
    }
}

pub async fn env_with(config: SimConfig) -> Env {
    let sim = match Simulator::start(config).await {
        Ok(sim) => sim,
        Err(e) => panic!("simulator must start: {e}"),
    };
    let client = client_for(client_config(sim.base_url()));
    Env { sim, client }
}

pub async fn env() -> Env {
    env_with(sim_config()).await
}

/// A slower simulator (80 ms steps) for tests that must observe an intermediate state right
/// after an action, even on a loaded machine.
pub async fn slow_env() -> Env {
    env_with(sim_config().with_step(SLOW_STEP)).await
}

pub fn gpu_request(name: &str, tag: &str) -> CreateServerRequest {
    CreateServerRequest::new(name, "L4-1-24G", IMAGE).tag(tag)
}

pub async fn create(env: &Env, name: &str, tag: &str) -> Server {
    match env
        .client
        .create_server(ZONE, &gpu_request(name, tag))
        .await
    {
        Ok(server) => server,
        Err(e) => panic!("create must succeed: {e}"),
    }
}

/// Polls until the server reaches `state`; returns it with every `state_detail` seen.
pub async fn wait_for(env: &Env, id: &str, state: ServerState) -> (Server, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut details: Vec<String> = Vec::new();
    loop {
        let server = match env.client.get_server(ZONE, id).await {
            Ok(server) => server,
            Err(e) => panic!("get_server while waiting for {state}: {e}"),
        };
        if details.last() != Some(&server.state_detail) {
            details.push(server.state_detail.clone());
        }
        if server.state == state {
            return (server, details);
        }
        assert!(
            Instant::now() < deadline,
            "server {id} never reached {state}; last {} / {}; seen {details:?}",
            server.state,
            server.state_detail
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Unwraps a result the test expects to succeed, with the error in the panic message.
pub fn ok<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// A plain HTTP client for raw requests (admin API, headers, malformed requests).
pub fn raw_http() -> reqwest::Client {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    match reqwest::Client::builder().build() {
        Ok(client) => client,
        Err(e) => panic!("reqwest client: {e}"),
    }
}
