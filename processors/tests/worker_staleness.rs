//! The watchdog and worker heartbeats: a ready instance whose worker stops heartbeating (or
//! never did) becomes unavailable with the age in the reason, and ready again when fresh
//! heartbeats say the engine serves. Heartbeats are written to `worker_telemetry` as the
//! API's heartbeat route writes them; the processors, the simulator and the engines are real.

mod common;

use std::time::Duration;

use common::Harness;
use inferplane_domain::instance::{InstanceCommand, InstanceId, InstanceStatus};
use inferplane_domain::worker_credentials::token_hash;
use inferplane_scaleway::sim::SimConfig;
use sqlx::PgPool;

/// Heartbeats for `id` every 100 ms until the task is aborted.
fn heartbeats(pool: PgPool, id: InstanceId) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            sqlx::query(
                "insert into worker_telemetry (instance_id, engine_url, models, status,
                     install_attempt, last_heartbeat_at)
                 values ($1, 'http://127.0.0.1:8000', '{org/test-model-8b}', 'ready', 1, now())
                 on conflict (instance_id) do update set last_heartbeat_at = now()",
            )
            .bind(id.0)
            .execute(&pool)
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn settings() -> inferplane_processors::LifecycleSettings {
    let mut s = common::settings();
    s.worker_stale_after = Duration::from_millis(1500);
    s
}

#[tokio::test]
async fn a_stale_worker_makes_its_instance_unavailable_and_fresh_heartbeats_make_it_ready() {
    let h = Harness::with_settings(SimConfig::default(), settings()).await;
    let process = h.process().await;
    let id = h.request("fr-par-2", &[]).await;
    h.wait_for(id, InstanceStatus::Ready, 30).await;
    h.command(
        id,
        InstanceCommand::RegisterWorker {
            attempt: 1,
            token_hash: token_hash("wk_test"),
            agent_version: "test".into(),
            from_ip: None,
        },
    )
    .await;
    let beating = heartbeats(h.db.pool.clone(), id);
    // Heartbeating for longer than the window: still ready.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(h.state(id).await.status, InstanceStatus::Ready);

    // The agent goes silent.
    beating.abort();
    let s = h.wait_for(id, InstanceStatus::Unavailable, 10).await;
    let reason = s.unavailable_reason.unwrap();
    assert!(
        reason.starts_with("worker heartbeat stale for "),
        "{reason}"
    );
    let worker = s.worker.unwrap();
    assert_eq!(worker.healthy, Some(false));
    assert_eq!(worker.health_reason.as_deref(), Some(reason.as_str()));

    // It comes back: healthy, then ready.
    let beating = heartbeats(h.db.pool.clone(), id);
    let s = h.wait_for(id, InstanceStatus::Ready, 10).await;
    assert_eq!(s.worker.unwrap().healthy, Some(true));
    let types = h.event_types(id).await;
    let tail: Vec<&str> = types
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "InstanceUnavailable",
            "WorkerHealthChanged",
            "ReadinessCheckPassed",
            "InstanceReady"
        ]
    );
    beating.abort();
    process.stop().await;
}

#[tokio::test]
async fn an_instance_ready_for_a_whole_window_without_any_heartbeat_is_stale() {
    let h = Harness::with_settings(SimConfig::default(), settings()).await;
    let process = h.process().await;
    let id = h.request("fr-par-2", &[]).await;
    h.wait_for(id, InstanceStatus::Ready, 30).await;
    let s = h.wait_for(id, InstanceStatus::Unavailable, 10).await;
    let reason = s.unavailable_reason.unwrap();
    assert!(reason.starts_with("no worker heartbeat in "), "{reason}");
    // It stays out of service: going unavailable does not restart the count.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(h.state(id).await.status, InstanceStatus::Unavailable);
    process.stop().await;
}
