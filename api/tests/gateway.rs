//! The `/v1` gateway over real HTTP: API keys, every endpoint and error, streaming pass-through,
//! failover, cancellation, stickiness, rate limits, revocation across processes, and usage
//! totals against what the engines report.

mod common;

use std::time::{Duration, Instant};

use common::fleet::{Fleet, engine_config, engine_counter, record_drain};
use common::{TestApp, eventually, model_body, start_on};
use futures::StreamExt;
use inferplane_api::Settings;
use inferplane_gateway::GatewaySettings;
use inferplane_worker::engine::Fault;
use serde_json::{Value, json};

const MODEL: &str = "acme/chat-7b";

async fn app_with_fleet(workers: usize) -> (TestApp, Fleet) {
    let mut fleet = Fleet::new().await;
    let app = TestApp::spawn_with(settings(fleet.port)).await;
    for _ in 0..workers {
        fleet.add(&app.db.pool, engine_config(MODEL)).await;
    }
    wait_workers(&app, MODEL, workers).await;
    (app, fleet)
}

/// Waits until this process's gateway routes to `n` workers of `model`.
async fn wait_workers(app: &TestApp, model: &str, n: usize) {
    let gw = app.server.as_ref().unwrap().state.gateway.clone();
    eventually(|| async {
        let ready = gw
            .directory
            .snapshot()
            .iter()
            .filter(|w| w.1 == model)
            .count();
        (ready == n).then_some(())
    })
    .await;
}

fn settings(port: u16) -> Settings {
    Settings {
        gateway: GatewaySettings {
            engine_port: port,
            flush_interval: Duration::from_millis(50),
            cooldown: Duration::from_secs(30),
            ..GatewaySettings::default()
        },
        ..Settings::default()
    }
}

async fn wait_served(app: &TestApp, model: &str) {
    eventually(|| async {
        let v: Value = app.get("/v1/models").send().await.ok()?.json().await.ok()?;
        v["data"]
            .as_array()?
            .iter()
            .any(|m| m["id"] == model)
            .then_some(())
    })
    .await;
}

async fn create_key(app: &TestApp, body: Value) -> (String, Value) {
    let r = app.post("/api/keys").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    (v["key"].as_str().unwrap().to_string(), v["api_key"].clone())
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8})
}

/// Asserts an OpenAI error body: all four keys, with this status and code.
async fn assert_openai_error(r: reqwest::Response, status: u16, code: Option<&str>) -> Value {
    assert_eq!(r.status(), status);
    assert!(r.headers().contains_key("x-request-id"));
    let v: Value = r.json().await.unwrap();
    let e = &v["error"];
    for k in ["message", "type", "param", "code"] {
        assert!(e.get(k).is_some(), "missing {k} in {v}");
    }
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    if let Some(code) = code {
        assert_eq!(e["code"], code, "{v}");
    }
    v
}

#[tokio::test]
async fn keys_authenticate_by_bearer_or_header_and_models_are_filtered() {
    let (app, _fleet) = app_with_fleet(1).await;
    let (key, view) = create_key(&app, json!({"name": "ci", "models": [MODEL]})).await;
    assert!(key.starts_with("sk-ip-") && key.len() == 70);
    assert_eq!(view["prefix"], &key[..14]);
    assert_eq!(view["status"], "active");
    let c = &app.client;
    for req in [
        c.get(app.url("/v1/models")).bearer_auth(&key),
        c.get(app.url("/v1/models")).header("x-api-key", &key),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][0]["id"], MODEL);
        assert_eq!(v["data"][0]["object"], "model");
    }
    // A key limited to another model sees nothing and may not use this one.
    let (other, _) = create_key(&app, json!({"name": "other", "models": ["x/y"]})).await;
    let v: Value = c
        .get(app.url("/v1/models"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"], json!([]));
    let r = c
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&other)
        .json(&chat(MODEL))
        .send()
        .await
        .unwrap();
    assert_openai_error(r, 403, Some("model_not_allowed")).await;
    // No key, a wrong key, a malformed key.
    for req in [
        c.get(app.url("/v1/models")),
        c.get(app.url("/v1/models"))
            .bearer_auth(format!("sk-ip-{}", "0".repeat(64))),
        c.get(app.url("/v1/models")).bearer_auth("nonsense"),
        c.get(app.url("/v1/models")).header("x-api-key", &key[..40]),
    ] {
        let r = req.send().await.unwrap();
        let v = assert_openai_error(r, 401, Some("invalid_api_key")).await;
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    // The key is in no event, and the API never shows it again.
    let hits: i64 = sqlx::query_scalar(
        "select count(*) from events where payload::text like '%' || $1 || '%' or metadata::text like '%' || $1 || '%'",
    )
    .bind(&key[14..])
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(hits, 0);
    let listed = app
        .get("/api/keys")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(&key[14..]));
    assert!(!listed.contains("key_hash"));
}

