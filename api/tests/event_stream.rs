//! The event log over HTTP: JSON pages and the live SSE stream, checked against the table.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{SseClient, TestApp, model_body};
use serde_json::Value;

async fn table_positions(app: &TestApp) -> Vec<i64> {
    sqlx::query_scalar("select position from events order by transaction_id, position")
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
}

fn positions(frames: &[common::Frame]) -> Vec<i64> {
    frames
        .iter()
        .map(|f| f.id.as_deref().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_reconnects_with_last_event_id_misses_nothing_and_sees_nothing_twice() {
    let app = TestApp::spawn().await;
    // History before the client connects, replayed from the store.
    for i in 0..5 {
        app.register(&format!("org/before-{i}")).await;
    }
    let mut client = SseClient::connect(&app, "?after=0", None).await;
    let mut seen = client.take(5).await;

    // Live events while connected.
    for i in 0..5 {
        app.register(&format!("org/live-{i}")).await;
    }
    seen.extend(client.take(5).await);
    let last_id: i64 = seen.last().unwrap().id.as_deref().unwrap().parse().unwrap();
    drop(client);

    // Appended while disconnected, then live again after reconnecting.
    for i in 0..5 {
        app.register(&format!("org/offline-{i}")).await;
    }
    let mut client = SseClient::connect(&app, "", Some(last_id)).await;
    seen.extend(client.take(5).await);
    for i in 0..5 {
        app.register(&format!("org/after-{i}")).await;
    }
    seen.extend(client.take(5).await);

    let got = positions(&seen);
    let unique: HashSet<_> = got.iter().collect();
    assert_eq!(
        unique.len(),
        got.len(),
        "a duplicate was delivered: {got:?}"
    );
    assert_eq!(got, table_positions(&app).await, "a gap or a reordering");

    let first: Value = serde_json::from_str(&seen[0].data).unwrap();
    assert_eq!(seen[0].event.as_deref(), Some("ModelRegistered"));
    assert_eq!(first["aggregate_type"], "model");
    assert_eq!(first["sequence"], 1);
    assert!(first["metadata"]["correlation_id"].is_string());
    assert!(first["recorded_at"].is_string());
}

#[tokio::test]
async fn a_stream_started_after_a_position_gets_only_later_events_and_filters_apply() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/api/models")
        .json(&model_body("org/a"))
        .send()
        .await
        .unwrap();
    let after: i64 = r.headers()["x-event-position"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let a: Value = r.json().await.unwrap();
    let a_id = a["id"].as_str().unwrap().to_string();
    let mut all = SseClient::connect(&app, &format!("?after={after}"), None).await;
    let mut only_a =
        SseClient::connect(&app, &format!("?after={after}&aggregate_id={a_id}"), None).await;
    let mut only_deactivated = SseClient::connect(
        &app,
        &format!("?after={after}&event_type=ModelDeactivated&aggregate_type=model"),
        None,
    )
    .await;
    // Without a position, a stream starts live: it gets what is appended after it connects.
    // This one rides the keep-alive connection that made the registration (served by the
    // router rather than the dedicated stream handler).
    let mut live = SseClient::connect_with(&app.client, &app, "", None).await;

    app.register("org/b").await;
    app.post(&format!("/api/models/{a_id}/deactivate"))
        .send()
        .await
        .unwrap();

    let frames = all.take(2).await;
    assert_eq!(frames[0].event.as_deref(), Some("ModelRegistered"));
    assert_eq!(frames[1].event.as_deref(), Some("ModelDeactivated"));
    let a_frame = only_a.next().await.unwrap();
    assert_eq!(a_frame.event.as_deref(), Some("ModelDeactivated"));
    assert_eq!(a_frame.id, frames[1].id);
    assert_eq!(only_deactivated.next().await.unwrap().id, frames[1].id);
    let live_ids: Vec<_> = live.take(2).await.into_iter().map(|f| f.id).collect();
    assert!(live_ids.contains(&frames[1].id));
}

/// A stream client that stops reading once it has the response head: a request from the first
/// event on, on a socket with a tiny receive buffer. Returns the socket and the body bytes read
/// with the head.
///
/// On its own connection the request is HTTP/1.0, so the body is the raw event stream (the
/// dedicated stream handler serves it). `through_router`: the connection first makes another
/// request and keeps alive, so the router serves the stream, chunked.
async fn stalled_client(app: &TestApp, through_router: bool) -> (tokio::net::TcpStream, Vec<u8>) {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = app.base.trim_start_matches("http://").parse().unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = |target: &str, version: &str| {
        format!(
            "GET {target} HTTP/{version}\r\nHost: test\r\nAuthorization: Bearer {}\r\n\r\n",
            common::TOKEN
        )
    };
    let version = if through_router {
        stream
            .write_all(request("/api/projections", "1.1").as_bytes())
            .await
            .unwrap();
        let (head, mut body) = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .expect("a content-length");
        read_exactly(&mut stream, &mut body, length).await;
        "1.1"
    } else {
        "1.0"
    };
    stream
        .write_all(request("/api/events/stream?after=0", version).as_bytes())
        .await
        .unwrap();
    // The head is written once the stream is subscribed: from then on nothing is missed.
    let (head, body) = read_head(&mut stream).await;
    assert!(head.starts_with(&format!("HTTP/{version} 200")), "{head}");
    (stream, body)
}

/// Reads a response head; returns it and the bytes read after it.
async fn read_head(stream: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = raw.split_off(i + 4);
            return (String::from_utf8_lossy(&raw).into_owned(), body);
        }
        read_more(stream, &mut raw).await;
    }
}

