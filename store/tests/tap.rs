//! The shared reader of a process: readers served from memory see exactly what their own
//! query would have returned, and never miss what came after.

use std::collections::HashSet;
use std::time::Duration;

use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::testing::TestDatabase;
use inferplane_store::{Cursor, EventStore, NewEvent, Notifier, StoredEvent, WakeUps};
use sqlx::{PgConnection, PgPool};

async fn append(pool: &PgPool, aggregate_id: &str) {
    let event = NewEvent {
        event_type: "Tested".into(),
        event_version: "1".into(),
        payload: serde_json::json!({}),
    };
    EventStore::new(pool.clone())
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

/// A connection whose transaction is aborted: every query on it fails, so a read that
/// succeeds on it was answered from memory.
async fn poisoned(pool: &PgPool) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("begin").execute(&mut *conn).await.unwrap();
    let _ = sqlx::query("select 1/0").execute(&mut *conn).await;
    conn
}

/// Follows the stream through the tap until `n` events are seen (or 20 s pass).
async fn follow(
    wakeups: &mut WakeUps,
    conn: &mut PgConnection,
    mut cursor: Cursor,
    batch: i64,
    n: usize,
) -> Vec<StoredEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while seen.len() < n && tokio::time::Instant::now() < deadline {
        wakeups.borrow_and_update();
        let page = wakeups
            .tap()
            .read_after_checked(conn, cursor, batch)
            .await
            .unwrap();
        if let Some(last) = page.events.last() {
            cursor = last.cursor();
        }
        let empty = page.events.is_empty();
        seen.extend(page.events);
        if empty {
            let _ = tokio::time::timeout(Duration::from_millis(50), wakeups.changed()).await;
        }
    }
    seen
}

#[tokio::test]
async fn a_second_reader_is_served_from_memory_and_new_events_still_reach_it() {
    let db = TestDatabase::new().await;
    let notifier = Notifier::spawn(db.pool.clone());
    let mut wakeups = notifier.subscribe();
    for i in 0..5 {
        append(&db.pool, &format!("a{i}")).await;
    }
    // Let their notifications arrive first: the check below relies on none coming after the
    // tap's read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = follow(
        &mut wakeups,
        &mut db.pool.acquire().await.unwrap(),
        Cursor::START,
        1000,
        5,
    )
    .await;
    assert_eq!(first.len(), 5);

    // The same events for a reader whose connection cannot run a query: from memory.
    let mut broken = poisoned(&db.pool).await;
    let other = wakeups.clone();
    let tap = other.tap();
    let again = tap
        .read_after_checked(&mut broken, Cursor::START, 1000)
        .await
        .expect("served from memory");
    assert_eq!(again.events, first);
    let tail = tap
        .read_after_checked(&mut broken, first[1].cursor(), 2)
        .await
        .expect("served from memory");
    assert_eq!(
        tail.events,
        first[2..4].to_vec(),
        "a suffix, up to the limit"
    );
    let none = tap
        .read_after_checked(&mut broken, first[4].cursor(), 1000)
        .await
        .expect("nothing new, without a query");
    assert!(none.events.is_empty());

    // A new event is announced: the tap must query (and fails on the broken connection),
    // then serves it to a working one.
    append(&db.pool, "late").await;
    tokio::time::timeout(Duration::from_secs(5), wakeups.changed())
        .await
        .expect("notified")
        .unwrap();
    assert!(
        tap.read_after_checked(&mut broken, first[4].cursor(), 1000)
            .await
            .is_err(),
        "after a notification the head is read again"
    );
    let late = follow(
        &mut wakeups,
        &mut db.pool.acquire().await.unwrap(),
        first[4].cursor(),
        1000,
        1,
    )
    .await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].aggregate_id, "late");
}

