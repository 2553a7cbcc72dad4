//! The official OpenAI Python SDK against the gateway, unchanged but for the base URL and the
//! key: list, chat, stream (with and without the usage chunk), completions, embeddings, and a
//! bad key.
//!
//! Needs `python3` with the `openai` package (`.ci/run` installs it). Skipped with the reason
//! printed when it is missing, except under `CI=true`, where a missing SDK fails the test.

mod common;

use std::time::Duration;

use common::fleet::{Fleet, engine_config};
use common::{TestApp, eventually};
use inferplane_api::Settings;
use inferplane_gateway::GatewaySettings;
use serde_json::{Value, json};
use tokio::process::Command;

const SCRIPT: &str = r#"
import sys
import openai
from openai import OpenAI

base, key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base, api_key=key, max_retries=0)

ids = sorted(model.id for model in client.models.list().data)
assert ids == ["acme/chat-7b", "acme/embed"], ids

messages = [{"role": "user", "content": "hello through the gateway"}]
chat = client.chat.completions.create(model="acme/chat-7b", messages=messages, max_tokens=5)
assert chat.choices[0].finish_reason == "length", chat
assert chat.usage.completion_tokens == 5, chat.usage

stream = client.chat.completions.create(
    model="acme/chat-7b", messages=messages, max_tokens=5, stream=True,
    stream_options={"include_usage": True},
)
parts, usage = [], None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
assert "".join(parts) == chat.choices[0].message.content, parts
assert usage is not None and usage.total_tokens == chat.usage.total_tokens, usage

# Without include_usage, no chunk carries usage (the gateway asked for it, and removed it).
stream = client.chat.completions.create(
    model="acme/chat-7b", messages=messages, max_tokens=5, stream=True)
chunks = list(stream)
assert all(c.usage is None for c in chunks), chunks[-1]
assert all(len(c.choices) == 1 for c in chunks)

completion = client.completions.create(model="acme/chat-7b", prompt="once upon a time", max_tokens=3)
assert completion.choices[0].finish_reason == "length", completion

embedding = client.embeddings.create(model="acme/embed", input=["a b", "c"])
assert len(embedding.data) == 2 and len(embedding.data[0].embedding) == 1024

try:
    client.chat.completions.create(model="no-such/model", messages=messages)
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as error:
    assert error.status_code == 404

bad = OpenAI(base_url=base, api_key="sk-ip-" + "0" * 64, max_retries=0)
try:
    bad.models.list()
    raise AssertionError("bad key accepted")
except openai.AuthenticationError as error:
    assert error.status_code == 401
    assert error.code == "invalid_api_key", error.code

print("openai sdk through the gateway ok")
"#;

async fn sdk_available() -> Result<(), String> {
    let probe = Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .await
        .map_err(|e| format!("python3 is not runnable: {e}"))?;
    if probe.status.success() {
        Ok(())
    } else {
        Err("the Python package `openai` is not installed".into())
    }
}

#[tokio::test]
async fn the_official_python_sdk_works_unchanged_against_the_gateway() {
    if let Err(reason) = sdk_available().await {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the SDK test: {reason}"
        );
        eprintln!("skipped: {reason} (pip install openai)");
        return;
    }
    let mut fleet = Fleet::new().await;
    let app = TestApp::spawn_with(Settings {
        gateway: GatewaySettings {
            engine_port: fleet.port,
            ..GatewaySettings::default()
        },
        ..Settings::default()
    })
    .await;
    fleet.add(&app.db.pool, engine_config("acme/chat-7b")).await;
    let mut embed = engine_config("acme/embed");
    embed.embedding_models = vec!["acme/embed".into()];
    fleet.add(&app.db.pool, embed).await;
    let r = app
        .post("/api/keys")
        .json(&json!({"name": "sdk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let key = v["key"].as_str().unwrap().to_string();
    eventually(|| async {
        let v: Value = app
            .client
            .get(app.url("/v1/models"))
            .bearer_auth(&key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["data"].as_array()?.len() == 2).then_some(())
    })
    .await;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("python3")
            .args(["-c", SCRIPT, &app.url("/v1"), &key])
            .output(),
    )
    .await
    .expect("the SDK script finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("openai sdk through the gateway ok"));
}