/// Reads until `buf` holds at least `n` bytes.
async fn read_exactly(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, n: usize) {
    while buf.len() < n {
        read_more(stream, buf).await;
    }
}

async fn read_more(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
        .await
        .expect("no response within 20 s")
        .unwrap();
    assert!(n > 0, "the server closed the connection early");
    buf.extend_from_slice(&chunk[..n]);
}

/// Appends one event of about `size` bytes to its own aggregate; returns its position.
async fn append_blob(store: &inferplane_store::EventStore, id: String, size: usize) -> i64 {
    let event = inferplane_store::NewEvent {
        event_type: "Bulky".into(),
        event_version: "1".into(),
        payload: serde_json::json!({ "blob": "x".repeat(size) }),
    };
    let meta =
        inferplane_domain::EventMetadata::new_command(inferplane_domain::Actor::system("test"));
    store
        .append("bulk", &id, 0, &[event], &meta)
        .await
        .unwrap()
        .expect("one event appended")
}

/// Appends events and waits for each on a client that keeps up, so that every event is a
/// batch of its own at the hub, whatever the machine's speed.
struct Filler {
    store: inferplane_store::EventStore,
    observer: SseClient,
    appended: usize,
}

impl Filler {
    async fn new(app: &TestApp) -> Self {
        Self {
            store: inferplane_store::EventStore::new(app.db.pool.clone()),
            observer: SseClient::connect(app, "", None).await,
            appended: 0,
        }
    }

    /// Appends `n` events of about `size` bytes each.
    async fn append(&mut self, n: usize, size: usize) {
        for _ in 0..n {
            let id = format!("blob{}", self.appended);
            self.appended += 1;
            append_blob(&self.store, id.clone(), size).await;
            let f = self
                .observer
                .next()
                .await
                .expect("the observer's stream goes on");
            let data: Value = serde_json::from_str(&f.data).unwrap();
            assert_eq!(data["aggregate_id"], id.as_str());
        }
    }

    /// Appends more than the server's send buffer and a stalled client's receive buffer hold,
    /// so that a stream to a client that does not read blocks in a write.
    async fn block_the_writer(&mut self) {
        let big = 200_000;
        self.append(send_buffer_max() / big * 3 / 2 + 5, big).await;
    }
}

/// Reads what the server still sends until it closes the connection.
async fn read_to_the_end(stalled: &mut tokio::net::TcpStream, raw: &mut Vec<u8>) -> String {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(Duration::from_secs(30), stalled.read_to_end(raw))
        .await
        .expect("the server closes the stalled stream")
        .unwrap();
    String::from_utf8_lossy(raw).into_owned()
}

/// The ids of the complete frames of a stream's body (a cut connection can end mid-frame).
fn ids_of(body: &str) -> Vec<i64> {
    let mut frames: Vec<&str> = body.split("\n\n").collect();
    frames.pop();
    frames
        .iter()
        .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("id: ")))
        .map(|v| v.parse().unwrap())
        .collect()
}

