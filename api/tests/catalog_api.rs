//! The GPU catalog over HTTP: zones, instance types, availability, compatibility with models,
//! and bad input.

mod common;

use common::{TestApp, l4_body, zone_body};
use serde_json::{Value, json};

async fn problem(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    let body: Value = r.json().await.unwrap();
    (status, body["code"].as_str().unwrap().to_string())
}

/// Two zones, and L4-1-24G / L4-2-24G available in fr-par-2 only.
async fn small_catalog(app: &TestApp) -> (Value, Value) {
    app.create("/api/zones", &zone_body("fr-par-2")).await;
    app.create("/api/zones", &zone_body("nl-ams-1")).await;
    let one = app
        .create(
            "/api/instance-types",
            &l4_body(1, json!({"fr-par-2": "available"})),
        )
        .await;
    let two = app
        .create(
            "/api/instance-types",
            &l4_body(2, json!({"fr-par-2": "scarce"})),
        )
        .await;
    (one, two)
}

#[tokio::test]
async fn registering_zones_and_types_answers_from_the_aggregate_and_the_read_model_follows() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/api/zones")
        .json(&zone_body("fr-par-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["etag"], "\"1\"");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let zone: Value = r.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/zones/{}", zone["id"].as_str().unwrap())
    );
    assert_eq!(
        (zone["provider"].as_str(), zone["code"].as_str()),
        (Some("scaleway"), Some("fr-par-2"))
    );
    assert_eq!(app.wait_for_version(&location, 1).await, zone);

    let r = app
        .post("/api/instance-types")
        .json(&l4_body(1, json!({"fr-par-2": "available"})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().contains_key("x-event-position"));
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["code"], "L4-1-24G");
    assert_eq!(t["total_vram_gb"], 24);
    assert_eq!(t["hourly_price_micro_eur"], 750_000);
    assert_eq!(t["hourly_price_eur"], "0.750000");
    assert_eq!(t["availability"], json!({"fr-par-2": "available"}));
    assert_eq!(
        app.wait_for_version(&location, 1).await,
        t,
        "the read model equals the aggregate"
    );

    let list = |q: &'static str| {
        let app = &app;
        async move {
            let v: Value = app
                .get(&format!("/api/instance-types{q}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["instance_types"].as_array().unwrap().len()
        }
    };
    assert_eq!(list("").await, 1);
    assert_eq!(list("?zone=fr-par-2&active=true").await, 1);
    assert_eq!(list("?active=false").await, 0);
    assert_eq!(list("?availability=shortage").await, 0);
    let zones: Value = app
        .get("/api/zones")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(zones["zones"].as_array().unwrap().len(), 1);
    let (status, code) = problem(
        app.get("/api/instance-types?zone=xx-nowhere-9")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "unknown-zone"));
}

