//! Retry policy against injected faults: 429 with Retry-After, 5xx bursts, timeouts, and the
//! rule that creates are never retried once the provider may have acted.

use std::time::{Duration, Instant};

use inferplane_scaleway::sim::{BurstFault, Faults};
use inferplane_scaleway::{ListServersFilter, RetryPolicy, ScalewayConfig, ScalewayError};

use crate::support::*;

fn burst(status: u16, count: u32, operations: &[&str]) -> BurstFault {
    BurstFault {
        status,
        count,
        retry_after_secs: None,
        operations: operations.iter().map(|o| o.to_string()).collect(),
        after_handler: false,
    }
}

fn with_burst(burst: BurstFault) -> Faults {
    Faults {
        burst: Some(burst),
        ..Faults::default()
    }
}

#[tokio::test]
async fn rate_limit_is_retried_after_the_retry_after_delay() {
    let env = env().await;
    create(&env, "vm", "rl").await;
    let mut fault = burst(429, 1, &["list_servers"]);
    fault.retry_after_secs = Some(1);
    ok(env.sim.set_faults(with_burst(fault)), "faults");

    let started = Instant::now();
    let servers = ok(
        env.client
            .list_servers(ZONE, &ListServersFilter::tagged("rl"))
            .await,
        "list",
    );
    let waited = started.elapsed();
    assert_eq!(servers.len(), 1);
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After honoured: waited {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "and not much more: {waited:?}"
    );
    assert_eq!(env.sim.state().calls("list_servers"), 2);
}

#[tokio::test]
async fn rate_limit_exhausts_into_rate_limited() {
    let env = env().await;
    let mut fault = burst(429, 50, &["get_server"]);
    fault.retry_after_secs = Some(0);
    ok(env.sim.set_faults(with_burst(fault)), "faults");
    let err = env.client.get_server(ZONE, "any").await;
    assert!(
        matches!(
            &err,
            Err(ScalewayError::RateLimited {
                retry_after_secs: Some(0)
            })
        ),
        "{err:?}"
    );
    assert!(matches!(&err, Err(e) if e.is_retryable()));
    // One attempt plus three retries.
    assert_eq!(env.sim.state().calls("get_server"), 4);
}

