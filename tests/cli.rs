//! The `inferplane` binary as operators run it: the demo on its embedded default, the
//! operator tools, and clear exits on bad configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_inferplane");

/// A data dir the unprivileged PostgreSQL user can enter (a 0700 temp dir would not do).
fn data_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn inferplane(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DATABASE_URL")
        .env_remove("INFERPLANE_ADMIN_TOKEN")
        .env("INFERPLANE_DATA_DIR", dir.join("data"))
        .env("INFERPLANE_LOG", "warn")
        // The tests run from the repository root: `demo` must not run npm on ui/ there.
        .env("INFERPLANE_DEMO_NO_UI_BUILD", "true");
    cmd
}

fn http_get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n{auth}\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

fn http_send(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Polls the instance until its status is `want`.
fn wait_instance(port: u16, token: &str, id: &str, want: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let (status, body) = http_get(port, &format!("/api/instances/{id}"), Some(token)).unwrap();
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["status"] == want {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "instance is {} (failure {}), not {want}",
            v["status"],
            v["failure"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_runs_on_its_embedded_default_and_stops_cleanly_on_ctrl_c() {
    let dir = data_dir("demo");
    let port = free_port();
    let mut demo = inferplane(&dir)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while http_get(port, "/readyz", None).is_none_or(|(s, _)| s != 200) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "demo never became ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let token = std::fs::read_to_string(dir.join("data/admin-token")).unwrap();
    let token = token.trim();
    assert_eq!(http_get(port, "/api/models", None).unwrap().0, 401);
    let models = loop {
        let (status, body) = http_get(port, "/api/models", Some(token)).unwrap();
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let n = v["models"].as_array().unwrap().len();
        if n >= 15 || started.elapsed() > Duration::from_secs(60) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(models >= 15, "the seed catalog is served ({models})");

    // The operator tools find the same private cluster.
    let status = inferplane(&dir)
        .args(["projections", "status", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success());
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let names: Vec<_> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert!(names.contains(&"model_catalog".into()), "{names:?}");
    assert!(names.contains(&"gpu_catalog".into()), "{names:?}");
    let seed = inferplane(&dir).args(["catalog", "seed"]).output().unwrap();
    assert!(seed.status.success());
    assert!(String::from_utf8_lossy(&seed.stdout).contains("0 registered"));

    // A GPU instance on the demo's simulated Scaleway: ready, serving, then terminated.
    let (status, body) = http_send(
        port,
        "POST",
        "/api/instances",
        token,
        Some(r#"{"model": "meta-llama/Llama-3.2-1B-Instruct"}"#),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ready = wait_instance(port, token, &id, "ready");
    assert_eq!(ready["progress"], 100);
    let ip = ready["public_ip"].as_str().unwrap();
    let engine = std::net::TcpStream::connect((ip, 8000));
    assert!(engine.is_ok(), "the VM's engine answers on {ip}:8000");
    // Its worker agent registered and heartbeats from the VM's address.
    let worker = loop {
        let (status, body) = http_get(port, &format!("/api/workers/{id}"), Some(token)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status == 200 && v["status"] == "ready" {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no heartbeat from the VM's agent: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(worker["fresh"], true);
    assert_eq!(worker["engine_url"], format!("http://{ip}:8000"));
    assert!(
        std::net::TcpStream::connect((ip, 9100)).is_ok(),
        "the VM's agent answers on {ip}:9100"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("data/worker-secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the generated worker secret is private"
    );
    // An API key from the command line, then the OpenAI-compatible gateway with it.
    let created = inferplane(&dir)
        .args(["keys", "create", "--name", "cli", "--rpm", "100"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let key = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        key.starts_with("sk-ip-") && key.len() == 70,
        "only the key on stdout: {key}"
    );
    let chat = r#"{"model": "meta-llama/Llama-3.2-1B-Instruct", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}"#;
    let answered = Instant::now();
    let (status, body) = loop {
        let (status, body) =
            http_send(port, "POST", "/v1/chat/completions", &key, Some(chat)).unwrap();
        // The gateway learns the new key from the event stream within milliseconds.
        if status != 401 || answered.elapsed() > Duration::from_secs(10) {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["usage"]["completion_tokens"], 3);

    let (status, _) =
        http_send(port, "DELETE", &format!("/api/instances/{id}"), token, None).unwrap();
    assert_eq!(status, 202);
    let gone = wait_instance(port, token, &id, "terminated");
    assert!(
        gone["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["deleted"] == true),
        "{gone}"
    );

    // SIGTERM right after a request: the usage buffered in memory is appended before exit.
    let (status, _) = http_send(port, "POST", "/v1/chat/completions", &key, Some(chat)).unwrap();
    assert_eq!(
        status, 503,
        "no worker serves the model once its instance is terminated"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(demo.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = demo.wait().unwrap();
    assert!(exit.success(), "demo exited with {exit}");
    let export = inferplane(&dir)
        .args(["usage", "export", "--format", "json", "--group-by", "key"])
        .output()
        .unwrap();
    assert!(export.status.success(), "{export:?}");
    let requests: i64 = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["requests"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(
        requests, 2,
        "both requests were recorded, the last one at shutdown"
    );
    let mut banner = String::new();
    std::io::Read::read_to_string(demo.stdout.as_mut().unwrap(), &mut banner).unwrap();
    assert!(
        banner.contains(token),
        "the banner prints the generated token"
    );
    assert!(
        !dir.join("data/postgres/postmaster.pid").exists(),
        "PostgreSQL was stopped with the demo"
    );

    // --reset removes the data dir (cluster and token) before starting afresh; here the
    // listen address is taken, so it stops right after with a usage error.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let reset = inferplane(&dir)
        .args([
            "demo",
            "--reset",
            "--listen",
            &taken.local_addr().unwrap().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        reset.status.code(),
        Some(2),
        "a taken listen address is a usage error"
    );
    assert!(String::from_utf8_lossy(&reset.stderr).contains("cannot listen"));
    assert!(
        !dir.join("data/postgres").exists(),
        "the old cluster was removed"
    );
    let new_token = std::fs::read_to_string(dir.join("data/admin-token")).unwrap();
    assert_ne!(new_token.trim(), token, "a new token was generated");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_scaleway_simulator_runs_alone_and_speaks_the_api() {
    let dir = data_dir("sim");
    let port = free_port();
    let mut sim = inferplane(&dir)
        .args(["sim", "scaleway", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let state = loop {
        if let Some((200, body)) = http_get(port, "/_sim/state", None) {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "simulator never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert!(state["servers"].as_array().unwrap().is_empty());
    // The real API's shape and auth: a token is required.
    let (status, body) = http_get(port, "/instance/v1/zones/fr-par-2/servers", None).unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("denied_authentication"), "{body}");
    let answer = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /instance/v1/zones/fr-par-2/servers HTTP/1.0\r\nHost: x\r\nX-Auth-Token: any-token\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("x-total-count"),
        "{head}"
    );
    assert!(body.contains("\"servers\""), "{body}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sim.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(sim.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_without_an_operator_token_exits_2_with_a_one_line_reason() {
    let dir = data_dir("notoken");
    let out = inferplane(&dir).args(["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("operator token is required"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_secret_given_twice_or_too_short_is_refused_without_being_echoed() {
    let dir = data_dir("secret");
    let file = dir.join("token");
    std::fs::write(&file, "from-a-file-0123456789\n").unwrap();
    let out = inferplane(&dir)
        .args(["serve"])
        .env("INFERPLANE_ADMIN_TOKEN", "hunter2-hunter2-hunter2")
        .env("INFERPLANE_ADMIN_TOKEN_FILE", &file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only one"), "{err}");
    assert!(!err.contains("hunter2") && !err.contains("from-a-file"));

    let out = inferplane(&dir)
        .args(["serve"])
        .env("INFERPLANE_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("short\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_ssh_installer_without_a_usable_key_or_with_a_token_twice_exits_2_without_echoing_it() {
    let dir = data_dir("ssh-config");
    let out = inferplane(&dir)
        .args(["demo", "--installer", "ssh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INFERPLANE_SSH_KEY_FILE"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("hf");
    std::fs::write(&token_file, "hf_fromfile0123\n").unwrap();
    let out = inferplane(&dir)
        .args([
            "demo",
            "--installer",
            "ssh",
            "--ssh-key-file",
            "/nonexistent",
        ])
        .env("INFERPLANE_HF_TOKEN", "hf_fromenv0123")
        .env("INFERPLANE_HF_TOKEN_FILE", &token_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only one"), "{err}");
    assert!(!err.contains("hf_from"), "{err}");

    // serve over SSH without a worker secret would install agents that can never register.
    let out = inferplane(&dir)
        .args(["serve", "--ssh-key-file", "/nonexistent"])
        .env("INFERPLANE_ADMIN_TOKEN", "an-operator-token-long-enough")
        .env_remove("INFERPLANE_WORKER_SECRET")
        .env_remove("INFERPLANE_WORKER_SECRET_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INFERPLANE_WORKER_SECRET_FILE"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rebuilding_an_unknown_projection_names_the_known_ones() {
    let dir = data_dir("rebuild");
    let out = inferplane(&dir)
        .args(["projections", "rebuild", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model_catalog"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_postgresql_binaries_are_a_clear_usage_error_saying_how_to_install_them() {
    let dir = data_dir("nobin");
    let empty = dir.join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = inferplane(&dir)
        .args(["migrate"])
        .env("INFERPLANE_PG_BIN", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install postgresql"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An instance requested and provisioned through the store, as the API and a process manager
/// would; returns its id and the position of each of its events.
async fn stored_instance(db: &inferplane_store::testing::TestDatabase) -> (String, Vec<i64>) {
    use inferplane_domain::instance::{Instance, InstanceCommand as C, RequestInstance};
    use inferplane_domain::{Actor, EventMetadata};
    use inferplane_store::{CommandContext, EventStore};

    let store = EventStore::new(db.pool.clone());
    let id = uuid::Uuid::now_v7().to_string();
    let request = C::Request(RequestInstance {
        model_id: uuid::Uuid::now_v7(),
        model_repo: "Qwen/Qwen2.5-0.5B-Instruct".into(),
        model_required_vram_gb: 4,
        model_active: true,
        zone: "fr-par-2".into(),
        allowed_zones: vec![],
        instance_type: "L4-1-24G".into(),
        gpu_count: 1,
        vram_per_gpu_gb: 24,
        type_available_in_zone: true,
        hourly_price_micro_eur: 750_000,
        data_volume_gb: 50,
        vllm_mode: Default::default(),
    });
    let mut positions = Vec::new();
    for (actor, command) in [
        (Actor::operator("admin"), request),
        (
            Actor::processor("provisioning"),
            C::StartProvisioning {
                zone: "fr-par-2".into(),
                attempt: 1,
            },
        ),
        (
            Actor::processor("provisioning"),
            C::RecordServerCreated {
                server_id: "srv-42".into(),
                zone: "fr-par-2".into(),
                commercial_type: "L4-1-24G".into(),
            },
        ),
    ] {
        let ctx = CommandContext::new(EventMetadata::new_command(actor));
        let o = store
            .execute::<Instance>(&id, command, &(), &ctx)
            .await
            .unwrap();
        positions.push(o.last_position.unwrap());
    }
    (id, positions)
}

#[tokio::test]
async fn replay_prints_an_instance_history_and_its_state_at_any_point() {
    let db = inferplane_store::testing::TestDatabase::new().await;
    let (id, positions) = stored_instance(&db).await;
    let dir = data_dir("replay");
    let replay = |args: &[&str]| {
        inferplane(&dir)
            .args(["replay", "instance"])
            .args(args)
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap()
    };

    let out = replay(&[&id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let history = v["history"].as_array().unwrap();
    let types: Vec<_> = history.iter().map(|e| e["event_type"].clone()).collect();
    assert_eq!(
        types,
        vec![
            serde_json::json!("InstanceRequested"),
            serde_json::json!("ProvisioningStarted"),
            serde_json::json!("ServerCreated")
        ]
    );
    assert_eq!(history[0]["actor"], "operator:admin");
    assert_eq!(history[0]["position"], positions[0]);
    assert_eq!(history[1]["actor"], "processor:provisioning");
    assert_eq!(history[1]["status_after"], "provisioning");
    assert_eq!(history[2]["progress_after"], 20);
    assert_eq!(history[2]["summary"], "srv-42 (L4-1-24G in fr-par-2)");
    assert_eq!(v["state"]["id"], id.as_str());
    assert_eq!(v["state"]["status"], "provisioning");
    assert_eq!(v["state"]["server"]["server_id"], "srv-42");
    assert_eq!(v["state"]["version"], 3);
    assert_eq!(v["state"]["hourly_price_eur"], "0.750000");

    // At the first event's position: only the request.
    let out = replay(&[&id, "--json", "--at", &positions[0].to_string()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["history"].as_array().unwrap().len(), 1);
    assert_eq!(v["state"]["status"], "requested");
    assert_eq!(v["state"]["server"], serde_json::Value::Null);

    // The table, for people.
    let out = replay(&[&id]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with(" POSITION TIME"), "{table}");
    assert!(table.contains("InstanceRequested"), "{table}");
    assert!(table.contains("processor:provisioning"), "{table}");
    assert!(
        table.contains("status    provisioning (20%), version 3"),
        "{table}"
    );
    assert!(table.contains("server    srv-42 (no public IP)"), "{table}");

    // Before the instance existed, unknown instance, malformed input.
    for (args, code, reason) in [
        (
            vec![id.as_str(), "--at", "2001-01-01T00:00:00Z"],
            1,
            "did not exist yet",
        ),
        (
            vec!["00000000-0000-0000-0000-000000000001"],
            1,
            "no instance 00000000-0000-0000-0000-000000000001",
        ),
        (vec!["not-an-id"], 2, "is not an instance id"),
        (vec![id.as_str(), "--at", "last tuesday"], 2, "--at:"),
    ] {
        let out = replay(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(reason), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