/// The most a loopback socket can hold in its send buffer here, in bytes.
fn send_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_consumer_is_cut_off_with_a_reconnect_event_and_can_resume() {
    let app = TestApp::spawn_with(inferplane_api::Settings {
        sse_buffer_batches: 4,
        // Only the ring may end this stream, however long the appends take.
        write_timeout: Duration::from_secs(3600),
        ..Default::default()
    })
    .await;
    let (mut stalled, mut raw) = stalled_client(&app, false).await;
    let mut filler = Filler::new(&app).await;
    filler.block_the_writer().await;
    // Then more batches than the client's ring holds.
    filler.append(20, 10).await;
    let body = read_to_the_end(&mut stalled, &mut raw).await;
    let ids = ids_of(&body);
    let reconnect = body
        .split("\n\n")
        .find(|f| f.contains("event: reconnect"))
        .expect("a reconnect event ends the stream");
    let table = table_positions(&app).await;
    assert!(ids.len() < table.len(), "the client was not cut off");
    assert_eq!(ids, table[..ids.len()], "the stalled client got a gap");
    let data = reconnect
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let hint: Value = serde_json::from_str(data).unwrap();
    let last = hint["last_event_id"].as_i64().unwrap();
    assert_eq!(
        Some(&last),
        ids.last(),
        "the hint is the last event delivered"
    );

    let mut resumed = SseClient::connect(&app, "", Some(last)).await;
    let mut all = ids;
    all.extend(positions(&resumed.take(table.len() - all.len()).await));
    assert_eq!(all, table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_is_disconnected_after_the_write_timeout() {
    let app = TestApp::spawn_with(inferplane_api::Settings {
        write_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    // Both ways a stream is served: its own connection, and a keep-alive one (the router).
    let (mut alone, mut alone_raw) = stalled_client(&app, false).await;
    let (mut routed, mut routed_raw) = stalled_client(&app, true).await;
    let mut filler = Filler::new(&app).await;
    filler.block_the_writer().await;
    // Nothing more is appended, so the ring never overflows: only the write timeout can end
    // these streams. Without it, reading would let them go on, and never end. Wait until the
    // server reports both cut: reading before that would let the writes go on.
    common::eventually(|| async {
        let text = app.get("/metrics").send().await.ok()?.text().await.ok()?;
        let cut: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("inferplane_http_write_timeouts_total "))?
            .trim()
            .parse()
            .ok()?;
        (cut >= 2.0).then_some(())
    })
    .await;
    let table = table_positions(&app).await;
    for (name, stalled, raw) in [
        ("own connection", &mut alone, &mut alone_raw),
        ("router", &mut routed, &mut routed_raw),
    ] {
        let body = read_to_the_end(stalled, raw).await;
        assert!(
            !body.contains("event: reconnect"),
            "{name}: a reconnect frame cannot be written to a client that reads nothing"
        );
        let ids = ids_of(&body);
        assert!(
            ids.len() < table.len(),
            "{name}: the client was not disconnected"
        );
        assert_eq!(
            ids,
            table[..ids.len()],
            "{name}: the stalled client got a gap"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_position_just_committed_behind_an_open_transaction_is_waited_for_not_refused() {
    // The open transaction below holds every reader of the cluster back: keep it short.
    let app = TestApp::spawn_with(inferplane_api::Settings {
        position_wait: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let store = inferplane_store::EventStore::new(app.db.pool.clone());
    // An older transaction, held open: events committed after it are not readable yet.
    let mut open = app.db.pool.begin().await.unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *open)
        .await
        .unwrap();
    let position = append_blob(&store, "held".into(), 10).await;

    // Still held after the server's wait: 503 with Retry-After, for the page and the stream.
    for path in [
        format!("/api/events?after={position}"),
        format!("/api/events/stream?after={position}"),
    ] {
        let r = app.get(&path).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        assert_eq!(r.headers()["retry-after"], "1");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "position-not-readable-yet", "{p}");
    }

    // Released while a request waits: that request answers, with nothing missed.
    let waiting = tokio::spawn(app.get(&format!("/api/events?after={position}")).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    open.rollback().await.unwrap();
    let r = waiting.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["next_after"], position, "nothing after it yet: {page}");
}

#[tokio::test]
async fn stopping_the_server_ends_streams_with_a_reconnect_event() {
    let mut app = TestApp::spawn().await;
    let mut client = SseClient::connect(&app, "", None).await;
    app.stop().await;
    let f = client.next().await.unwrap();
    assert_eq!(f.event.as_deref(), Some("reconnect"));
}

#[tokio::test]
async fn the_json_log_pages_in_commit_order_and_refuses_unknown_positions() {
    let app = TestApp::spawn().await;
    for i in 0..7 {
        app.register(&format!("org/m{i}")).await;
    }
    // Page until every stored event was seen. An empty page only means "nothing readable
    // yet": a transaction elsewhere in the cluster can hold the horizon for a moment.
    let expected = table_positions(&app).await;
    let mut after = 0;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < expected.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "paging stalled at {got:?}"
        );
        let page: Value = app
            .get(&format!("/api/events?after={after}&limit=3"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            assert_eq!(page["next_after"], after);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert!(events.len() <= 3);
        got.extend(events.iter().map(|e| e["position"].as_i64().unwrap()));
        after = page["next_after"].as_i64().unwrap();
    }
    assert_eq!(got, table_positions(&app).await);

    for (query, field) in [
        ("?after=999999", "after"),
        ("?after=-1", "after"),
        ("?limit=0", "limit"),
        ("?limit=5000", "limit"),
        ("?after=abc", "query"),
    ] {
        let r = app
            .get(&format!("/api/events{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], field, "{query}: {p}");
    }
    let r = app
        .get("/api/events/stream")
        .header("Last-Event-ID", "not-a-number")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let mut by_correlation = app
        .get(&format!(
            "/api/events?correlation_id={}",
            uuid::Uuid::new_v4()
        ))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(by_correlation["events"].take(), serde_json::json!([]));
    let _ = model_body;
}

#[tokio::test]
async fn metrics_report_requests_appends_stream_clients_and_projection_lag() {
    let app = TestApp::spawn().await;
    app.register("org/m").await;
    let _client = SseClient::connect(&app, "", None).await;
    let text = common::eventually(|| async {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("inferplane_projection_lag_events")
            .then_some(text)
    })
    .await;
    for metric in [
        "inferplane_http_requests_total",
        "inferplane_http_request_duration_seconds_bucket",
        "inferplane_events_appended_total",
        "inferplane_sse_clients",
        "inferplane_projection_lag_seconds",
    ] {
        assert!(text.contains(metric), "{metric} missing from /metrics");
    }
    assert!(
        text.contains("route=\"/api/models\""),
        "requests are labelled by route template"
    );
}