#[tokio::test]
async fn chat_completions_and_embeddings_pass_through_and_are_metered() {
    let (app, mut fleet) = app_with_fleet(1).await;
    let mut embed = engine_config("acme/embed");
    embed.embedding_models = vec!["acme/embed".into()];
    fleet.add(&app.db.pool, embed).await;
    wait_served(&app, "acme/embed").await;
    let (key, view) = create_key(&app, json!({"name": "ci"})).await;
    let c = &app.client;
    let r = c
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat(MODEL))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len()
            > 1
    );
    let usage = v["usage"].clone();
    let r = c
        .post(app.url("/v1/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": MODEL, "prompt": "Once", "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(app.url("/v1/embeddings"))
        .bearer_auth(&key)
        .json(&json!({"model": "acme/embed", "input": ["a", "b"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    // The three requests land in the usage read model, by key and model.
    let id = view["id"].as_str().unwrap().to_string();
    let rows = eventually(|| async {
        let v: Value = app
            .get("/api/usage?group_by=key,model,endpoint")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let rows = v["rows"].as_array()?.clone();
        (rows
            .iter()
            .map(|r| r["requests"].as_i64().unwrap())
            .sum::<i64>()
            == 3)
            .then_some(rows)
    })
    .await;
    let chat_row = rows
        .iter()
        .find(|r| r["endpoint"] == "chat/completions")
        .unwrap();
    assert_eq!(chat_row["key_id"], json!(id));
    assert_eq!(chat_row["prompt_tokens"], usage["prompt_tokens"]);
    assert_eq!(chat_row["completion_tokens"], usage["completion_tokens"]);
    assert!(chat_row["ttft_p50_ms"].as_u64().is_some());
    // The key shows when it was last used.
    eventually(|| async {
        let v: Value = app
            .get(&format!("/api/keys/{id}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["last_used_at"].as_str().map(|_| ())
    })
    .await;
    // Exports: CSV with a header and one line per row, JSON lines.
    let csv = app
        .get("/api/usage/export?format=csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("bucket_start,key_id,key_prefix,model,instance_id,endpoint,requests"));
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let json_lines = app
        .get("/api/usage/export?format=json")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let total: i64 = json_lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["requests"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 3);
    let costs: Value = app
        .get("/api/costs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = costs["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == MODEL)
        .unwrap();
    assert_eq!(m["instances"], 1);
    assert!(m["prompt_tokens"].as_i64().unwrap() > 0);
}

/// Reads a streaming response chunk by chunk, with the time each arrived.
async fn read_stream(r: reqwest::Response) -> (String, Vec<Duration>) {
    let start = Instant::now();
    let mut body = String::new();
    let mut times = Vec::new();
    let mut s = r.bytes_stream();
    while let Some(chunk) = s.next().await {
        body.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        times.push(start.elapsed());
    }
    (body, times)
}

#[tokio::test]
async fn streams_pass_through_as_they_are_generated_and_usage_is_only_shown_when_asked() {
    let mut fleet = Fleet::new().await;
    let app = TestApp::spawn_with(settings(fleet.port)).await;
    let mut slow = engine_config(MODEL);
    slow.ttft_ms = 20;
    slow.itl_ms = 40;
    fleet.add(&app.db.pool, slow).await;
    wait_served(&app, MODEL).await;
    let (key, _) = create_key(&app, json!({"name": "stream"})).await;
    let mut body = chat(MODEL);
    body["stream"] = json!(true);
    body["max_tokens"] = json!(10);
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (text, times) = read_stream(r).await;
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(
        !text.contains("\"choices\":[]"),
        "the usage chunk was not asked for: {text}"
    );
    // Ten tokens at 40 ms: the first chunk arrives long before the last.
    let (first, last) = (times[0], *times.last().unwrap());
    assert!(
        times.len() >= 5,
        "chunks were buffered: {} reads",
        times.len()
    );
    assert!(
        last - first >= Duration::from_millis(250),
        "first {first:?} last {last:?}"
    );
    // Asked for: the usage chunk comes through, once, before [DONE].
    body["stream_options"] = json!({"include_usage": true});
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (text, _) = read_stream(r).await;
    let usage: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"choices\":[]"))
        .collect();
    assert_eq!(usage.len(), 1, "{text}");
    let u: Value = serde_json::from_str(usage[0].trim_start_matches("data: ")).unwrap();
    assert_eq!(u["usage"]["completion_tokens"], 10);
}

#[tokio::test]
async fn bad_requests_get_openai_errors_with_the_right_status() {
    let (app, _fleet) = app_with_fleet(1).await;
    app.register("acme/unserved").await;
    let (key, _) = create_key(&app, json!({"name": "errors"})).await;
    let c = &app.client;
    let post = |path: &str| c.post(app.url(path)).bearer_auth(&key);
    let r = post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_openai_error(r, 400, None).await;
    let r = post("/v1/chat/completions")
        .json(&json!({"model": 7}))
        .send()
        .await
        .unwrap();
    let v = assert_openai_error(r, 400, None).await;
    assert_eq!(v["error"]["param"], "model");
    let r = post("/v1/chat/completions")
        .json(&json!({"model": MODEL, "stream": "yes"}))
        .send()
        .await
        .unwrap();
    assert_openai_error(r, 400, None).await;
    let r = post("/v1/chat/completions")
        .json(&chat("nobody/has-this"))
        .send()
        .await
        .unwrap();
    assert_openai_error(r, 404, Some("model_not_found")).await;
    eventually(|| async {
        let r = post("/v1/chat/completions")
            .json(&chat("acme/unserved"))
            .send()
            .await
            .ok()?;
        (r.status() == 503).then_some(())
    })
    .await;
    let r = post("/v1/chat/completions")
        .json(&chat("acme/unserved"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_openai_error(r, 503, Some("no_worker_available")).await;
    let huge = format!(
        "{{\"model\":\"{MODEL}\",\"prompt\":\"{}\"}}",
        "a".repeat(9 * 1024 * 1024)
    );
    let r = post("/v1/completions")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_openai_error(r, 413, Some("request_too_large")).await;
    let r = post("/v1/nothing-here")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_openai_error(r, 404, Some("unknown_url")).await;
    // The engine's own 4xx passes through (a prompt beyond the context window).
    let r = post("/v1/completions")
        .json(&json!({"model": MODEL, "prompt": "x", "max_tokens": 10_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The gateway still serves after all that.
    let r = post("/v1/chat/completions")
        .json(&chat(MODEL))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_revocation_is_immediate() {
    let (app, _fleet) = app_with_fleet(1).await;
    let (key, view) = create_key(&app, json!({"name": "limited", "rpm_limit": 2})).await;
    let send = || {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&chat(MODEL))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    assert_eq!(send().await.unwrap().status(), 200);
    let r = send().await.unwrap();
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "retry-after {retry}");
    let v = assert_openai_error(r, 429, Some("rate_limit_exceeded")).await;
    assert_eq!(v["error"]["type"], "rate_limit_error");
    // Raising the limit takes effect without a restart.
    let id = view["id"].as_str().unwrap();
    let r = app
        .patch(&format!("/api/keys/{id}"))
        .json(&json!({"rpm_limit": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually(|| async { (send().await.ok()?.status() == 200).then_some(()) }).await;
    let r = app.delete(&format!("/api/keys/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "revoked");
    eventually(|| async { (send().await.ok()?.status() == 401).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_a_keys_limit_exactly_and_budgets_end_with_insufficient_quota() {
    let (app, _fleet) = app_with_fleet(1).await;
    let (key, _) = create_key(&app, json!({"name": "shared", "rpm_limit": 20})).await;
    let statuses: Vec<u16> = futures::stream::iter(0..50)
        .map(|_| {
            let req = app
                .client
                .post(app.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&chat(MODEL));
            async move { req.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 30);

    let (budget, _) = create_key(&app, json!({"name": "budget", "budget_tokens": 10})).await;
    let send = || {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&budget)
            .json(&chat(MODEL))
            .send()
    };
    // One request of 8 completion tokens plus its prompt uses the budget up.
    assert_eq!(send().await.unwrap().status(), 200);
    let r = send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let v = assert_openai_error(r, 429, Some("insufficient_quota")).await;
    assert_eq!(v["error"]["type"], "insufficient_quota");
}

#[tokio::test]
async fn a_failing_worker_is_cooled_down_and_the_request_retried_elsewhere() {
    let (app, fleet) = app_with_fleet(2).await;
    let (bad, good) = (fleet.workers[0].0, fleet.workers[1].0);
    fleet.engine(bad).set_fault(Fault::Error500).unwrap();
    for _ in 0..10 {
        let r = app
            .post("/v1/chat/completions")
            .json(&chat(MODEL))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // The failing worker was tried at most once, then left alone for the cooldown.
    assert!(fleet.engine(bad).stats().requests <= 1);
    assert_eq!(fleet.engine(good).stats().succeeded, 10);
    // Every worker failing: a 502 in OpenAI's shape after a bounded number of attempts.
    fleet.engine(good).set_fault(Fault::Error500).unwrap();
    let r = app
        .post("/v1/chat/completions")
        .json(&chat(MODEL))
        .send()
        .await
        .unwrap();
    assert_openai_error(r, 502, Some("upstream_error")).await;
}

#[tokio::test]
async fn a_dead_worker_is_skipped_before_anything_reaches_the_client() {
    let (app, mut fleet) = app_with_fleet(2).await;
    let (dead_id, dead) = fleet.workers.remove(0);
    dead.kill().await.unwrap();
    let survivor = fleet.workers[0].0;
    for _ in 0..5 {
        let mut body = chat(MODEL);
        body["stream"] = json!(true);
        let r = app
            .post("/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (text, _) = read_stream(r).await;
        assert!(text.ends_with("data: [DONE]\n\n"));
    }
    assert_ne!(dead_id, survivor);
    assert_eq!(fleet.engine(survivor).stats().succeeded, 5);
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_engines_request() {
    let mut fleet = Fleet::new().await;
    let app = TestApp::spawn_with(settings(fleet.port)).await;
    let mut slow = engine_config(MODEL);
    slow.itl_ms = 50;
    let id = fleet.add(&app.db.pool, slow).await;
    wait_served(&app, MODEL).await;
    let mut body = chat(MODEL);
    body["stream"] = json!(true);
    body["max_tokens"] = json!(200);
    let r = app
        .post("/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut s = r.bytes_stream();
    s.next().await.unwrap().unwrap();
    drop(s);
    let engine = fleet.engine(id);
    eventually(|| async { (engine.stats().cancelled == 1).then_some(()) }).await;
    assert_eq!(engine.stats().in_flight, 0);
    // Recorded as 499 with the tokens streamed so far.
    let v = eventually(|| async {
        let v: Value = app.get("/api/usage").send().await.ok()?.json().await.ok()?;
        (v["totals"]["errors"] == 1).then_some(v)
    })
    .await;
    assert!(v["totals"]["completion_tokens"].as_i64().unwrap() < 200);
}

#[tokio::test]
async fn a_client_that_gives_up_before_the_answer_is_recorded_as_gone_and_the_engine_cancels() {
    let mut fleet = Fleet::new().await;
    let app = TestApp::spawn_with(settings(fleet.port)).await;
    let mut slow = engine_config(MODEL);
    slow.ttft_ms = 3_000;
    let id = fleet.add(&app.db.pool, slow).await;
    wait_served(&app, MODEL).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = impatient
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(common::TOKEN)
        .json(&chat(MODEL))
        .send()
        .await;
    assert!(r.is_err(), "the client gave up first");
    let engine = fleet.engine(id);
    eventually(|| async { (engine.stats().cancelled == 1).then_some(()) }).await;
    let v = eventually(|| async {
        let v: Value = app.get("/api/usage").send().await.ok()?.json().await.ok()?;
        (v["totals"]["requests"] == 1).then_some(v)
    })
    .await;
    assert_eq!(v["totals"]["errors"], 1, "recorded as 499: {v}");
}

#[tokio::test]
async fn sessions_stick_to_one_worker_and_only_a_leaving_workers_sessions_move() {
    let (app, fleet) = app_with_fleet(3).await;
    let worker_of = |before: &[(uuid::Uuid, u64)]| {
        fleet
            .workers
            .iter()
            .zip(before)
            .find(|((_, e), (_, n))| e.stats().requests > *n)
            .map(|((id, _), _)| *id)
            .unwrap()
    };
    let counts = || {
        fleet
            .workers
            .iter()
            .map(|(id, e)| (*id, e.stats().requests))
            .collect::<Vec<_>>()
    };
    let mut placement = Vec::new();
    for s in 0..12 {
        let session = format!("session-{s}");
        let mut seen = None;
        for _ in 0..3 {
            let before = counts();
            let r = app
                .post("/v1/chat/completions")
                .header("x-session-id", &session)
                .json(&chat(MODEL))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let w = worker_of(&before);
            assert!(seen.is_none_or(|s| s == w), "session {session} moved");
            seen = Some(w);
        }
        placement.push((session, seen.unwrap()));
    }
    // Drain one worker: its sessions move, the others stay.
    let leaving = placement[0].1;
    record_drain(&app.db.pool, leaving, 3).await;
    eventually(|| async {
        let before = counts();
        let r = app
            .post("/v1/chat/completions")
            .header("x-session-id", &placement[0].0)
            .json(&chat(MODEL))
            .send()
            .await
            .ok()?;
        (r.status() == 200 && worker_of(&before) != leaving).then_some(())
    })
    .await;
    for (session, worker) in &placement {
        let before = counts();
        app.post("/v1/chat/completions")
            .header("x-session-id", session)
            .json(&chat(MODEL))
            .send()
            .await
            .unwrap();
        let now = worker_of(&before);
        if *worker == leaving {
            assert_ne!(now, leaving);
        } else {
            assert_eq!(now, *worker, "{session} moved although its worker stayed");
        }
    }
}

#[tokio::test]
async fn a_revocation_reaches_another_gateway_process_within_a_second() {
    let (app, fleet) = app_with_fleet(1).await;
    let second = start_on(&app.db, settings(fleet.port)).await;
    let second_url = format!("http://{}", second.addr);
    let (key, view) = create_key(&app, json!({"name": "two-processes"})).await;
    let models = |base: String| {
        let client = app.client.clone();
        let key = key.clone();
        async move {
            client
                .get(format!("{base}/v1/models"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    eventually(|| async { (models(second_url.clone()).await == 200).then_some(()) }).await;
    let id = view["id"].as_str().unwrap();
    let revoked_at = Instant::now();
    assert_eq!(
        app.delete(&format!("/api/keys/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    loop {
        if models(second_url.clone()).await == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    second.shutdown().await;
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_its_grace_period_only() {
    let (app, _fleet) = app_with_fleet(1).await;
    let (old, view) = create_key(&app, json!({"name": "rotating"})).await;
    let id = view["id"].as_str().unwrap();
    let r = app
        .post(&format!("/api/keys/{id}/rotate"))
        .json(&json!({"grace_seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let new = v["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(v["api_key"]["previous_prefix"], &old[..14]);
    let status = |k: String| {
        let c = app.client.clone();
        let url = app.url("/v1/models");
        async move { c.get(url).bearer_auth(k).send().await.unwrap().status() }
    };
    eventually(|| async { (status(new.clone()).await == 200).then_some(()) }).await;
    assert_eq!(status(old.clone()).await, 200);
    // Rotating again with no grace: the previous key stops at once.
    let v: Value = app
        .post(&format!("/api/keys/{id}/rotate"))
        .json(&json!({"grace_seconds": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let newest = v["key"].as_str().unwrap().to_string();
    eventually(|| async { (status(newest.clone()).await == 200).then_some(()) }).await;
    assert_eq!(status(new).await, 401);
    assert_eq!(status(old).await, 401);
}

#[tokio::test]
async fn key_commands_refuse_bad_input_with_problem_json() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"name": ""}), None),
        (json!({"name": "x", "rpm_limit": 0}), None),
        (json!({"name": "x", "rpm_limit": "many"}), Some("rpm_limit")),
        (json!({"name": "x", "surprise": 1}), None),
        (json!({"name": "x", "models": []}), None),
        (
            json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
            None,
        ),
    ] {
        let r = app.post("/api/keys").json(&body).send().await.unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 422),
            "{body}: {}",
            r.status()
        );
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: Value = r.json().await.unwrap();
        if let Some(f) = field {
            assert_eq!(v["errors"][0]["field"], f, "{v}");
        }
    }
    let r = app
        .post("/api/keys")
        .header("idempotency-key", "k1")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let unknown = uuid::Uuid::now_v7();
    for r in [
        app.get(&format!("/api/keys/{unknown}"))
            .send()
            .await
            .unwrap(),
        app.delete(&format!("/api/keys/{unknown}"))
            .send()
            .await
            .unwrap(),
        app.post(&format!("/api/keys/{unknown}/rotate"))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.status(), 404);
    }
    // A revoked key cannot be changed; revoking it again changes nothing.
    let (_, view) = create_key(&app, json!({"name": "gone"})).await;
    let id = view["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/keys/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = app
        .patch(&format!("/api/keys/{id}"))
        .json(&json!({"name": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        app.delete(&format!("/api/keys/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let _ = model_body;
}

#[tokio::test]
async fn usage_totals_equal_what_the_engines_report_after_many_mixed_requests() {
    let requests: usize = std::env::var("GATEWAY_MIXED_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let (app, mut fleet) = app_with_fleet(3).await;
    let mut embed = engine_config("acme/embed");
    embed.embedding_models = vec!["acme/embed".into()];
    fleet.add(&app.db.pool, embed).await;
    wait_served(&app, "acme/embed").await;
    let (key, _) = create_key(&app, json!({"name": "load"})).await;
    let client = reqwest::Client::new();
    let url = app.base.clone();
    futures::stream::iter(0..requests)
        .map(|i| {
            let client = client.clone();
            let key = key.clone();
            let url = url.clone();
            async move {
                let (path, body) = match i % 4 {
                    0 => ("/v1/chat/completions", json!({"model": MODEL, "messages": [{"role": "user", "content": format!("q{i}")}], "max_tokens": 1 + i % 7})),
                    1 => ("/v1/chat/completions", json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": format!("stream {i}")}], "max_tokens": 1 + i % 5})),
                    2 => ("/v1/completions", json!({"model": MODEL, "prompt": format!("p{i}"), "max_tokens": 1 + i % 3, "stream": i % 8 == 2})),
                    _ => ("/v1/embeddings", json!({"model": "acme/embed", "input": format!("e{i}")})),
                };
                let r = client
                    .post(format!("{url}{path}"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let mut prompt = 0.0;
    let mut generated = 0.0;
    for (_, e) in &fleet.workers {
        prompt += engine_counter(e, "vllm:prompt_tokens_total").await;
        generated += engine_counter(e, "vllm:generation_tokens_total").await;
    }
    let v = eventually(|| async {
        let v: Value = app.get("/api/usage").send().await.ok()?.json().await.ok()?;
        (v["totals"]["requests"] == json!(requests)).then_some(v)
    })
    .await;
    assert_eq!(v["totals"]["errors"], 0);
    assert_eq!(v["totals"]["prompt_tokens"].as_f64().unwrap(), prompt);
    assert_eq!(
        v["totals"]["completion_tokens"].as_f64().unwrap(),
        generated
    );
}

#[tokio::test]
async fn graceful_shutdown_flushes_every_buffered_usage_record() {
    let mut fleet = Fleet::new().await;
    let mut s = settings(fleet.port);
    // Nothing would be flushed before shutdown without the drain.
    s.gateway.flush_interval = Duration::from_secs(3600);
    s.gateway.flush_records = 100_000;
    let mut app = TestApp::spawn_with(s).await;
    fleet.add(&app.db.pool, engine_config(MODEL)).await;
    wait_served(&app, MODEL).await;
    for _ in 0..25 {
        let r = app
            .post("/v1/chat/completions")
            .json(&chat(MODEL))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let flushed: i64 =
        sqlx::query_scalar("select count(*) from events where aggregate_type = 'usage'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(flushed, 0);
    app.stop().await;
    let records: i64 = sqlx::query_scalar(
        "select coalesce(sum(jsonb_array_length(payload->'UsageRecorded'->'records')), 0)::bigint
         from events where aggregate_type = 'usage'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(records, 25);
}
