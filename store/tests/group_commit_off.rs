//! `--append-group-max 1`: every append is written by its own caller, in its own statement.
//! (Its own test binary: the setting is process-wide.)

use futures::future::join_all;
use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::testing::TestDatabase;
use inferplane_store::{EventStore, NewEvent, set_append_group_max};

#[tokio::test]
async fn with_grouping_off_each_append_is_its_own_commit() {
    set_append_group_max(1);
    let db = TestDatabase::new().await;
    let store = EventStore::new(db.pool.clone());
    let n = 40;
    let results = join_all((0..n).map(|i| {
        let store = store.clone();
        async move {
            let event = NewEvent {
                event_type: "Tested".into(),
                event_version: "1".into(),
                payload: serde_json::json!({}),
            };
            store
                .append(
                    "test",
                    &format!("a{i}"),
                    0,
                    &[event],
                    &EventMetadata::new_command(Actor::system("test")),
                )
                .await
        }
    }))
    .await;
    assert!(results.iter().all(|r| r.is_ok()));
    let commits: i64 = sqlx::query_scalar("select count(distinct transaction_id) from events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(commits, n);
}
