//! The mock engine's OpenAI/vLLM API over real HTTP: shapes, token arithmetic, streaming,
//! stop sequences, completions, embeddings and error bodies.

mod engine_support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use engine_support::*;
use inferplane_worker::engine::{EngineConfig, MOCK_VERSION};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MODEL: &str = "mock-llm";

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

#[tokio::test]
async fn models_list_has_vllm_shape() -> TestResult {
    let engine = start(EngineConfig {
        served_model_names: vec!["llama".into(), "qwen".into()],
        embedding_models: vec!["bge".into()],
        max_model_len: 8192,
        ..fast_config()
    })
    .await;
    let (status, body) = get_json(&client(), &format!("{}/v1/models", engine.base_url())).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().ok_or("data is not a list")?;
    let ids: Vec<&str> = data.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["llama", "qwen", "bge"]);
    for card in data {
        assert_eq!(card["object"], "model");
        assert_eq!(card["owned_by"], "vllm");
        assert_eq!(card["root"], card["id"]);
        assert_eq!(card["max_model_len"], 8192);
        assert!(card["created"].as_u64().is_some_and(|c| c > 1_600_000_000));
        assert!(card["parent"].is_null());
        assert_eq!(card["permission"][0]["object"], "model_permission");
    }
    Ok(())
}

#[tokio::test]
async fn chat_answer_has_openai_shape_and_usage_arithmetic() -> TestResult {
    let engine = start(fast_config()).await;
    let client = client();
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Say hello to the world"}]},
        ],
        "max_tokens": 7,
        "temperature": 0.7,
        "top_p": 0.9,
    });
    let (status, answer) = post_json(&client, &url, &body).await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], MODEL);
    let choice = &answer["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "length");
    let content = choice["message"]["content"].as_str().ok_or("no content")?;
    assert_eq!(words(content), 7);
    // Template: 4 per message + words, 3 to open the answer.
    let prompt_tokens = (4 + 3) + (4 + 5) + 3;
    assert_eq!(answer["usage"]["prompt_tokens"], prompt_tokens);
    assert_eq!(answer["usage"]["completion_tokens"], 7);
    assert_eq!(answer["usage"]["total_tokens"], prompt_tokens + 7);

    // Deterministic: same prompt, same text; a different prompt or seed, different text.
    let (_, again) = post_json(&client, &url, &body).await?;
    assert_eq!(again["choices"][0]["message"]["content"], content);
    let mut seeded = body.clone();
    seeded["seed"] = json!(1234);
    let (_, seeded) = post_json(&client, &url, &seeded).await?;
    assert_ne!(seeded["choices"][0]["message"]["content"], content);
    let (_, other) = post_json(
        &client,
        &url,
        &chat_body(MODEL, "something else", json!({"max_tokens": 7})),
    )
    .await?;
    assert_ne!(other["choices"][0]["message"]["content"], content);

    // Without max_tokens: the default answer length, ending like an end-of-sequence token.
    let (_, natural) = post_json(&client, &url, &chat_body(MODEL, "hi", json!({}))).await?;
    assert_eq!(natural["choices"][0]["finish_reason"], "stop");
    assert_eq!(natural["usage"]["completion_tokens"], 16);
    // max_completion_tokens wins over max_tokens.
    let (_, newer) = post_json(
        &client,
        &url,
        &chat_body(
            MODEL,
            "hi",
            json!({"max_tokens": 9, "max_completion_tokens": 3}),
        ),
    )
    .await?;
    assert_eq!(newer["usage"]["completion_tokens"], 3);
    assert_eq!(newer["choices"][0]["finish_reason"], "length");
    Ok(())
}

#[tokio::test]
async fn model_may_be_omitted_and_request_id_is_echoed() -> TestResult {
    let engine = start(fast_config()).await;
    let response = client()
        .post(format!("{}/v1/chat/completions", engine.base_url()))
        .header("x-request-id", "abc123")
        .json(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}))
        .send()
        .await?;
    let answer: Value = response.json().await?;
    assert_eq!(answer["model"], MODEL);
    assert_eq!(answer["id"], "chatcmpl-abc123");
    Ok(())
}

