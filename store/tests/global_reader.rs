//! The global reader never skips or duplicates an event, whatever the commit order.
//! Interleavings are made deterministic by holding transactions open on purpose.

use std::collections::HashSet;
use std::time::Duration;

use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::reader::{Filter, read_after};
use inferplane_store::testing::TestDatabase;
use inferplane_store::{Cursor, EventStore, NewEvent, StoredEvent};
use sqlx::{PgPool, Postgres, Transaction};

async fn insert_in(tx: &mut Transaction<'_, Postgres>, aggregate_id: &str, sequence: i64) {
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         values ('test', $1, $2, 'Tested', '1', '{}', '{}')",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .execute(&mut **tx)
    .await
    .unwrap();
}

async fn append_committed(pool: &PgPool, aggregate_id: &str) {
    let store = EventStore::new(pool.clone());
    let event = NewEvent {
        event_type: "Tested".into(),
        event_version: "1".into(),
        payload: serde_json::json!({}),
    };
    store
        .append(
            "test",
            aggregate_id,
            0,
            &[event],
            &EventMetadata::new_command(Actor::system("test")),
        )
        .await
        .unwrap();
}

async fn read_all(pool: &PgPool, after: Cursor) -> Vec<StoredEvent> {
    read_after(
        &mut pool.acquire().await.unwrap(),
        after,
        &Filter::default(),
        10_000,
    )
    .await
    .unwrap()
}

/// Reads until `n` events are visible. Transactions of other tests running in the same
/// cluster hold the horizon back for a moment (xids are cluster-wide); waiting is correct.
async fn read_n(pool: &PgPool, after: Cursor, n: usize) -> Vec<StoredEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = read_all(pool, after).await;
        if seen.len() >= n || tokio::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(events: &[StoredEvent]) -> Vec<&str> {
    events.iter().map(|e| e.aggregate_id.as_str()).collect()
}

#[tokio::test]
async fn a_reader_waits_for_a_transaction_held_open_instead_of_skipping_it() {
    let db = TestDatabase::new().await;
    let mut a = db.pool.begin().await.unwrap();
    insert_in(&mut a, "a", 1).await; // takes the lower position, commits last
    append_committed(&db.pool, "b").await;

    assert!(
        read_all(&db.pool, Cursor::START).await.is_empty(),
        "b must wait behind a"
    );

    a.commit().await.unwrap();
    let seen = read_n(&db.pool, Cursor::START, 2).await;
    assert_eq!(ids(&seen), ["a", "b"]);
    assert!(seen[0].position < seen[1].position);
}