#[tokio::test]
async fn the_tap_does_not_pass_a_transaction_held_open() {
    let db = TestDatabase::new().await;
    let notifier = Notifier::spawn(db.pool.clone());
    let mut wakeups = notifier.subscribe();
    let mut conn = db.pool.acquire().await.unwrap();

    let mut open = db.pool.begin().await.unwrap();
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         values ('test', 'held', 1, 'Tested', '1', '{}', '{}')",
    )
    .execute(&mut *open)
    .await
    .unwrap();
    append(&db.pool, "after").await;

    let page = wakeups
        .tap()
        .read_after_checked(&mut conn, Cursor::START, 1000)
        .await
        .unwrap();
    assert!(
        page.events.is_empty(),
        "nothing passes the open transaction"
    );
    assert!(page.held_back, "and the reader is told to look again");
    // Asked again at once, with no notification in between: still a query, not "nothing new".
    let again = wakeups
        .tap()
        .read_after_checked(&mut conn, Cursor::START, 1000)
        .await
        .unwrap();
    assert!(again.held_back);

    open.commit().await.unwrap();
    let seen = follow(&mut wakeups, &mut conn, Cursor::START, 1000, 2).await;
    assert_eq!(
        seen.iter()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
        ["held", "after"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_sharing_a_tap_see_every_event_once_in_order_under_concurrent_writers() {
    const WRITERS: usize = 8;
    const APPENDS: usize = 40;
    let db = TestDatabase::new().await;
    let notifier = Notifier::spawn(db.pool.clone());

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = db.pool.clone();
        writers.push(tokio::spawn(async move {
            for a in 0..APPENDS {
                append(&pool, &format!("w{w}-a{a}")).await;
                if a % 7 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    let total = WRITERS * APPENDS;
    // Readers with different batch sizes and speeds; the last one starts late, behind what
    // the tap holds, and catches up with reads of its own.
    let mut readers = Vec::new();
    for (i, batch) in [1000_i64, 7, 1].into_iter().enumerate() {
        let mut wakeups = notifier.subscribe();
        let pool = db.pool.clone();
        readers.push(tokio::spawn(async move {
            if i == 2 {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            let mut conn = pool.acquire().await.unwrap();
            follow(&mut wakeups, &mut conn, Cursor::START, batch, total).await
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let table_order: Vec<i64> =
        sqlx::query_scalar("select position from events order by transaction_id, position")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(table_order.len(), total);
    for r in readers {
        let seen: Vec<i64> = r.await.unwrap().iter().map(|e| e.position).collect();
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "an event was delivered twice");
        assert_eq!(seen, table_order, "every event, in commit-consistent order");
    }
}

#[tokio::test]
async fn a_reader_behind_the_head_gets_what_came_after_it_in_the_same_page() {
    let db = TestDatabase::new().await;
    let notifier = Notifier::spawn(db.pool.clone());
    let mut wakeups = notifier.subscribe();
    let mut conn = db.pool.acquire().await.unwrap();
    for i in 0..3 {
        append(&db.pool, &format!("a{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = follow(&mut wakeups, &mut conn, Cursor::START, 1000, 3).await;
    assert_eq!(first.len(), 3);

    // Another reader marks the next notification seen, then asks from the start. Memory holds
    // three events, but a fourth came since: a short page would tell it "caught up" and leave
    // the fourth until the next poll, so the page must include it.
    let mut other = notifier.subscribe();
    other.borrow_and_update();
    append(&db.pool, "late").await;
    tokio::time::timeout(Duration::from_secs(5), other.changed())
        .await
        .expect("notified")
        .unwrap();
    other.borrow_and_update();
    let page = loop {
        let page = other
            .tap()
            .read_after_checked(&mut conn, Cursor::START, 1000)
            .await
            .unwrap();
        // A transaction another test holds open anywhere in the cluster holds events back
        // (the horizon is the cluster's); the page then says so, and its reader looks again.
        if !page.held_back {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        page.events
            .iter()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
        ["a0", "a1", "a2", "late"]
    );
}

/// A TCP hop to the database that can hold back the server's answers: a query sent through
/// it while paused waits until it is resumed.
struct Hop {
    url: String,
    paused: tokio::sync::watch::Sender<bool>,
}

impl Hop {
    async fn start(url: &str) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::{TcpListener, TcpStream};

        // postgres://[user@]host[:port]/database[?...]
        let (scheme, rest) = url.split_once("://").unwrap();
        let (user, rest) = match rest.split_once('@') {
            Some((user, rest)) => (format!("{user}@"), rest),
            None => (String::new(), rest),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap());
        let upstream = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:5432")
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let through = format!("{scheme}://{user}127.0.0.1:{port}{path}");
        let (paused, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
                });
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let Ok(n) = server_rx.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        if watch.wait_for(|p| !*p).await.is_err() {
                            return;
                        }
                        if client_tx.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            url: through,
            paused,
        }
    }

    async fn connect(&self) -> PgConnection {
        use sqlx::Connection;
        PgConnection::connect(&self.url).await.unwrap()
    }

    fn pause(&self, paused: bool) {
        self.paused.send_replace(paused);
    }
}

/// The aggregate ids of `events`, in order.
fn aggregate_ids(events: &[StoredEvent]) -> Vec<&str> {
    events.iter().map(|e| e.aggregate_id.as_str()).collect()
}

/// A database holding three events, a tap whose notifications the test sends itself, and a
/// way to start a reader from the start on a given connection.
async fn three_events_and_a_tap() -> (
    TestDatabase,
    tokio::sync::watch::Sender<u64>,
    impl Fn(PgConnection) -> tokio::task::JoinHandle<Result<Vec<StoredEvent>, sqlx::Error>>,
) {
    let db = TestDatabase::new().await;
    for i in 0..3 {
        append(&db.pool, &format!("a{i}")).await;
    }
    let (notify, notified) = tokio::sync::watch::channel(0u64);
    let tap = std::sync::Arc::new(inferplane_store::EventTap::new(notified));
    let read = move |mut conn: PgConnection| {
        let tap = tap.clone();
        tokio::spawn(async move {
            tap.read_after_checked(&mut conn, Cursor::START, 1000)
                .await
                .map(|p| p.events)
        })
    };
    (db, notify, read)
}

/// Readers queued behind a read that began after they asked are answered by it, even if a
/// notification came meanwhile: under a stream of notifications that is what keeps one
/// reading per wave instead of one per reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_queued_behind_a_read_that_began_after_it_asked_is_answered_by_it() {
    let (db, notify, read) = three_events_and_a_tap().await;
    // Long enough for a spawned reader to reach the tap's lock on a busy machine.
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    let (hop_c, hop_b) = (Hop::start(&db.url).await, Hop::start(&db.url).await);

    // C's read is under way (its answer held back), holding the tap.
    let conn_c = hop_c.connect().await;
    hop_c.pause(true);
    let c = read(conn_c);
    settle().await;
    // A notification comes while C's read runs, then B asks: C's read, which began before
    // both, does not answer B, so B must read itself.
    notify.send_modify(|n| *n += 1);
    let b = read(hop_b.connect().await);
    settle().await;
    // E asks after B, on a connection that cannot run a query.
    let e = read(poisoned(&db.pool).await.detach());
    settle().await;
    // C's answer arrives; B's read begins (after E asked), and another notification comes
    // while it runs.
    hop_b.pause(true);
    hop_c.pause(false);
    assert_eq!(c.await.unwrap().unwrap().len(), 3);
    settle().await;
    notify.send_modify(|n| *n += 1);
    hop_b.pause(false);
    assert_eq!(b.await.unwrap().unwrap().len(), 3);
    let served = e
        .await
        .unwrap()
        .expect("answered by B's read, without a query");
    assert_eq!(aggregate_ids(&served), ["a0", "a1", "a2"]);
}

/// A reader that asks while a read runs is answered by that read when no notification came
/// between the read's beginning and the asking, even if one came while it waited its turn
/// (that one wakes it again); one that asks after such a notification is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_answers_the_readers_that_asked_before_the_next_notification() {
    let (db, notify, read) = three_events_and_a_tap().await;
    // Short enough that C's read is still trusted (under a second old) when E is answered.
    let settle = || tokio::time::sleep(Duration::from_millis(150));
    let hop = Hop::start(&db.url).await;
    let (conn_e, conn_f) = (
        poisoned(&db.pool).await.detach(),
        poisoned(&db.pool).await.detach(),
    );

    // C's read is under way (its answer held back), holding the tap.
    let conn_c = hop.connect().await;
    hop.pause(true);
    let c = read(conn_c);
    settle().await;
    // E asks while it runs, on a connection that cannot run a query; then a notification
    // comes, and F asks after it, also on a connection that cannot run a query.
    let e = read(conn_e);
    settle().await;
    notify.send_modify(|n| *n += 1);
    let f = read(conn_f);
    settle().await;
    hop.pause(false);
    assert_eq!(c.await.unwrap().unwrap().len(), 3);
    let served = e
        .await
        .unwrap()
        .expect("answered by C's read, without a query");
    assert_eq!(aggregate_ids(&served), ["a0", "a1", "a2"]);
    assert!(
        f.await.unwrap().is_err(),
        "a reader that asked after a notification C's read may not cover reads again"
    );
}
