//! The operator console served at `/` behind every API route.

mod common;

use common::TestApp;
use inferplane_api::Settings;

/// A built console in a temporary folder: an index and one asset.
fn built_console() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("inferplane-console-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><div id=root></div>").unwrap();
    std::fs::write(dir.join("assets/app.js"), "console.log(1)").unwrap();
    dir
}

#[tokio::test]
async fn the_console_answers_client_routes_while_api_paths_keep_their_own_answers() {
    let dir = built_console();
    let app = TestApp::spawn_with(Settings {
        ui_dir: Some(dir.clone()),
        ..Settings::default()
    })
    .await;
    let open = |path: &str| app.client.get(app.url(path)).send();

    // The app, and its client routes, without a token (it asks for one itself).
    for path in [
        "/",
        "/instances",
        "/instances/019abf0e-51c2-7a43-9d7e-0c4f2b8e1a77",
        "/audit/x",
    ] {
        let r = open(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.text().await.unwrap().contains("id=root"), "{path}");
    }
    let js = open("/assets/app.js").await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(js.text().await.unwrap(), "console.log(1)");
    // A missing asset is not answered with the page (a stale tab would run HTML as a script).
    assert_eq!(open("/assets/gone.js").await.unwrap().status(), 404);

    // API prefixes keep priority and their problem documents.
    let api = app.get("/api/nope").send().await.unwrap();
    assert_eq!(api.status(), 404);
    assert_eq!(
        api.json::<serde_json::Value>().await.unwrap()["code"],
        "not-found"
    );
    let r = open("/api").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "not-found"
    );
    // The gateway answers its own paths in OpenAI's error shape, never with the page.
    for (path, status) in [("/v1/models", 401), ("/v1", 404), ("/v1/nope", 404)] {
        let r = open(path).await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        let v = r.json::<serde_json::Value>().await.unwrap();
        assert!(v["error"]["message"].is_string(), "{path}: {v}");
    }
    assert_eq!(open("/healthz").await.unwrap().status(), 200);
    assert!(
        app.get("/api/models")
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn without_a_console_an_unknown_path_is_a_not_found_problem() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/instances")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "not-found"
    );
}
