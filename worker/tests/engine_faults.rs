//! Injected faults of the mock engine, set at start, over HTTP and through the handle.

mod engine_support;

use std::time::{Duration, Instant};

use engine_support::*;
use inferplane_worker::engine::{EngineConfig, Fault};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MODEL: &str = "mock-llm";

async fn set_fault_http(
    client: &reqwest::Client,
    base: &str,
    fault: Value,
) -> Result<(StatusCode, Value), reqwest::Error> {
    post_json(client, &format!("{base}/_mock/faults"), &fault).await
}

#[tokio::test]
async fn error_500_fails_inference_but_not_the_model_list() -> TestResult {
    let engine = start(EngineConfig {
        embedding_models: vec!["bge".into()],
        ..fast_config()
    })
    .await;
    let client = client();
    let base = engine.base_url();
    let (status, echoed) = set_fault_http(&client, &base, json!({"mode": "error_500"})).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echoed, json!({"mode": "error_500"}));
    assert_eq!(engine.fault(), Fault::Error500);

    for (path, body) in [
        ("/v1/chat/completions", chat_body(MODEL, "hi", json!({}))),
        ("/v1/completions", json!({"model": MODEL, "prompt": "hi"})),
        ("/v1/embeddings", json!({"model": "bge", "input": "hi"})),
    ] {
        let (status, answer) = post_json(&client, &format!("{base}{path}"), &body).await?;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(answer["error"]["type"], "InternalServerError");
        assert_eq!(answer["error"]["code"], 500);
    }
    let (status, _) = get_json(&client, &format!("{base}/v1/models")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(engine.stats().failed, 3);

    engine.set_fault(Fault::None)?;
    let (status, _) = post_json(
        &client,
        &format!("{base}/v1/chat/completions"),
        &chat_body(MODEL, "hi", json!({})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn dead_engine_fails_health_and_every_v1_route() -> TestResult {
    let engine = start(EngineConfig {
        fault: Fault::Dead,
        ..fast_config()
    })
    .await;
    let client = client();
    let base = engine.base_url();
    assert_eq!(
        client.get(format!("{base}/health")).send().await?.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, body) = get_json(&client, &format!("{base}/v1/models")).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["type"], "ServiceUnavailableError");
    let (status, _) = post_json(
        &client,
        &format!("{base}/v1/chat/completions"),
        &chat_body(MODEL, "hi", json!({})),
    )
    .await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Metrics and the mock controls stay up, so a test can revive it.
    assert_eq!(
        client.get(format!("{base}/metrics")).send().await?.status(),
        StatusCode::OK
    );
    let (_, stats) = get_json(&client, &format!("{base}/_mock/stats")).await?;
    assert_eq!(stats["fault"], json!({"mode": "dead"}));
    assert_eq!(stats["rejected"], 1);
    set_fault_http(&client, &base, json!({"mode": "none"})).await?;
    assert_eq!(
        client.get(format!("{base}/health")).send().await?.status(),
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn die_mid_stream_truncates_without_done() -> TestResult {
    let engine = start(EngineConfig {
        fault: "die_mid_stream:3".parse()?,
        ..fast_config()
    })
    .await;
    let client = client();
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let body = chat_body(MODEL, "hi", json!({"max_tokens": 10, "stream": true}));
    let response = client.post(&url).json(&body).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let payloads = match sse_payloads(response).await {
        Ok(complete) => return Err(format!("stream completed: {complete:?}").into()),
        Err(partial) => partial,
    };
    assert!(!payloads.iter().any(|p| p == "[DONE]"));
    let (chunks, _) = parse_chunks(&payloads);
    assert_eq!(
        chunks.len(),
        1 + 3,
        "role chunk and three tokens before dying"
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );

    // Non-streaming: the connection drops before a complete answer.
    let cut = client
        .post(&url)
        .json(&chat_body(MODEL, "hi", json!({"max_tokens": 10})))
        .send()
        .await;
    let body_result = match cut {
        Ok(response) => response.bytes().await.err().map(|_| ()),
        Err(_) => Some(()),
    };
    assert!(body_result.is_some(), "non-streaming answer should be cut");

    let stats = engine.stats();
    assert_eq!((stats.failed, stats.running, stats.in_flight), (2, 0, 0));
    let text = metrics_text(&client, &engine.base_url()).await?;
    let aborted = metric(
        &text,
        "vllm:request_success_total",
        &format!("engine=\"0\",finished_reason=\"abort\",model_name=\"{MODEL}\""),
    );
    assert_eq!(aborted, Some(2.0));
    Ok(())
}

#[tokio::test]
async fn dead_mid_stream_cuts_running_streams() -> TestResult {
    let engine = start(EngineConfig {
        ttft_ms: 1,
        itl_ms: 20,
        ..EngineConfig::default()
    })
    .await;
    let client = client();
    let mut response = client
        .post(format!("{}/v1/chat/completions", engine.base_url()))
        .json(&chat_body(
            MODEL,
            "hi",
            json!({"max_tokens": 50, "stream": true}),
        ))
        .send()
        .await?;
    response.chunk().await?.ok_or("no first chunk")?;
    engine.set_fault(Fault::Dead)?;
    assert!(sse_payloads(response).await.is_err());
    Ok(())
}

#[tokio::test]
async fn slow_fault_multiplies_latencies() -> TestResult {
    let engine = start(EngineConfig {
        ttft_ms: 10,
        itl_ms: 10,
        ..EngineConfig::default()
    })
    .await;
    let client = client();
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let body = chat_body(MODEL, "hi", json!({"max_tokens": 5}));
    set_fault_http(
        &client,
        &engine.base_url(),
        json!({"mode": "slow", "factor": 6}),
    )
    .await?;
    let began = Instant::now();
    let (status, _) = post_json(&client, &url, &body).await?;
    assert_eq!(status, StatusCode::OK);
    // (10 ms + 4 x 10 ms) x 6.
    assert!(
        began.elapsed() >= Duration::from_millis(300),
        "{:?}",
        began.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn reject_fault_refuses_the_configured_share() -> TestResult {
    let engine = start(EngineConfig {
        fault: Fault::Reject { ratio: 0.5 },
        ..fast_config()
    })
    .await;
    let client = client();
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let mut rejected = 0;
    for i in 0..40 {
        let (status, _) = post_json(
            &client,
            &url,
            &chat_body(MODEL, &format!("r{i}"), json!({"max_tokens": 1})),
        )
        .await?;
        match status {
            StatusCode::SERVICE_UNAVAILABLE => rejected += 1,
            StatusCode::OK => {}
            other => return Err(format!("unexpected {other}").into()),
        }
    }
    assert!((8..=32).contains(&rejected), "{rejected} of 40 rejected");
    let stats = engine.stats();
    assert_eq!(stats.rejected, rejected);
    assert_eq!(stats.succeeded, 40 - rejected);

    engine.set_fault(Fault::Reject { ratio: 1.0 })?;
    let (status, _) = post_json(&client, &url, &chat_body(MODEL, "x", json!({}))).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    Ok(())
}

#[tokio::test]
async fn fault_endpoint_validates_and_reports() -> TestResult {
    let engine = start(fast_config()).await;
    let client = client();
    let base = engine.base_url();
    let (status, current) = get_json(&client, &format!("{base}/_mock/faults")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(current, json!({"mode": "none"}));
    for bad in [
        json!({"mode": "explode"}),
        json!({"mode": "slow", "factor": 0}),
        json!({"mode": "reject", "ratio": 3}),
        json!({"factor": 2}),
    ] {
        let (status, body) = set_fault_http(&client, &base, bad.clone()).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["type"], "BadRequestError");
    }
    let (status, body) = set_fault_http(&client, &base, json!({"mode": "die_mid_stream"})).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"mode": "die_mid_stream", "after_tokens": 2}));
    assert!(engine.set_fault(Fault::Slow { factor: -1.0 }).is_err());
    assert_eq!(engine.fault(), Fault::DieMidStream { after_tokens: 2 });
    Ok(())
}