#[tokio::test]
async fn updating_a_price_needs_the_current_etag() {
    let app = TestApp::spawn().await;
    let (one, _) = small_catalog(&app).await;
    let path = format!("/api/instance-types/{}", one["id"].as_str().unwrap());
    let r = app
        .patch(&path)
        .header("if-match", "\"1\"")
        .json(&json!({"hourly_price_micro_eur": 820_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"2\"");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["hourly_price_eur"], "0.820000");

    let r = app
        .patch(&path)
        .header("if-match", "\"1\"")
        .json(&json!({"hourly_price_micro_eur": 900_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (409, "conflict".to_string()));
    let read = app.wait_for_version(&path, 2).await;
    assert_eq!(read["hourly_price_micro_eur"], 820_000);
    let history: Value = app
        .get(&format!("{path}/history"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types: Vec<_> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(
        types,
        vec![
            json!("InstanceTypeRegistered"),
            json!("InstanceTypeUpdated")
        ]
    );
}

#[tokio::test]
async fn availability_is_set_and_cleared_per_registered_zone() {
    let app = TestApp::spawn().await;
    let (one, _) = small_catalog(&app).await;
    let base = format!(
        "/api/instance-types/{}/availability",
        one["id"].as_str().unwrap()
    );
    let r = app
        .put(&format!("{base}/nl-ams-1"))
        .json(&json!({"availability": "scarce"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["availability"],
        json!({"fr-par-2": "available", "nl-ams-1": "scarce"})
    );

    let r = app
        .delete(&format!("{base}/fr-par-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["availability"], json!({"nl-ams-1": "scarce"}));
    assert_eq!(v["version"], 3);
    let read = app
        .wait_for_version(
            &format!("/api/instance-types/{}", one["id"].as_str().unwrap()),
            3,
        )
        .await;
    assert_eq!(read["availability"], json!({"nl-ams-1": "scarce"}));

    let cases = [
        (
            "pl-waw-2",
            json!({"availability": "available"}),
            422,
            "unknown-zone",
        ),
        (
            "PL_WAW",
            json!({"availability": "available"}),
            422,
            "invalid-zone-code",
        ),
        (
            "nl-ams-1",
            json!({"availability": "plenty"}),
            400,
            "invalid-request",
        ),
        (
            "nl-ams-1",
            json!({"availability": "scarce", "why": 1}),
            400,
            "invalid-request",
        ),
    ];
    for (zone, body, status, code) in cases {
        let r = app
            .put(&format!("{base}/{zone}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem(r).await,
            (status, code.to_string()),
            "{zone} {body}"
        );
    }
}

#[tokio::test]
async fn compatible_types_are_those_with_enough_vram_offered_in_the_zone() {
    let app = TestApp::spawn().await;
    let (_, two) = small_catalog(&app).await;
    let model = app.register("Qwen/Qwen2.5-14B-Instruct").await;
    let id = model["id"].as_str().unwrap();
    app.patch(&format!("/api/models/{id}"))
        .json(&json!({"required_vram_gb": 48, "parameter_count": 14_800_000_000i64}))
        .send()
        .await
        .unwrap();
    app.wait_for_model(id, 2).await;
    app.wait_for_version(
        &format!("/api/instance-types/{}", two["id"].as_str().unwrap()),
        1,
    )
    .await;

    let compatible = |q: String| {
        let app = &app;
        async move {
            let r = app
                .get(&format!("/api/models/{id}/compatible-types{q}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let v = compatible("?zone=fr-par-2".into()).await;
    assert_eq!(v["required_vram_gb"], 48);
    assert_eq!(v["recommended_data_volume_gb"], 120);
    assert_eq!(v["zone"], "fr-par-2");
    let codes: Vec<_> = v["instance_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].clone())
        .collect();
    assert_eq!(
        codes,
        vec![json!("L4-2-24G")],
        "2 x 24 GB fits 48 GB, 1 x 24 GB does not"
    );
    assert_eq!(v["instance_types"][0]["hourly_price_eur"], "1.500000");
    assert_eq!(
        compatible(String::new()).await["instance_types"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        compatible("?zone=nl-ams-1".into()).await["instance_types"],
        json!([])
    );

    // Deactivated types are not offered.
    let r = app
        .post(&format!(
            "/api/instance-types/{}/deactivate",
            two["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.wait_for_version(
        &format!("/api/instance-types/{}", two["id"].as_str().unwrap()),
        2,
    )
    .await;
    assert_eq!(
        compatible("?zone=fr-par-2".into()).await["instance_types"],
        json!([])
    );

    let r = app
        .get(&format!("/api/models/{id}/compatible-types?zone=mars-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (400, "unknown-zone".to_string()));
    let r = app
        .get("/api/models/00000000-0000-0000-0000-000000000000/compatible-types")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (404, "model-not-found".to_string()));
}

#[tokio::test]
async fn bad_input_gets_problem_json_and_appends_nothing() {
    let app = TestApp::spawn().await;
    app.create("/api/zones", &zone_body("fr-par-2")).await;
    let before = app.event_count().await;
    let with = |field: &str, value: Value| {
        let mut b = l4_body(1, json!({}));
        b[field] = value;
        b
    };
    let cases = [
        (
            "/api/instance-types",
            with("hourly_price_micro_eur", json!(-750_000)),
            422,
            "invalid-price",
        ),
        (
            "/api/instance-types",
            with("gpu_count", json!(0)),
            422,
            "invalid-gpu-count",
        ),
        (
            "/api/instance-types",
            with("code", json!("L4 1")),
            422,
            "invalid-instance-type-code",
        ),
        (
            "/api/instance-types",
            with("availability", json!({"Paris 2": "available"})),
            422,
            "invalid-zone-code",
        ),
        (
            "/api/instance-types",
            with("availability", json!({"fr-par-9": "available"})),
            422,
            "unknown-zone",
        ),
        (
            "/api/instance-types",
            with("gpu_count", json!("two")),
            400,
            "invalid-request",
        ),
        (
            "/api/instance-types",
            with("hourly_price_eur", json!(0.75)),
            400,
            "invalid-request",
        ),
        (
            "/api/zones",
            zone_body("FR-PAR-2"),
            422,
            "invalid-zone-code",
        ),
        (
            "/api/zones",
            json!({"code": "fr-par-3", "colour": "blue"}),
            400,
            "invalid-request",
        ),
        (
            "/api/zones",
            json!({"code": "fr-par-3", "provider": "aws"}),
            400,
            "invalid-request",
        ),
        (
            "/api/zones",
            zone_body("fr-par-2"),
            409,
            "zone-already-registered",
        ),
    ];
    for (path, body, status, code) in cases {
        let r = app.post(path).json(&body).send().await.unwrap();
        assert_eq!(
            problem(r).await,
            (status, code.to_string()),
            "{path} {body}"
        );
    }
    let r = app
        .post("/api/instance-types")
        .json(&with("gpu_count", json!("two")))
        .send()
        .await
        .unwrap();
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "gpu_count");
    assert_eq!(app.event_count().await, before, "nothing was appended");
}

#[tokio::test]
async fn unknown_ids_are_404_problems() {
    let app = TestApp::spawn().await;
    let nobody = "00000000-0000-0000-0000-000000000001";
    let cases = [
        ("GET", format!("/api/zones/{nobody}"), "zone-not-found"),
        (
            "GET",
            format!("/api/zones/{nobody}/history"),
            "zone-not-found",
        ),
        (
            "POST",
            format!("/api/zones/{nobody}/activate"),
            "zone-not-found",
        ),
        (
            "GET",
            format!("/api/instance-types/{nobody}"),
            "instance-type-not-found",
        ),
        (
            "GET",
            format!("/api/instance-types/{nobody}/history"),
            "instance-type-not-found",
        ),
        (
            "POST",
            format!("/api/instance-types/{nobody}/deactivate"),
            "instance-type-not-found",
        ),
        (
            "DELETE",
            format!("/api/instance-types/{nobody}/availability/fr-par-2"),
            "instance-type-not-found",
        ),
        (
            "GET",
            "/api/instance-types/not-a-uuid".to_string(),
            "not-found",
        ),
    ];
    for (method, path, code) in cases {
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(common::TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(problem(r).await, (404, code.to_string()), "{method} {path}");
    }
    let r = app
        .patch(&format!("/api/zones/{nobody}"))
        .json(&json!({"display_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (404, "zone-not-found".to_string()));
}

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_returns_the_first_result() {
    let app = TestApp::spawn().await;
    let post = |body: Value| {
        app.post("/api/zones")
            .header("idempotency-key", "zone-par2")
            .json(&body)
            .send()
    };
    let first = post(zone_body("fr-par-2")).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = post(zone_body("fr-par-2")).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let (status, code) = problem(post(zone_body("nl-ams-1")).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (422, "idempotency-key-reused"));
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn zones_are_renamed_deactivated_and_reactivated_with_their_history() {
    let app = TestApp::spawn().await;
    let zone = app.create("/api/zones", &zone_body("fr-par-1")).await;
    let path = format!("/api/zones/{}", zone["id"].as_str().unwrap());
    let r = app
        .patch(&path)
        .header("if-match", "\"1\"")
        .json(&json!({"display_name": "Paris DC2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (action, active) in [
        ("deactivate", false),
        ("deactivate", false),
        ("activate", true),
    ] {
        let r = app.post(&format!("{path}/{action}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["active"], active);
    }
    let read = app.wait_for_version(&path, 4).await;
    assert_eq!(
        (read["display_name"].as_str(), read["active"].as_bool()),
        (Some("Paris DC2"), Some(true))
    );
    let history: Value = app
        .get(&format!("{path}/history"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types: Vec<_> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(
        types,
        vec![
            json!("ZoneRegistered"),
            json!("ZoneRenamed"),
            json!("ZoneDeactivated"),
            json!("ZoneActivated")
        ]
    );
}