#[tokio::test]
async fn chat_stream_chunks_role_first_done_last() -> TestResult {
    let engine = start(fast_config()).await;
    let client = client();
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let plain = chat_body(MODEL, "stream me a story", json!({"max_tokens": 5}));
    let (_, whole) = post_json(&client, &url, &plain).await?;

    let mut streaming = plain.clone();
    streaming["stream"] = json!(true);
    let response = client.post(&url).json(&streaming).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let payloads = sse_payloads(response).await.map_err(|_| "stream broke")?;
    let (chunks, done) = parse_chunks(&payloads);
    assert!(done, "[DONE] must end the stream");
    assert_eq!(chunks.len(), 1 + 5, "role chunk + one per token");
    let first = &chunks[0];
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let id = &first["id"];
    let created = &first["created"];
    let mut text = String::new();
    for (index, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(&chunk["id"], id);
        assert_eq!(&chunk["created"], created);
        assert!(
            chunk.get("usage").is_none(),
            "usage only with include_usage"
        );
        let finish = &chunk["choices"][0]["finish_reason"];
        if index == chunks.len() - 1 {
            assert_eq!(finish, "length");
        } else {
            assert!(finish.is_null());
        }
        if index > 0 {
            assert!(chunk["choices"][0]["delta"].get("role").is_none());
            text.push_str(
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or_default(),
            );
        }
    }
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
    );

    // include_usage: `usage: null` everywhere, then one extra chunk with no choices.
    streaming["stream_options"] = json!({"include_usage": true});
    let response = client.post(&url).json(&streaming).send().await?;
    let payloads = sse_payloads(response).await.map_err(|_| "stream broke")?;
    let (chunks, done) = parse_chunks(&payloads);
    assert!(done);
    assert_eq!(chunks.len(), 1 + 5 + 1);
    let (usage_chunk, others) = chunks.split_last().ok_or("no chunks")?;
    for chunk in others {
        assert!(
            chunk["usage"].is_null() && chunk.get("usage").is_some(),
            "{chunk}"
        );
    }
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"]["prompt_tokens"],
        whole["usage"]["prompt_tokens"]
    );
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 5);
    assert_eq!(
        usage_chunk["usage"]["total_tokens"],
        whole["usage"]["total_tokens"]
    );
    Ok(())
}

#[tokio::test]
async fn stop_sequences_end_text_before_them() -> TestResult {
    let engine = start(fast_config()).await;
    let client = client();
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let prompt = "tell me about stop sequences";
    let (_, full) = post_json(
        &client,
        &url,
        &chat_body(MODEL, prompt, json!({"max_tokens": 12})),
    )
    .await?;
    let text = full["choices"][0]["message"]["content"]
        .as_str()
        .ok_or("no content")?
        .to_owned();
    let fourth = text.split(' ').nth(3).ok_or("short answer")?;
    let stop = format!(" {fourth}");
    let at = text.find(&stop).ok_or("stop not in text")?;
    let expected = &text[..at];
    let expected_tokens = words(&text[..at + stop.len()]);

    for stop_field in [json!(stop), json!(["never-generated-word", stop])] {
        let body = chat_body(MODEL, prompt, json!({"max_tokens": 12, "stop": stop_field}));
        let (status, cut) = post_json(&client, &url, &body).await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(cut["choices"][0]["message"]["content"], expected);
        assert_eq!(cut["choices"][0]["finish_reason"], "stop");
        assert_eq!(cut["choices"][0]["stop_reason"], stop);
        assert_eq!(cut["usage"]["completion_tokens"], expected_tokens);
    }

    // Streaming: the same visible text, finish_reason "stop" on the last chunk.
    let body = chat_body(
        MODEL,
        prompt,
        json!({"max_tokens": 12, "stop": stop, "stream": true}),
    );
    let payloads = sse_payloads(client.post(&url).json(&body).send().await?)
        .await
        .map_err(|_| "stream broke")?;
    let (chunks, done) = parse_chunks(&payloads);
    assert!(done);
    let streamed: String = chunks
        .iter()
        .skip(1)
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, expected);
    let last = chunks.last().ok_or("no chunk")?;
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    Ok(())
}