#[tokio::test]
async fn a_reader_that_checkpointed_before_a_late_commit_still_sees_it() {
    let db = TestDatabase::new().await;
    append_committed(&db.pool, "first").await;
    let checkpoint = read_n(&db.pool, Cursor::START, 1)
        .await
        .last()
        .unwrap()
        .cursor();

    let mut a = db.pool.begin().await.unwrap();
    insert_in(&mut a, "a", 1).await;
    append_committed(&db.pool, "b").await;
    assert!(read_all(&db.pool, checkpoint).await.is_empty());
    a.commit().await.unwrap();

    assert_eq!(ids(&read_n(&db.pool, checkpoint, 2).await), ["a", "b"]);
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_a_hole_that_readers_pass() {
    let db = TestDatabase::new().await;
    let mut a = db.pool.begin().await.unwrap();
    insert_in(&mut a, "rolled-back", 1).await;
    append_committed(&db.pool, "b").await;
    assert!(read_all(&db.pool, Cursor::START).await.is_empty());

    a.rollback().await.unwrap();
    let seen = read_n(&db.pool, Cursor::START, 1).await;
    assert_eq!(ids(&seen), ["b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_committed_event_is_seen_exactly_once_under_concurrent_writers() {
    const WRITERS: usize = 16;
    const TRANSACTIONS: usize = 25;
    let db = TestDatabase::new().await;

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = db.pool.clone();
        writers.push(tokio::spawn(async move {
            let mut committed = 0;
            for t in 0..TRANSACTIONS {
                let mut tx = pool.begin().await.unwrap();
                let aggregate = format!("w{w}-t{t}");
                let events = 1 + (w + t) % 3;
                for s in 1..=events {
                    insert_in(&mut tx, &aggregate, s as i64).await;
                    // Hold the transaction open across other writers' commits.
                    let pause = ((w * 7 + t * 13) % 5) as u64 * 300;
                    tokio::time::sleep(Duration::from_micros(pause)).await;
                }
                if (w + t) % 5 == 0 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    committed += events;
                }
            }
            committed
        }));
    }

    // A reader checkpointing small batches while the writers run.
    let reader_pool = db.pool.clone();
    let reader = tokio::spawn(async move {
        let mut cursor = Cursor::START;
        let mut seen = Vec::new();
        for _ in 0..500 {
            let batch = read_after(
                &mut reader_pool.acquire().await.unwrap(),
                cursor,
                &Filter::default(),
                7,
            )
            .await
            .unwrap();
            if let Some(last) = batch.last() {
                cursor = last.cursor();
            }
            seen.extend(batch);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (cursor, seen)
    });

    let mut expected_count = 0;
    for w in writers {
        expected_count += w.await.unwrap();
    }
    let (cursor, mut seen) = reader.await.unwrap();
    let missing = expected_count.saturating_sub(seen.len());
    seen.extend(read_n(&db.pool, cursor, missing).await);

    let positions: Vec<i64> = seen.iter().map(|e| e.position).collect();
    let unique: HashSet<i64> = positions.iter().copied().collect();
    assert_eq!(
        unique.len(),
        positions.len(),
        "an event was delivered twice"
    );
    assert_eq!(positions.len(), expected_count, "an event was skipped");

    let table_order: Vec<i64> =
        sqlx::query_scalar("select position from events order by transaction_id, position")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        positions, table_order,
        "the reader's order is the commit-consistent order"
    );

    // Within a transaction, events come in sequence order and are never interleaved with
    // another transaction's.
    for pair in seen.windows(2) {
        if pair[0].transaction_id == pair[1].transaction_id {
            assert_eq!(pair[0].aggregate_id, pair[1].aggregate_id);
            assert_eq!(pair[0].sequence + 1, pair[1].sequence);
        } else {
            assert!(pair[0].transaction_id < pair[1].transaction_id);
        }
    }
}

#[tokio::test]
async fn filters_select_by_aggregate_and_event_type() {
    let db = TestDatabase::new().await;
    append_committed(&db.pool, "x").await;
    append_committed(&db.pool, "y").await;
    read_n(&db.pool, Cursor::START, 2).await;
    let only_y = Filter {
        aggregate_id: Some("y".into()),
        ..Filter::default()
    };
    let seen = read_after(
        &mut db.pool.acquire().await.unwrap(),
        Cursor::START,
        &only_y,
        10,
    )
    .await
    .unwrap();
    assert_eq!(ids(&seen), ["y"]);
    assert!(seen.iter().all(|e| only_y.matches(e)));
    let none = Filter {
        event_type: Some("Other".into()),
        ..Filter::default()
    };
    assert!(
        read_after(
            &mut db.pool.acquire().await.unwrap(),
            Cursor::START,
            &none,
            10
        )
        .await
        .unwrap()
        .is_empty()
    );
}

#[tokio::test]
async fn a_checked_read_reports_events_held_back_behind_an_open_transaction() {
    use inferplane_store::reader::read_after_checked;
    let db = TestDatabase::new().await;
    append_committed(&db.pool, "first").await;
    let first = read_n(&db.pool, Cursor::START, 1).await;
    assert_eq!(ids(&first), ["first"]);
    let after = first[0].cursor();

    let mut open = db.pool.begin().await.unwrap();
    insert_in(&mut open, "late", 1).await;
    append_committed(&db.pool, "committed").await;
    let page = read_after_checked(&mut db.pool.acquire().await.unwrap(), after, 100)
        .await
        .unwrap();
    assert!(
        page.events.is_empty(),
        "nothing passes the open transaction"
    );
    assert!(page.held_back, "a committed event waits behind it");

    open.commit().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let page = loop {
        let page = read_after_checked(&mut db.pool.acquire().await.unwrap(), after, 100)
            .await
            .unwrap();
        if page.events.len() == 2 || tokio::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ids(&page.events), ["late", "committed"]);
    assert!(!page.held_back);
}

#[tokio::test]
async fn a_committed_position_behind_an_open_transaction_is_settling_then_readable() {
    use inferplane_store::reader::{Located, locate};
    let db = TestDatabase::new().await;
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        locate(&mut conn, 0).await.unwrap(),
        Located::Readable(Cursor::START)
    );
    assert_eq!(locate(&mut conn, 999_999).await.unwrap(), Located::Unknown);

    let mut open = db.pool.begin().await.unwrap();
    insert_in(&mut open, "late", 1).await;
    append_committed(&db.pool, "committed").await;
    let position: i64 =
        sqlx::query_scalar("select position from events where aggregate_id = 'committed'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        locate(&mut conn, position).await.unwrap(),
        Located::Settling,
        "reading after it now could miss the open transaction's event"
    );

    open.rollback().await.unwrap();
    // Readable once the horizon passes it (other databases' transactions can delay that).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let located = loop {
        let located = locate(&mut conn, position).await.unwrap();
        if located != Located::Settling || tokio::time::Instant::now() > deadline {
            break located;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let events = read_n(&db.pool, Cursor::START, 1).await;
    assert_eq!(ids(&events), ["committed"]);
    assert_eq!(located, Located::Readable(events[0].cursor()));
}
