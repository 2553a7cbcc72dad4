//! The official OpenAI Python SDK against the mock engine, unchanged: list, chat, stream,
//! completions, embeddings (the SDK asks for base64 by default), errors.
//!
//! Skipped, with the reason printed, when `python3` or its `openai` package is missing
//! (`pip install openai` enables it).

mod engine_support;

use std::time::Duration;

use engine_support::*;
use inferplane_worker::engine::EngineConfig;
use tokio::process::Command;

const SCRIPT: &str = r#"
import sys
import openai
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="not-checked", max_retries=0)

ids = [model.id for model in client.models.list().data]
assert ids == ["mock-llm", "bge"], ids

messages = [{"role": "user", "content": "hello from the sdk"}]
chat = client.chat.completions.create(model="mock-llm", messages=messages, max_tokens=5)
assert chat.choices[0].finish_reason == "length", chat
assert chat.usage.completion_tokens == 5, chat.usage
assert chat.usage.prompt_tokens == 4 + 4 + 3, chat.usage
assert len(chat.choices[0].message.content.split()) == 5, chat

stream = client.chat.completions.create(
    model="mock-llm", messages=messages, max_tokens=5, stream=True,
    stream_options={"include_usage": True},
)
parts, usage, roles = [], None, []
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.role:
            roles.append(choice.delta.role)
        if choice.delta.content:
            parts.append(choice.delta.content)
assert roles == ["assistant"], roles
assert "".join(parts) == chat.choices[0].message.content, parts
assert usage is not None and usage.total_tokens == chat.usage.total_tokens, usage

completion = client.completions.create(model="mock-llm", prompt="once upon a time", max_tokens=3)
assert completion.choices[0].finish_reason == "length", completion
assert completion.usage.prompt_tokens == 4, completion.usage

default_encoding = client.embeddings.create(model="bge", input=["a b", "c"])
assert len(default_encoding.data) == 2
vector = default_encoding.data[0].embedding
assert len(vector) == 1024, len(vector)
assert abs(sum(x * x for x in vector) - 1.0) < 1e-3
floats = client.embeddings.create(model="bge", input="a b", encoding_format="float")
assert all(abs(a - b) < 1e-6 for a, b in zip(floats.data[0].embedding, vector))

try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as error:
    assert error.status_code == 404

try:
    client.chat.completions.create(model="mock-llm", messages=messages, n=3)
    raise AssertionError("n=3 accepted")
except openai.BadRequestError as error:
    assert error.status_code == 400

print("openai sdk ok")
"#;

async fn sdk_available() -> Result<(), String> {
    let probe = Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .await
        .map_err(|err| format!("python3 not runnable: {err}"))?;
    if probe.status.success() {
        Ok(())
    } else {
        Err(format!(
            "python package `openai` missing ({})",
            String::from_utf8_lossy(&probe.stderr).trim()
        ))
    }
}

#[tokio::test]
async fn official_python_sdk_works_unchanged() -> TestResult {
    if let Err(reason) = sdk_available().await {
        eprintln!(
            "SKIPPED official_python_sdk_works_unchanged: {reason}; `pip install openai` enables it"
        );
        return Ok(());
    }
    let engine = start(EngineConfig {
        embedding_models: vec!["bge".into()],
        ..fast_config()
    })
    .await;
    let run = Command::new("python3")
        .args(["-c", SCRIPT, &engine.openai_base_url()])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("openai sdk ok"),
        "sdk script failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    Ok(())
}
