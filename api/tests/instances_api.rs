//! Instances over HTTP: requests with defaults from the catalog, the operator's actions, the
//! read model (progress, cost, IP, volumes), the auditor's `state?at=`, and bad input.
//!
//! No process manager runs here: the instance is driven through its life by executing the
//! aggregate's `Record…` commands on the store, as the processors would.

mod common;

use common::{TestApp, eventually, l4_body, model_body, zone_body};
use inferplane_domain::instance::FailureCode;
use inferplane_domain::instance::{Instance, InstanceCommand, LogStream, ReadinessCheck};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::{CommandContext, EventStore};
use serde_json::{Value, json};

async fn problem(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    let body: Value = r.json().await.unwrap();
    let code = body["code"].as_str().unwrap().to_string();
    (status, code, body)
}

/// The field a problem names.
fn field(p: &Value) -> &str {
    p["errors"][0]["field"].as_str().unwrap_or("")
}

/// Three zones; L4-1-24G (0.75 EUR/h) available in fr-par-2 and scarce in nl-ams-1; L4-2-24G
/// (1.50) available in fr-par-2, short in nl-ams-1; H100-1-80G (2.73) available in fr-par-1.
/// Models: an 8B needing 24 GB, a 14B needing 48 GB, and an inactive one.
async fn seed(app: &TestApp) {
    for z in ["fr-par-1", "fr-par-2", "nl-ams-1"] {
        app.create("/api/zones", &zone_body(z)).await;
    }
    app.create(
        "/api/instance-types",
        &l4_body(1, json!({"fr-par-2": "available", "nl-ams-1": "scarce"})),
    )
    .await;
    app.create(
        "/api/instance-types",
        &l4_body(2, json!({"fr-par-2": "available", "nl-ams-1": "shortage"})),
    )
    .await;
    let h100 = app
        .create(
            "/api/instance-types",
            &json!({
                "code": "H100-1-80G", "gpu_model": "H100", "gpu_count": 1,
                "vram_per_gpu_gb": 80, "vcpus": 24, "ram_gb": 240,
                "hourly_price_micro_eur": 2_730_000,
                "availability": {"fr-par-1": "available"}
            }),
        )
        .await;
    app.register("meta-llama/Llama-3.1-8B-Instruct").await;
    let mut big = model_body("Qwen/Qwen2.5-14B-Instruct");
    big["required_vram_gb"] = json!(48);
    big["parameter_count"] = json!(14_800_000_000i64);
    app.create("/api/models", &big).await;
    let mut off = model_body("org/retired");
    off["active"] = json!(false);
    app.create("/api/models", &off).await;
    // Defaults are chosen from the catalog read model: wait until it has everything.
    app.wait_for_version(
        &format!("/api/instance-types/{}", h100["id"].as_str().unwrap()),
        1,
    )
    .await;
    eventually(|| async {
        let v: Value = app.get("/api/zones").send().await.ok()?.json().await.ok()?;
        (v["zones"].as_array()?.len() == 3).then_some(())
    })
    .await;
}

/// Executes the aggregate's commands as a process manager would.
struct Driver {
    store: EventStore,
}

impl Driver {
    fn of(app: &TestApp) -> Self {
        Self {
            store: EventStore::new(app.db.pool.clone()),
        }
    }