#[tokio::test]
async fn completions_endpoint_text_batches_and_tokens() -> TestResult {
    let engine = start(fast_config()).await;
    let client = client();
    let url = format!("{}/v1/completions", engine.base_url());
    let (status, answer) = post_json(
        &client,
        &url,
        &json!({"model": MODEL, "prompt": "once upon a time", "max_tokens": 4}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("cmpl-"))
    );
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    let text = answer["choices"][0]["text"]
        .as_str()
        .ok_or("no text")?
        .to_owned();
    assert_eq!(words(&text), 4);
    assert_eq!(answer["usage"]["prompt_tokens"], 4);
    assert_eq!(answer["usage"]["completion_tokens"], 4);

    // A batch of prompts: one choice each; token-id prompts count one token per id.
    let (_, batch) = post_json(
        &client,
        &url,
        &json!({"model": MODEL, "prompt": ["once upon a time", "the end"], "max_tokens": 3}),
    )
    .await?;
    let choices = batch["choices"].as_array().ok_or("no choices")?;
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(batch["usage"]["prompt_tokens"], 6);
    assert_eq!(batch["usage"]["completion_tokens"], 6);
    let (_, tokens) = post_json(
        &client,
        &url,
        &json!({"model": MODEL, "prompt": [101, 102, 103], "max_tokens": 1}),
    )
    .await?;
    assert_eq!(tokens["usage"]["prompt_tokens"], 3);

    // Streaming: text_completion chunks whose texts add up to the same answer.
    let body = json!({
        "model": MODEL, "prompt": "once upon a time", "max_tokens": 4, "stream": true,
        "stream_options": {"include_usage": true},
    });
    let payloads = sse_payloads(client.post(&url).json(&body).send().await?)
        .await
        .map_err(|_| "stream broke")?;
    let (chunks, done) = parse_chunks(&payloads);
    assert!(done);
    let (usage_chunk, token_chunks) = chunks.split_last().ok_or("no chunks")?;
    assert_eq!(token_chunks.len(), 4);
    let streamed: String = token_chunks
        .iter()
        .map(|c| {
            assert_eq!(c["object"], "text_completion");
            c["choices"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(streamed, text);
    assert_eq!(token_chunks[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["total_tokens"], 8);
    Ok(())
}

fn as_floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_f64)
                .map(|v| v as f32)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn embeddings_float_and_base64_are_deterministic_unit_vectors() -> TestResult {
    let engine = start(EngineConfig {
        served_model_names: vec!["bge".into()],
        embedding_models: vec!["bge".into()],
        ..fast_config()
    })
    .await;
    let client = client();
    let url = format!("{}/v1/embeddings", engine.base_url());
    let (status, floats) = post_json(
        &client,
        &url,
        &json!({"model": "bge", "input": ["hello big world", "goodbye"]}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{floats}");
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["model"], "bge");
    assert_eq!(floats["usage"]["prompt_tokens"], 4);
    assert_eq!(floats["usage"]["total_tokens"], 4);
    let data = floats["data"].as_array().ok_or("no data")?;
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["object"], "embedding");
    let first = as_floats(&data[0]["embedding"]);
    assert_eq!(first.len(), 1024);
    let norm: f64 = first
        .iter()
        .map(|v| f64::from(*v).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert_ne!(first, as_floats(&data[1]["embedding"]));

    // Same input, same vector; base64 decodes to the same little-endian floats.
    let (_, again) = post_json(
        &client,
        &url,
        &json!({"model": "bge", "input": "hello big world"}),
    )
    .await?;
    assert_eq!(as_floats(&again["data"][0]["embedding"]), first);
    let (_, encoded) = post_json(
        &client,
        &url,
        &json!({"model": "bge", "input": "hello big world", "encoding_format": "base64"}),
    )
    .await?;
    let bytes = STANDARD.decode(
        encoded["data"][0]["embedding"]
            .as_str()
            .ok_or("not base64")?,
    )?;
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, first);

    // Token arrays and truncated dimensions.
    let (_, tokens) = post_json(
        &client,
        &url,
        &json!({"model": "bge", "input": [[1, 2, 3], [4]], "dimensions": 8}),
    )
    .await?;
    assert_eq!(tokens["usage"]["prompt_tokens"], 4);
    let short = as_floats(&tokens["data"][0]["embedding"]);
    assert_eq!(short.len(), 8);
    let norm: f64 = short
        .iter()
        .map(|v| f64::from(*v).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    Ok(())
}

fn assert_openai_error(body: &Value, kind: &str) {
    let error = &body["error"];
    for key in ["message", "type", "param", "code"] {
        assert!(error.get(key).is_some(), "`{key}` missing in {body}");
    }
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(error["type"], kind, "{body}");
}

#[tokio::test]
async fn errors_use_the_openai_shape() -> TestResult {
    let engine = start(EngineConfig {
        embedding_models: vec!["bge".into()],
        max_model_len: 64,
        ..fast_config()
    })
    .await;
    let client = client();
    let base = engine.base_url();
    let chat = format!("{base}/v1/chat/completions");

    let response = client
        .post(&chat)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await?;
    assert_openai_error(&body, "BadRequestError");
    assert_eq!(body["error"]["code"], 400);

    let (status, body) =
        post_json(&client, &chat, &json!({"model": MODEL, "messages": "nope"})).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_openai_error(&body, "BadRequestError");
    assert_eq!(body["error"]["param"], "messages");

    let (status, body) = post_json(&client, &chat, &chat_body("gpt-17", "hi", json!({}))).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_openai_error(&body, "NotFoundError");
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("gpt-17"))
    );

    for (url, body) in [
        (chat.clone(), chat_body(MODEL, "hi", json!({"n": 2}))),
        (
            chat.clone(),
            chat_body(MODEL, "hi", json!({"max_tokens": 1000})),
        ),
        (
            chat.clone(),
            chat_body(MODEL, "hi", json!({"temperature": -1})),
        ),
        (chat.clone(), chat_body("bge", "hi", json!({}))),
        (
            format!("{base}/v1/embeddings"),
            json!({"model": MODEL, "input": "hi"}),
        ),
        (
            format!("{base}/v1/embeddings"),
            json!({"model": "bge", "input": []}),
        ),
        (
            format!("{base}/v1/completions"),
            json!({"model": MODEL, "prompt": ""}),
        ),
    ] {
        let (status, answer) = post_json(&client, &url, &body).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        assert_openai_error(&answer, "BadRequestError");
    }

    let (status, body) = get_json(&client, &format!("{base}/v2/nothing")).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_openai_error(&body, "NotFoundError");

    let stats = engine.stats();
    assert_eq!(stats.invalid, 10);
    assert_eq!(stats.succeeded, 0);
    Ok(())
}

#[tokio::test]
async fn health_and_version() -> TestResult {
    let engine = start(fast_config()).await;
    let client = client();
    let health = client
        .get(format!("{}/health", engine.base_url()))
        .send()
        .await?;
    assert_eq!(health.status(), StatusCode::OK);
    let (status, version) = get_json(&client, &format!("{}/version", engine.base_url())).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(version["version"], MOCK_VERSION);
    assert!(MOCK_VERSION.contains("mock"));
    Ok(())
}
