//! The model catalog over HTTP: commands, queries, history, and every kind of bad input.

mod common;

use common::{TOKEN, TestApp, model_body};
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_metrics_are_open_but_the_api_needs_the_operator_token() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["migrations"], "applied");

    for (token, case) in [(None, "missing"), (Some("wrong-token-xxxxxxxx"), "wrong")] {
        for (method, path) in [
            ("GET", "/api/models"),
            ("POST", "/api/models"),
            ("GET", "/api/events"),
            ("GET", "/api/events/stream"),
        ] {
            let mut req = app
                .client
                .request(method.parse().unwrap(), app.url(path))
                .json(&model_body("org/never"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{case} token on {method} {path}");
            assert!(r.headers().contains_key("www-authenticate"));
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "unauthorized");
        }
    }
    assert_eq!(app.event_count().await, 0, "nothing was appended");
}

#[tokio::test]
async fn registering_a_model_answers_from_the_aggregate_and_the_catalog_follows() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/api/models")
        .header("x-request-id", "req-register-1")
        .json(&model_body("meta-llama/Llama-3.1-8B-Instruct"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-request-id"], "req-register-1");
    assert_eq!(r.headers()["etag"], "\"1\"");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let created: Value = r.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/models/{}", created["id"].as_str().unwrap())
    );
    assert_eq!(created["data_volume_gb"], 100);
    assert_eq!(created["data_volume_computed"], true);
    assert_eq!(created["active"], true);
    assert_eq!(created["task"], "generate");

    let id = created["id"].as_str().unwrap();
    let read = app.wait_for_model(id, 1).await;
    assert_eq!(read, created, "the read model equals the aggregate's view");

    let list: Value = app
        .get("/api/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["models"].as_array().unwrap().len(), 1);

    // The request id and the operator are recorded with the event.
    let history: Value = app
        .get(&format!("/api/models/{id}/history"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = &history["events"][0];
    assert_eq!(event["event_type"], "ModelRegistered");
    assert_eq!(event["sequence"], 1);
    assert_eq!(event["metadata"]["request_id"], "req-register-1");
    assert_eq!(
        event["metadata"]["actor"],
        json!({"kind": "operator", "id": "admin"})
    );
    assert!(event["metadata"]["correlation_id"].is_string());
}

#[tokio::test]
async fn update_activate_and_deactivate_record_events_in_order() {
    let app = TestApp::spawn().await;
    let created = app.register("org/model").await;
    let id = created["id"].as_str().unwrap();

    let r = app
        .patch(&format!("/api/models/{id}"))
        .header("if-match", "\"1\"")
        .json(&json!({"display_name": "Renamed", "parameter_count": 70_000_000_000i64}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["display_name"], "Renamed");
    assert_eq!(
        updated["data_volume_gb"], 450,
        "the computed volume follows the size"
    );

    for (action, active) in [("deactivate", false), ("activate", true)] {
        let r = app
            .post(&format!("/api/models/{id}/{action}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["active"], active);
    }
    // Activating an active model changes nothing and appends nothing.
    let r = app
        .post(&format!("/api/models/{id}/activate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.event_count().await, 4);

    let read = app.wait_for_model(id, 4).await;
    assert_eq!(read["display_name"], "Renamed");
    let history: Value = app
        .get(&format!("/api/models/{id}/history"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ModelRegistered",
            "ModelUpdated",
            "ModelDeactivated",
            "ModelActivated"
        ]
    );
}

async fn problem(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn bad_input_gets_problem_json_naming_the_field_and_appends_nothing() {
    let app = TestApp::spawn_with(inferplane_api::Settings {
        body_limit_bytes: 4096,
        ..Default::default()
    })
    .await;
    let raw = |body: &str| {
        app.post("/api/models")
            .header("content-type", "application/json")
            .body(body.to_string())
    };

    let (status, p) = problem(raw("{\"hf_repo_id\": ").send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(p["code"], "invalid-request");

    let mut wrong_type = model_body("org/a");
    wrong_type["required_vram_gb"] = json!("lots");
    let (status, p) = problem(
        app.post("/api/models")
            .json(&wrong_type)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(p["errors"][0]["field"], "required_vram_gb");
    assert!(p["detail"].as_str().unwrap().contains("required_vram_gb"));

    let mut unknown = model_body("org/a");
    unknown["colour"] = json!("blue");
    let (status, p) = problem(app.post("/api/models").json(&unknown).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(p["detail"].as_str().unwrap().contains("colour"), "{p}");

    let mut missing = model_body("org/a");
    missing.as_object_mut().unwrap().remove("context_length");
    let (status, p) = problem(app.post("/api/models").json(&missing).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(
        p["detail"].as_str().unwrap().contains("context_length"),
        "{p}"
    );

    let (status, _) = problem(
        app.post("/api/models")
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 415);

    let huge = format!("{{\"hf_repo_id\": \"{}\"}}", "x".repeat(10_000));
    let (status, p) = problem(raw(&huge).send().await.unwrap()).await;
    assert_eq!(status, 413);
    assert_eq!(p["code"], "body-too-large");

    let mut zero_vram = model_body("org/a");
    zero_vram["required_vram_gb"] = json!(0);
    let (status, p) = problem(
        app.post("/api/models")
            .json(&zero_vram)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, p["code"].as_str().unwrap()), (422, "invalid-vram"));

    let (status, p) = problem(
        app.post("/api/models")
            .json(&model_body("not a repo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str().unwrap()),
        (422, "invalid-repo-id")
    );

    let latin1 = reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap();
    let (status, p) = problem(
        app.post("/api/models")
            .header("idempotency-key", latin1)
            .json(&model_body("org/a"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status, 400,
        "an unreadable Idempotency-Key is refused, not ignored"
    );
    assert_eq!(p["errors"][0]["field"], "idempotency-key");

    assert_eq!(app.event_count().await, 0);

    app.register("org/a").await;
    let (status, p) = problem(
        app.post("/api/models")
            .json(&model_body("ORG/A"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str().unwrap()),
        (409, "model-already-registered")
    );
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn unknown_ids_and_routes_are_404_problems() {
    let app = TestApp::spawn().await;
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/models/{unknown}"),
        format!("/api/models/{unknown}/history"),
        "/api/models/not-a-uuid".to_string(),
        "/api/nothing-here".to_string(),
    ] {
        let (status, _) = problem(app.get(&path).send().await.unwrap()).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, p) = problem(
        app.client
            .delete(app.url("/api/models"))
            .bearer_auth(common::TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str().unwrap()),
        (405, "method-not-allowed")
    );
    let (status, p) = problem(
        app.post(&format!("/api/models/{unknown}/activate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str().unwrap()),
        (404, "model-not-found")
    );
    let (status, _) = problem(
        app.patch(&format!("/api/models/{unknown}"))
            .json(&json!({"display_name": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_returns_the_first_result() {
    let app = TestApp::spawn().await;
    let send = |body: Value| {
        app.post("/api/models")
            .header("idempotency-key", "create-llama-1")
            .json(&body)
            .send()
    };
    let first = send(model_body("org/model")).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let first: Value = first.json().await.unwrap();

    let retry = send(model_body("org/model")).await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first);
    assert_eq!(app.event_count().await, 1);

    let (status, p) = problem(send(model_body("org/other")).await.unwrap()).await;
    assert_eq!(
        (status, p["code"].as_str().unwrap()),
        (422, "idempotency-key-reused")
    );
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_conflicting_updates_let_exactly_one_win() {
    let app = TestApp::spawn().await;
    let created = app.register("org/model").await;
    let id = created["id"].as_str().unwrap().to_string();
    let attempts = (0..10).map(|i| {
        let req = app
            .patch(&format!("/api/models/{id}"))
            .header("if-match", "\"1\"")
            .json(&json!({"display_name": format!("Name {i}")}));
        async move { req.send().await.unwrap() }
    });
    let responses = futures::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn list_filters_by_activity_task_and_text() {
    let app = TestApp::spawn().await;
    let a = app.register("org/alpha").await;
    app.register("org/beta").await;
    let mut embed = model_body("org/embedder");
    embed["task"] = json!("embed");
    assert_eq!(
        app.post("/api/models")
            .json(&embed)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let id = a["id"].as_str().unwrap();
    app.post(&format!("/api/models/{id}/deactivate"))
        .send()
        .await
        .unwrap();
    app.wait_for_model(id, 2).await;
    common::eventually(|| async {
        let v: Value = app
            .get("/api/models")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["models"].as_array()?.len() == 3).then_some(())
    })
    .await;

    let names = |v: Value| -> Vec<String> {
        v["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["hf_repo_id"].as_str().unwrap().to_string())
            .collect()
    };
    let app = &app;
    let get = |q: &'static str| async move {
        app.get(&format!("/api/models{q}"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(names(get("?active=false").await), ["org/alpha"]);
    assert_eq!(names(get("?task=embed").await), ["org/embedder"]);
    assert_eq!(names(get("?q=BET").await), ["org/beta"]);
    let r = app.get("/api/models?active=maybe").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = app.get("/api/models?colour=blue").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let _ = TOKEN;
}

#[tokio::test]
async fn idempotency_keys_are_forgotten_after_their_time_to_live() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/api/models")
        .header("idempotency-key", "k")
        .json(&model_body("org/model"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let count = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from command_idempotency")
            .fetch_one(&app.db.pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1);
    // A process with a zero time-to-live sweeps on start.
    let sweeper = common::start_on(
        &app.db,
        inferplane_api::Settings {
            idempotency_ttl: std::time::Duration::ZERO,
            ..Default::default()
        },
    )
    .await;
    common::eventually(|| async { (count().await == 0).then_some(()) }).await;
    sweeper.shutdown().await;
}
