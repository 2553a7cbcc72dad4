//! Group commit: appends that queue while one is written are written together, each keeping
//! its own optimistic concurrency.

use std::collections::HashSet;

use futures::future::join_all;
use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::testing::TestDatabase;
use inferplane_store::{EventStore, NewEvent};
use sqlx::PgPool;

fn events(n: usize, tag: &str) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent {
            event_type: "Tested".into(),
            event_version: "1".into(),
            payload: serde_json::json!({ "tag": tag, "i": i }),
        })
        .collect()
}

fn metadata() -> EventMetadata {
    EventMetadata::new_command(Actor::system("test"))
}

/// (aggregate_id, sequence, payload tag) of every event, in global order.
async fn stream(pool: &PgPool) -> Vec<(String, i64, String)> {
    sqlx::query_as(
        "select aggregate_id, sequence, payload->>'tag' from events order by transaction_id, position",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn transactions(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(distinct transaction_id) from events")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn concurrent_appends_share_commits_and_each_gets_its_own_positions() {
    static OBSERVED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    inferplane_store::observe_append_queue(|_| {
        OBSERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let n = 200;
    let results = join_all((0..n).map(|i| {
        let store = store.clone();
        async move {
            store
                .append("test", &format!("a{i}"), 0, &events(3, "x"), &metadata())
                .await
        }
    }))
    .await;
    let mut positions = HashSet::new();
    for r in results {
        let last = r.unwrap().expect("three events appended");
        assert!(
            positions.insert(last),
            "each append has its own last position"
        );
    }
    let rows = stream(&db.pool).await;
    assert_eq!(rows.len(), 3 * n);
    // Each aggregate's events are contiguous sequences in global order.
    for i in 0..n {
        let id = format!("a{i}");
        let seqs: Vec<i64> = rows.iter().filter(|r| r.0 == id).map(|r| r.1).collect();
        assert_eq!(seqs, vec![1, 2, 3], "{id}");
    }
    // The last position returned is the aggregate's last event.
    let max: Vec<(String, i64)> =
        sqlx::query_as("select aggregate_id, max(position) from events group by aggregate_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let expected: HashSet<i64> = max.into_iter().map(|(_, p)| p).collect();
    assert_eq!(positions, expected);
    // 200 appends issued at once: far fewer commits than appends.
    let commits = transactions(&db.pool).await;
    assert!(commits < n as i64 / 4, "{commits} commits for {n} appends");
    // Each append that went through the writer reported its wait (other tests of this binary
    // may add theirs).
    assert!(OBSERVED.load(std::sync::atomic::Ordering::Relaxed) >= n);
}

#[tokio::test]
async fn two_appends_to_one_aggregate_at_once_one_wins_and_the_others_are_untouched() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    // Ten bystanders and two rivals for version 1 of the same aggregate, all at once.
    let bystanders = (0..10).map(|i| {
        let store = store.clone();
        async move {
            store
                .append("test", &format!("b{i}"), 0, &events(1, "b"), &metadata())
                .await
        }
    });
    let rivals = ["left", "right"].map(|tag| {
        let store = store.clone();
        async move {
            store
                .append("test", "contested", 0, &events(2, tag), &metadata())
                .await
        }
    });
    let (bystanders, rivals) = tokio::join!(join_all(bystanders), join_all(rivals));
    assert!(bystanders.iter().all(|r| r.is_ok()));
    let won: Vec<_> = rivals.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "exactly one rival wins: {rivals:?}");
    let lost = rivals.iter().find(|r| r.is_err()).unwrap();
    assert!(
        lost.as_ref()
            .unwrap_err()
            .to_string()
            .contains("concurrent append"),
        "{lost:?}"
    );
    let contested: Vec<(String, i64, String)> = stream(&db.pool)
        .await
        .into_iter()
        .filter(|r| r.0 == "contested")
        .collect();
    assert_eq!(contested.len(), 2);
    assert_eq!(
        contested[0].2, contested[1].2,
        "both events are the winner's"
    );
}

#[tokio::test]
async fn a_stale_append_in_a_group_conflicts_alone() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    store
        .append("test", "taken", 0, &events(1, "first"), &metadata())
        .await
        .unwrap();
    // Twenty fresh appends and one that still expects version 0, queued together: the group
    // fails on the stale one and is written again append by append.
    let fresh = (0..20).map(|i| {
        let store = store.clone();
        async move {
            store
                .append(
                    "test",
                    &format!("f{i}"),
                    0,
                    &events(1, "fresh"),
                    &metadata(),
                )
                .await
        }
    });
    let (stale_events, meta) = (events(1, "stale"), metadata());
    let stale = store.append("test", "taken", 0, &stale_events, &meta);
    let (fresh, stale) = tokio::join!(join_all(fresh), stale);
    assert!(fresh.iter().all(|r| r.is_ok()), "{fresh:?}");
    assert!(stale.is_err());
    let rows = stream(&db.pool).await;
    assert_eq!(rows.len(), 21);
    assert!(rows.iter().all(|r| r.2 != "stale"));
    assert_eq!(
        rows.iter().filter(|r| r.0 == "taken").count(),
        1,
        "the stale append wrote nothing"
    );
}

#[tokio::test]
async fn an_append_whose_caller_went_away_is_still_written_once() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    // Dropped right after it was queued (the first poll queues it; the timeout polls the
    // append before its clock): the writer still writes it, it was accepted.
    let queued = tokio::time::timeout(
        std::time::Duration::from_micros(1),
        store.append("test", "orphan", 0, &events(1, "o"), &metadata()),
    )
    .await;
    drop(queued);
    // A later append to another aggregate passes through the same queue after it.
    store
        .append("test", "after", 0, &events(1, "a"), &metadata())
        .await
        .unwrap();
    let ids: Vec<String> = stream(&db.pool).await.into_iter().map(|r| r.0).collect();
    assert_eq!(ids.iter().filter(|id| *id == "orphan").count(), 1);
    assert!(ids.contains(&"after".to_string()));
}

#[tokio::test]
async fn bulk_appends_are_written_beside_the_group_each_in_its_own_commit() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let results = join_all((0..4).map(|i| {
        let store = store.clone();
        async move {
            store
                .append(
                    "test",
                    &format!("bulk{i}"),
                    0,
                    &events(40, "bulk"),
                    &metadata(),
                )
                .await
        }
    }))
    .await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(stream(&db.pool).await.len(), 160);
    assert_eq!(
        transactions(&db.pool).await,
        4,
        "one commit per bulk append"
    );
}

#[tokio::test]
async fn when_the_database_is_gone_every_queued_append_gets_an_error() {
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    store
        .append("test", "first", 0, &events(1, "x"), &metadata())
        .await
        .unwrap();
    db.pool.close().await;
    let results = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        join_all((0..10).map(|i| {
            let store = store.clone();
            async move {
                store
                    .append("test", &format!("late{i}"), 0, &events(1, "x"), &metadata())
                    .await
            }
        })),
    )
    .await
    .expect("no append hangs");
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
}
