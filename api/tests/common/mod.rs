//! Black-box harness: a real process (HTTP on port 0, projections, live stream) on a fresh
//! database, driven over real sockets.
#![allow(dead_code)]

pub mod fleet;

use std::time::Duration;

use futures::StreamExt;
use inferplane_api::{OperatorToken, Server, Settings};
use inferplane_store::testing::TestDatabase;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const TOKEN: &str = "test-operator-token-0123456789";

pub struct TestApp {
    pub db: TestDatabase,
    pub server: Option<Server>,
    pub base: String,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Settings::default()).await
    }

    pub async fn spawn_with(settings: Settings) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDatabase::new().await;
        let server = start_on(&db, settings).await;
        let base = format!("http://{}", server.addr);
        Self {
            db,
            server: Some(server),
            base,
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn patch(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.patch(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.put(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(TOKEN)
    }

    /// POSTs `body` to `path`, expects 201 and returns the JSON view.
    pub async fn create(&self, path: &str, body: &Value) -> Value {
        let r = self.post(path).json(body).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// Waits until `GET path` answers a view with `version`.
    pub async fn wait_for_version(&self, path: &str, version: i64) -> Value {
        eventually(|| async {
            let r = self.get(path).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            (v["version"] == json!(version)).then_some(v)
        })
        .await
    }

    /// Registers a model and returns its JSON view.
    pub async fn register(&self, repo: &str) -> Value {
        let r = self
            .post("/api/models")
            .json(&model_body(repo))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// Waits until the catalog read model shows `id` with `version`.
    pub async fn wait_for_model(&self, id: &str, version: i64) -> Value {
        eventually(|| async {
            let r = self.get(&format!("/api/models/{id}")).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            (v["version"] == json!(version)).then_some(v)
        })
        .await
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from events")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Starts another process-equivalent on the same database (its own pool and listener).
pub async fn start_on(db: &TestDatabase, settings: Settings) -> Server {
    let pool = db.second_pool(10).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    inferplane_api::start(pool, listener, OperatorToken::new(TOKEN), settings)
        .await
        .unwrap()
}

pub fn model_body(repo: &str) -> Value {
    json!({
        "hf_repo_id": repo,
        "display_name": format!("Model {repo}"),
        "parameter_count": 7_000_000_000i64,
        "required_vram_gb": 24,
        "context_length": 8192
    })
}

/// A zone registration body.
pub fn zone_body(code: &str) -> Value {
    json!({"code": code, "display_name": format!("Zone {code}")})
}

/// An L4 instance type registration body: `gpus` x 24 GB at 0.75 EUR/h per GPU.
pub fn l4_body(gpus: i64, availability: Value) -> Value {
    json!({
        "code": format!("L4-{gpus}-24G"),
        "gpu_model": "L4",
        "gpu_count": gpus,
        "vram_per_gpu_gb": 24,
        "vcpus": 8 * gpus,
        "ram_gb": 48 * gpus,
        "hourly_price_micro_eur": 750_000 * gpus,
        "availability": availability
    })
}

/// Polls `check` for up to 20 s.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One server-sent event as received.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// A minimal SSE client over a real HTTP response.
pub struct SseClient {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseClient {
    /// Connects on a new connection: the server serves it with its dedicated stream handler.
    pub async fn connect(app: &TestApp, query: &str, last_event_id: Option<i64>) -> Self {
        Self::connect_with(&reqwest::Client::new(), app, query, last_event_id).await
    }

    /// Connects with `client`, which may reuse a keep-alive connection that served other
    /// requests first: the server then serves the stream through its router.
    pub async fn connect_with(
        client: &reqwest::Client,
        app: &TestApp,
        query: &str,
        last_event_id: Option<i64>,
    ) -> Self {
        let mut req = client
            .get(app.url(&format!("/api/events/stream{query}")))
            .bearer_auth(TOKEN);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        // A stream's response head comes once it is subscribed: bounded, so that a server
        // that never answers fails the test instead of hanging it.
        let r = tokio::time::timeout(Duration::from_secs(20), req.send())
            .await
            .expect("no response head for the stream within 20 s")
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            stream: Box::pin(r.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next frame that is not a keep-alive comment, or None if the stream ended. Panics
    /// when none comes within 20 s: keep-alive comments do not extend that time.
    pub async fn next(&mut self) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        frame.id = Some(v.trim().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        frame.event = Some(v.trim().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        frame.data.push_str(v.trim_start());
                        any = true;
                    }
                }
                if any {
                    return Some(frame);
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(_) => return None,
                Err(_) => panic!("no SSE frame within 20 s"),
            }
        }
    }

    /// The next `n` frames.
    pub async fn take(&mut self, n: usize) -> Vec<Frame> {
        let mut frames = Vec::with_capacity(n);
        while frames.len() < n {
            frames.push(self.next().await.expect("stream ended early"));
        }
        frames
    }
}