#[tokio::test]
async fn server_error_bursts_are_retried_for_reads() {
    let env = env().await;
    let server = create(&env, "vm", "5xx").await;
    for status in [500, 502, 503] {
        ok(
            env.sim
                .set_faults(with_burst(burst(status, 2, &["get_server"]))),
            "faults",
        );
        let before = env.sim.state().calls("get_server");
        let got = ok(
            env.client.get_server(ZONE, &server.id).await,
            "get after burst",
        );
        assert_eq!(got.id, server.id);
        assert_eq!(
            env.sim.state().calls("get_server") - before,
            3,
            "status {status}"
        );
    }
    // A burst longer than the retries surfaces as a server error.
    ok(
        env.sim
            .set_faults(with_burst(burst(500, 10, &["get_server"]))),
        "faults",
    );
    let err = env.client.get_server(ZONE, &server.id).await;
    assert!(
        matches!(&err, Err(ScalewayError::Server { status: 500, .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_create_is_not_retried_on_a_server_error() {
    let env = env().await;
    // The provider creates the server, then the answer is lost in a 500.
    let mut fault = burst(500, 1, &["create_server"]);
    fault.after_handler = true;
    ok(env.sim.set_faults(with_burst(fault)), "faults");

    let err = env
        .client
        .create_server(ZONE, &gpu_request("vm-twin", "instance:twin"))
        .await;
    assert!(
        matches!(&err, Err(ScalewayError::Server { status: 500, .. })),
        "{err:?}"
    );
    assert!(matches!(&err, Err(e) if e.outcome_unknown()));
    let snapshot = env.sim.state();
    assert_eq!(snapshot.calls("create_server"), 1, "not retried");
    assert_eq!(snapshot.servers.len(), 1, "exactly one server exists");
    // The caller finds it by tag instead of creating a twin.
    let found = ok(
        env.client
            .list_servers(ZONE, &ListServersFilter::tagged("instance:twin"))
            .await,
        "lookup by tag",
    );
    assert_eq!(found.len(), 1);

    // 503 before acting: still not retried for a create.
    ok(
        env.sim.set_faults(with_burst(burst(
            503,
            1,
            &["create_server", "create_volume", "create_ip"],
        ))),
        "faults",
    );
    let err = env
        .client
        .create_server(ZONE, &gpu_request("vm-2", "x"))
        .await;
    assert!(
        matches!(&err, Err(ScalewayError::Server { status: 503, .. })),
        "{err:?}"
    );
    assert_eq!(env.sim.state().calls("create_server"), 2);
}

#[tokio::test]
async fn a_create_is_retried_on_rate_limiting() {
    let env = env().await;
    ok(
        env.sim
            .set_faults(with_burst(burst(429, 2, &["create_server"]))),
        "faults",
    );
    let server = ok(
        env.client
            .create_server(ZONE, &gpu_request("vm-rl", "instance:rl"))
            .await,
        "create after 429s",
    );
    let snapshot = env.sim.state();
    assert_eq!(snapshot.calls("create_server"), 3);
    assert_eq!(snapshot.servers.len(), 1);
    assert_eq!(snapshot.servers[0].id, server.id);
}

#[tokio::test]
async fn timeouts_are_retried_for_reads_but_not_for_creates() {
    let env = env().await;
    let server = create(&env, "vm-slow", "slow").await;
    let client = client_for(
        client_config(env.sim.base_url()).with_request_timeout(Duration::from_millis(150)),
    );
    // Every answer comes 2 s late, after the request was applied.
    ok(
        env.sim.set_faults(Faults {
            latency_ms: 2000,
            latency_operations: vec!["get_server".into(), "create_server".into()],
            ..Faults::default()
        }),
        "faults",
    );

    // Reads: every attempt times out, and each is retried (1 attempt + 3 retries).
    let err = client.get_server(ZONE, &server.id).await;
    assert!(matches!(&err, Err(ScalewayError::Timeout)), "{err:?}");
    assert_eq!(env.sim.state().calls("get_server"), 4);

    // Creates: the provider acts, the answer comes too late; no second attempt.
    let err = client
        .create_server(ZONE, &gpu_request("vm-late", "instance:late"))
        .await;
    assert!(matches!(&err, Err(ScalewayError::Timeout)), "{err:?}");
    assert!(matches!(&err, Err(e) if e.outcome_unknown()));
    let snapshot = env.sim.state();
    assert_eq!(
        snapshot.calls("create_server"),
        2,
        "one create before, one now"
    );
    let late: Vec<_> = snapshot
        .servers
        .iter()
        .filter(|s| s.tags.contains(&"instance:late".to_string()))
        .collect();
    assert_eq!(late.len(), 1, "the provider did create it, once");
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_after_retries() {
    // A port nobody listens on: bind, note the port, close.
    let port = {
        let listener = ok(std::net::TcpListener::bind("127.0.0.1:0"), "bind");
        ok(listener.local_addr(), "addr").port()
    };
    let client = client_for(
        ScalewayConfig::new(inferplane_scaleway::SecretKey::new(KEY), PROJECT)
            .with_base_url(format!("http://127.0.0.1:{port}"))
            .with_retry(RetryPolicy {
                max_retries: 2,
                backoff_base: Duration::from_millis(40),
                backoff_max: Duration::from_millis(40),
                max_retry_after: Duration::from_secs(1),
            }),
    );
    let started = Instant::now();
    // Connection errors are retried even for creates: the request was never sent.
    let err = client.create_server(ZONE, &gpu_request("vm", "x")).await;
    assert!(matches!(&err, Err(ScalewayError::Transport(_))), "{err:?}");
    // Two retries, each after at least half the 40 ms backoff.
    assert!(
        started.elapsed() >= Duration::from_millis(40),
        "{:?}",
        started.elapsed()
    );
    let text = err
        .map(|_| ())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(!text.contains(KEY));
}