    /// Runs `command` on instance `id`; returns its version and the last position written.
    async fn run(&self, id: &str, command: InstanceCommand) -> (i64, Option<i64>) {
        let ctx = CommandContext::new(EventMetadata::new_command(Actor::processor("test")));
        let o = self
            .store
            .execute::<Instance>(id, command, &(), &ctx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (o.version, o.last_position)
    }

    /// From `requested` to `ready` in fr-par-2 with volume `vol-1`, server `srv-1` and IP
    /// 51.15.0.10. Returns the positions of the server running and of the instance ready.
    async fn to_ready(&self, id: &str) -> (i64, i64) {
        use InstanceCommand as C;
        for c in [
            C::StartProvisioning {
                zone: "fr-par-2".into(),
                attempt: 1,
            },
            C::RecordVolumeCreated {
                volume_id: "vol-1".into(),
                zone: "fr-par-2".into(),
                size_gb: 100,
            },
            C::RecordServerCreated {
                server_id: "srv-1".into(),
                zone: "fr-par-2".into(),
                commercial_type: "L4-1-24G".into(),
            },
            C::RecordVolumeAttached {
                volume_id: "vol-1".into(),
            },
            C::RecordPowerOnRequested { attempt: 1 },
        ] {
            self.run(id, c).await;
        }
        let (_, running) = self
            .run(
                id,
                C::RecordServerRunning {
                    public_ip: "51.15.0.10".into(),
                },
            )
            .await;
        for c in [
            C::RecordSshAccessible {
                host_key_fingerprint: "SHA256:pinned".into(),
            },
            C::RecordPhaseStarted {
                name: "start".into(),
            },
            C::RecordPhaseLogged {
                name: "start".into(),
                stream: LogStream::Stdout,
                chunk: "hello\n".into(),
            },
            C::RecordPhaseCompleted {
                name: "start".into(),
                duration_ms: 12,
                exit_code: 0,
            },
            C::RecordInstallCompleted,
        ] {
            self.run(id, c).await;
        }
        for check in ReadinessCheck::ALL {
            self.run(
                id,
                C::RecordReadinessCheck {
                    check,
                    ok: true,
                    duration_ms: 3,
                    detail: "ok".into(),
                },
            )
            .await;
        }
        let (_, ready) = self.run(id, C::MarkReady).await;
        (running.unwrap(), ready.unwrap())
    }
}

async fn request(app: &TestApp, body: Value) -> Value {
    app.create("/api/instances", &body).await
}

fn without_cost(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("cost_micro_eur");
    o.remove("cost_eur");
    v
}

#[tokio::test]
async fn a_request_takes_its_defaults_from_the_catalog_and_the_read_model_follows() {
    let app = TestApp::spawn().await;
    seed(&app).await;

    let r = app
        .post("/api/instances")
        .json(&json!({"model": "meta-llama/Llama-3.1-8B-Instruct"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["etag"], "\"1\"");
    assert!(r.headers().contains_key("x-event-position"));
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/instances/{id}"));
    assert_eq!(
        uuid::Uuid::parse_str(id).unwrap().get_version_num(),
        7,
        "ids are UUID v7"
    );
    // The first active zone (by code) where a fitting type can be provisioned is fr-par-1,
    // where the cheapest (and only) fit is the H100.
    assert_eq!(v["zone"], "fr-par-1");
    assert_eq!(v["instance_type"], "H100-1-80G");
    assert_eq!(v["allowed_zones"], json!(["fr-par-1"]));
    assert_eq!(v["status"], "requested");
    assert_eq!(v["progress"], 5);
    assert_eq!(v["data_volume_gb"], 100, "the model's data volume");
    assert_eq!(v["model_repo"], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(v["hourly_price_micro_eur"], 2_730_000);
    assert_eq!(v["hourly_price_eur"], "2.730000");
    assert_eq!(v["vllm_mode"], "mono");
    assert_eq!(v["volumes"], json!([]));
    assert_eq!(v["public_ip"], Value::Null);
    assert_eq!(v["ready_at"], Value::Null);
    assert_eq!(v["terminated_at"], Value::Null);
    assert!(v["cost_micro_eur"].as_i64().unwrap() >= 0);

    let read = app.wait_for_version(&location, 1).await;
    assert_eq!(
        without_cost(read),
        without_cost(v.clone()),
        "the read model equals the aggregate's view"
    );

    // A zone given: the cheapest fitting type available there.
    let v = request(
        &app,
        json!({"model": "meta-llama/Llama-3.1-8B-Instruct", "zone": "nl-ams-1"}),
    )
    .await;
    assert_eq!(
        (v["zone"].as_str(), v["instance_type"].as_str()),
        (Some("nl-ams-1"), Some("L4-1-24G"))
    );
    // A type given: the first active zone where it can be provisioned (short in nl-ams-1).
    let v = request(
        &app,
        json!({"model": "Qwen/Qwen2.5-14B-Instruct", "instance_type": "l4-2-24g"}),
    )
    .await;
    assert_eq!(
        (v["zone"].as_str(), v["instance_type"].as_str()),
        (Some("fr-par-2"), Some("L4-2-24G"))
    );
    assert_eq!(v["data_volume_gb"], 120);
    // Everything explicit, by model id, with fallbacks and a multi-process layout.
    let model_id = v["model_id"].as_str().unwrap().to_string();
    let v = request(
        &app,
        json!({
            "model": model_id, "zone": "fr-par-2", "instance_type": "L4-2-24G",
            "data_volume_gb": 300, "allowed_zones": ["nl-ams-1", "fr-par-2"],
            "vllm_mode": "multi"
        }),
    )
    .await;
    assert_eq!(v["model_repo"], "Qwen/Qwen2.5-14B-Instruct");
    assert_eq!(v["data_volume_gb"], 300);
    assert_eq!(v["allowed_zones"], json!(["fr-par-2", "nl-ams-1"]));
    assert_eq!(v["vllm_mode"], "multi");
    assert_eq!(v["gpu_count"], 2);
}

#[tokio::test]
async fn requests_the_catalog_or_the_aggregate_refuse_are_problems_naming_the_field() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let before = app.event_count().await;
    let llama = "meta-llama/Llama-3.1-8B-Instruct";
    let cases = [
        (
            json!({"model": "nobody/nothing"}),
            422,
            "unknown-model",
            "model",
        ),
        (
            json!({"model": "00000000-0000-0000-0000-000000000009"}),
            422,
            "unknown-model",
            "model",
        ),
        (
            json!({"model": llama, "zone": "pl-waw-2"}),
            422,
            "unknown-zone",
            "zone",
        ),
        (
            json!({"model": llama, "zone": "Paris 2"}),
            422,
            "invalid-zone",
            "zone",
        ),
        (
            json!({"model": llama, "allowed_zones": ["fr-par-2", "xx-none-1"]}),
            422,
            "unknown-zone",
            "allowed_zones[1]",
        ),
        (
            json!({"model": llama, "instance_type": "B300-8-288G"}),
            422,
            "unknown-instance-type",
            "instance_type",
        ),
        (
            json!({"model": llama, "instance_type": "L4 1"}),
            422,
            "invalid-instance-type",
            "instance_type",
        ),
        (
            json!({"model": "Qwen/Qwen2.5-14B-Instruct", "zone": "fr-par-2", "instance_type": "L4-1-24G"}),
            422,
            "incompatible-model",
            "instance_type",
        ),
        (
            json!({"model": llama, "zone": "nl-ams-1", "instance_type": "L4-2-24G"}),
            409,
            "type-not-available-in-zone",
            "",
        ),
        (
            json!({"model": "org/retired"}),
            409,
            "model-inactive",
            "model",
        ),
        (
            json!({"model": llama, "data_volume_gb": 5}),
            422,
            "invalid-data-volume",
            "data_volume_gb",
        ),
        // 48 GB fits nothing offered in nl-ams-1 (L4-2-24G is short there).
        (
            json!({"model": "Qwen/Qwen2.5-14B-Instruct", "zone": "nl-ams-1"}),
            422,
            "no-placement",
            "instance_type",
        ),
        (
            json!({"model": llama, "data_volume_gb": "big"}),
            400,
            "invalid-request",
            "data_volume_gb",
        ),
        (
            json!({"model": llama, "vllm_mode": "duo"}),
            400,
            "invalid-request",
            "vllm_mode",
        ),
        (
            json!({"model": llama, "gpus": 2}),
            400,
            "invalid-request",
            "gpus",
        ),
        (json!({"zone": "fr-par-2"}), 400, "invalid-request", ""),
    ];
    for (body, status, code, at) in cases {
        let r = app.post("/api/instances").json(&body).send().await.unwrap();
        let (s, c, p) = problem(r).await;
        assert_eq!((s, c.as_str()), (status, code), "{body} {p}");
        assert_eq!(field(&p), at, "{body} {p}");
    }
    let r = app
        .post("/api/instances")
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.1, "invalid-request");
    let r = app
        .post("/api/instances")
        .body("model=x")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 415);
    assert_eq!(app.event_count().await, before, "nothing was appended");
}

#[tokio::test]
async fn a_retried_request_with_the_same_idempotency_key_returns_the_same_instance() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let body = json!({"model": "meta-llama/Llama-3.1-8B-Instruct", "zone": "fr-par-2"});
    let post = |body: Value| {
        app.post("/api/instances")
            .header("idempotency-key", "req-llama-1")
            .json(&body)
            .send()
    };
    let before = app.event_count().await;
    let first = post(body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    let first: Value = first.json().await.unwrap();
    let again = post(body.clone()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], location);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(without_cost(again), without_cost(first));
    let (status, code, _) = problem(
        post(json!({"model": "meta-llama/Llama-3.1-8B-Instruct", "zone": "nl-ams-1"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "idempotency-key-reused"));
    assert_eq!(
        app.event_count().await,
        before + 1,
        "one instance requested"
    );
}

#[tokio::test]
async fn the_read_model_follows_an_instance_through_its_life_and_state_replays_any_point() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let drive = Driver::of(&app);
    let r = app
        .post("/api/instances")
        .json(&json!({"model": "meta-llama/Llama-3.1-8B-Instruct", "zone": "fr-par-2"}))
        .send()
        .await
        .unwrap();
    let requested_at: i64 = r.headers()["x-event-position"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let path = format!("/api/instances/{id}");
    let (running_at, ready_at) = drive.to_ready(&id).await;

    let history: Value = app
        .get(&format!("{path}/history"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = history["events"].as_array().unwrap();
    let version = events.len() as i64;
    assert_eq!(events[0]["event_type"], "InstanceRequested");
    assert_eq!(events.last().unwrap()["event_type"], "InstanceReady");

    let read = app.wait_for_version(&path, version).await;
    assert_eq!(read["status"], "ready");
    assert_eq!(read["progress"], 100);
    assert_eq!(read["public_ip"], "51.15.0.10");
    assert_eq!(read["server"]["server_id"], "srv-1");
    assert_eq!(
        read["volumes"],
        json!([{"volume_id": "vol-1", "zone": "fr-par-2", "size_gb": 100, "attached": true, "deleted": false}])
    );
    assert_eq!(read["install"]["phases"][0]["log_bytes"], 6);
    assert!(read["ready_at"].is_string());
    assert_eq!(read["terminated_at"], Value::Null);
    let r = app.get(&path).send().await.unwrap();
    assert_eq!(r.headers()["etag"], format!("\"{version}\""));

    // The auditor's replay at several points.
    let state_at = |at: String| {
        let app = &app;
        let path = path.clone();
        async move {
            app.get(&format!("{path}/state?at={at}"))
                .send()
                .await
                .unwrap()
        }
    };
    let s: Value = state_at(requested_at.to_string())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["at"], requested_at);
    assert_eq!(s["position"], requested_at);
    assert_eq!(
        (s["version"].as_i64(), s["events_applied"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["state"]["status"], "requested");
    assert_eq!(s["state"]["public_ip"], Value::Null);
    let s: Value = state_at(running_at.to_string()).await.json().await.unwrap();
    assert_eq!(s["state"]["status"], "booting");
    assert_eq!(s["state"]["progress"], 40);
    assert_eq!(s["state"]["public_ip"], "51.15.0.10");
    assert_eq!(s["version"], 7);
    let s: Value = state_at(ready_at.to_string()).await.json().await.unwrap();
    assert_eq!(s["state"]["status"], "ready");
    assert_eq!(s["version"], version);
    let s: Value = app
        .get(&format!("{path}/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["at"], Value::Null);
    assert_eq!(s["version"], version);
    // By time: at the ready event's time, and long before the request.
    let ready_time = events.last().unwrap()["recorded_at"]
        .as_str()
        .unwrap()
        .to_string();
    let s: Value = state_at(ready_time.replace('+', "%2B"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["state"]["status"], "ready");
    let (status, code, _) = problem(state_at("2001-01-01T00:00:00Z".into()).await).await;
    assert_eq!((status, code.as_str()), (404, "instance-not-found"));
    let (status, code, _) = problem(state_at("0".into()).await).await;
    assert_eq!((status, code.as_str()), (404, "instance-not-found"));
    for bad in ["yesterday", "-3", "999999999"] {
        let (status, code, p) = problem(state_at(bad.into()).await).await;
        assert_eq!(
            (status, code.as_str(), field(&p)),
            (422, "invalid-at", "at"),
            "{bad}"
        );
    }

    // Drain, then terminate with a reason: the terminator would delete the resources.
    let r = app.post(&format!("{path}/drain")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let drained: Value = r.json().await.unwrap();
    assert_eq!(drained["status"], "draining");
    assert_eq!(
        drained["ready_at"], read["ready_at"],
        "the answer keeps the first ready time"
    );
    let read = app.wait_for_version(&path, version + 1).await;
    assert_eq!(without_cost(read), without_cost(drained));
    let r = app
        .delete(&format!("{path}?reason=load%20is%20gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "terminating");
    assert_eq!(v["terminate_reason"], "load is gone");
    assert_eq!(
        v["terminated_at"],
        Value::Null,
        "still billed until cleaned up"
    );
    let (status, code, _) =
        problem(app.post(&format!("{path}/archive")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (409, "illegal-transition"));
    use InstanceCommand as C;
    drive
        .run(
            &id,
            C::RecordServerDeleted {
                server_id: "srv-1".into(),
            },
        )
        .await;
    let (status, code, _) =
        problem(app.post(&format!("{path}/archive")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (409, "illegal-transition"));
    drive
        .run(
            &id,
            C::RecordVolumeDeleted {
                volume_id: "vol-1".into(),
            },
        )
        .await;
    let (version, _) = drive.run(&id, C::ConfirmTerminated).await;
    let read = app.wait_for_version(&path, version).await;
    assert_eq!(read["status"], "terminated");
    assert_eq!(read["progress"], 100, "progress keeps the value reached");
    let terminated_at = read["terminated_at"].as_str().unwrap();
    let seconds = (chrono::DateTime::parse_from_rfc3339(terminated_at).unwrap()
        - chrono::DateTime::parse_from_rfc3339(read["requested_at"].as_str().unwrap()).unwrap())
    .num_seconds();
    assert_eq!(
        read["cost_micro_eur"].as_i64().unwrap(),
        750_000 * seconds / 3600,
        "the hourly price over the whole seconds billed"
    );
    // Billing ended: the cost no longer moves.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again: Value = app.get(&path).send().await.unwrap().json().await.unwrap();
    assert_eq!(again["cost_micro_eur"], read["cost_micro_eur"]);

    let r = app.post(&format!("{path}/archive")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "archived");
    let read = app.wait_for_version(&path, version + 1).await;
    assert_eq!(
        read["terminated_at"], terminated_at,
        "billing ended at termination"
    );
    let list = |q: &'static str| {
        let app = &app;
        async move {
            let v: Value = app
                .get(&format!("/api/instances{q}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["total"].as_i64().unwrap()
        }
    };
    assert_eq!(
        list("").await,
        0,
        "archived instances are hidden by default"
    );
    assert_eq!(list("?status=archived").await, 1);
}

#[tokio::test]
async fn operator_actions_in_the_wrong_state_are_409_problems_with_the_aggregate_code() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let drive = Driver::of(&app);
    let v = request(
        &app,
        json!({"model": "meta-llama/Llama-3.1-8B-Instruct", "zone": "fr-par-2"}),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_string();
    let path = format!("/api/instances/{id}");
    for action in ["reinstall", "archive", "drain"] {
        let r = app.post(&format!("{path}/{action}")).send().await.unwrap();
        let (status, code, p) = problem(r).await;
        assert_eq!(
            (status, code.as_str()),
            (409, "illegal-transition"),
            "{action}"
        );
        assert!(
            p["detail"].as_str().unwrap().contains("requested"),
            "{action}: {p}"
        );
    }
    // Failed while provisioning, a volume left: neither archived nor reinstalled.
    use InstanceCommand as C;
    drive
        .run(
            &id,
            C::StartProvisioning {
                zone: "fr-par-2".into(),
                attempt: 1,
            },
        )
        .await;
    drive
        .run(
            &id,
            C::RecordVolumeCreated {
                volume_id: "vol-9".into(),
                zone: "fr-par-2".into(),
                size_gb: 100,
            },
        )
        .await;
    drive
        .run(
            &id,
            C::Fail {
                code: FailureCode::ProviderOutOfStock,
                message: "no L4 left".into(),
            },
        )
        .await;
    let r = app.post(&format!("{path}/archive")).send().await.unwrap();
    let (status, code, p) = problem(r).await;
    assert_eq!((status, code.as_str()), (409, "resources-remain"), "{p}");
    let r = app.post(&format!("{path}/reinstall")).send().await.unwrap();
    let (status, code, _) = problem(r).await;
    assert_eq!((status, code.as_str()), (409, "no-server"));
    let read = app.wait_for_version(&path, 4).await;
    assert_eq!(read["status"], "failed");
    assert_eq!(read["failure"]["code"], "PROVIDER_OUT_OF_STOCK");
    assert_eq!(
        read["terminated_at"],
        Value::Null,
        "a volume is still billed"
    );
    let (version, _) = drive
        .run(
            &id,
            C::RecordVolumeDeleted {
                volume_id: "vol-9".into(),
            },
        )
        .await;
    let read = app.wait_for_version(&path, version).await;
    assert!(
        read["terminated_at"].is_string(),
        "failed with nothing left"
    );

    // If-Match guards the operator's actions too.
    let r = app
        .delete(&path)
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.1, "conflict");
    let r = app
        .delete(&path)
        .header("if-match", format!("\"{version}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = app.delete(&path).send().await.unwrap();
    assert_eq!(r.status(), 202, "terminating again changes nothing");
    assert!(!r.headers().contains_key("x-event-position"));
}

#[tokio::test]
async fn the_list_filters_sorts_and_pages() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let drive = Driver::of(&app);
    let llama = "meta-llama/Llama-3.1-8B-Instruct";
    let a = request(&app, json!({"model": llama, "zone": "fr-par-2"})).await;
    let b = request(&app, json!({"model": llama, "zone": "nl-ams-1"})).await;
    let c = request(&app, json!({"model": llama})).await;
    let d = request(&app, json!({"model": "Qwen/Qwen2.5-14B-Instruct"})).await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    drive.to_ready(&id(&a)).await;
    let last = drive
        .run(
            &id(&b),
            InstanceCommand::StartProvisioning {
                zone: "nl-ams-1".into(),
                attempt: 1,
            },
        )
        .await
        .0;
    app.wait_for_version(&format!("/api/instances/{}", id(&b)), last)
        .await;
    let a_path = format!("/api/instances/{}", id(&a));
    eventually(|| async {
        let v: Value = app.get(&a_path).send().await.ok()?.json().await.ok()?;
        (v["status"] == "ready").then_some(())
    })
    .await;

    let ids = |q: String| {
        let app = &app;
        async move {
            let r = app.get(&format!("/api/instances{q}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{q}");
            let v: Value = r.json().await.unwrap();
            let ids: Vec<String> = v["instances"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string())
                .collect();
            (ids, v)
        }
    };
    let (all, page) = ids(String::new()).await;
    assert_eq!(all, vec![id(&d), id(&c), id(&b), id(&a)], "newest first");
    assert_eq!(
        (page["total"].as_i64(), page["next_offset"].as_i64()),
        (Some(4), None)
    );
    assert_eq!(page["instances"][3]["progress"], 100);
    assert_eq!(page["instances"][3]["public_ip"], "51.15.0.10");
    assert_eq!(page["instances"][3]["volumes"][0]["volume_id"], "vol-1");
    assert!(page["instances"][3]["cost_eur"].is_string());

    assert_eq!(
        ids("?sort=requested_at".into()).await.0,
        vec![id(&a), id(&b), id(&c), id(&d)]
    );
    assert_eq!(ids("?status=ready".into()).await.0, vec![id(&a)]);
    assert_eq!(
        ids("?status=ready,provisioning".into()).await.0,
        vec![id(&b), id(&a)]
    );
    assert_eq!(
        ids("?sort=status".into()).await.0,
        vec![id(&d), id(&c), id(&b), id(&a)],
        "life-cycle order: requested, provisioning, ready"
    );
    assert_eq!(ids("?sort=-progress".into()).await.0[0], id(&a));
    assert_eq!(
        ids("?model=META-LLAMA/llama-3.1-8b-instruct".into())
            .await
            .0,
        vec![id(&c), id(&b), id(&a)]
    );
    let qwen = d["model_id"].as_str().unwrap();
    assert_eq!(ids(format!("?model={qwen}")).await.0, vec![id(&d)]);
    assert_eq!(ids("?zone=nl-ams-1".into()).await.0, vec![id(&b)]);
    assert_eq!(
        ids("?sort=zone".into()).await.0,
        vec![id(&d), id(&c), id(&a), id(&b)],
        "fr-par-1 (newest first), fr-par-2, nl-ams-1"
    );
    // The H100s (2.73 EUR/h) cost the most per second; the ready L4 has been billed longest.
    let (by_cost, page) = ids("?sort=-cost".into()).await;
    assert_eq!(by_cost.len(), 4);
    let costs: Vec<i64> = page["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["cost_micro_eur"].as_i64().unwrap())
        .collect();
    assert!(costs.windows(2).all(|w| w[0] >= w[1]), "{costs:?}");

    let (first, page) = ids("?limit=3".into()).await;
    assert_eq!(first, all[..3]);
    assert_eq!(page["next_offset"], 3);
    let (rest, page) = ids("?limit=3&offset=3".into()).await;
    assert_eq!(rest, all[3..]);
    assert_eq!(page["next_offset"], Value::Null);
    assert_eq!(ids("?offset=10".into()).await.1["total"], 4);

    for (q, code, at) in [
        ("?limit=0", "invalid-request", "limit"),
        ("?limit=501", "invalid-request", "limit"),
        ("?offset=-1", "invalid-request", "offset"),
        ("?sort=price", "invalid-request", "sort"),
        ("?status=ready,broken", "invalid-request", "status"),
        ("?zone=mars-1", "unknown-zone", "zone"),
        ("?colour=red", "invalid-request", "query"),
        ("?limit=ten", "invalid-request", "query"),
    ] {
        let r = app.get(&format!("/api/instances{q}")).send().await.unwrap();
        let (status, c, p) = problem(r).await;
        assert_eq!((status, c.as_str(), field(&p)), (400, code, at), "{q}");
    }
}

#[tokio::test]
async fn unknown_instances_are_404_problems() {
    let app = TestApp::spawn().await;
    let nobody = "00000000-0000-0000-0000-000000000001";
    let cases = [
        (
            "GET",
            format!("/api/instances/{nobody}"),
            "instance-not-found",
        ),
        (
            "GET",
            format!("/api/instances/{nobody}/history"),
            "instance-not-found",
        ),
        (
            "GET",
            format!("/api/instances/{nobody}/state"),
            "instance-not-found",
        ),
        (
            "GET",
            format!("/api/instances/{nobody}/state?at=5"),
            "instance-not-found",
        ),
        (
            "DELETE",
            format!("/api/instances/{nobody}"),
            "instance-not-found",
        ),
        (
            "POST",
            format!("/api/instances/{nobody}/reinstall"),
            "instance-not-found",
        ),
        (
            "POST",
            format!("/api/instances/{nobody}/archive"),
            "instance-not-found",
        ),
        (
            "POST",
            format!("/api/instances/{nobody}/drain"),
            "instance-not-found",
        ),
        ("GET", "/api/instances/not-a-uuid".to_string(), "not-found"),
    ];
    for (method, path, code) in cases {
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(common::TOKEN)
            .send()
            .await
            .unwrap();
        let (status, c, _) = problem(r).await;
        assert_eq!((status, c.as_str()), (404, code), "{method} {path}");
    }
    let r = app
        .client
        .get(app.url("/api/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the operator token is required");
    assert_eq!(app.event_count().await, 0);
}
