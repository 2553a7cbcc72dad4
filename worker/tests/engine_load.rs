//! Timing, scheduling, metrics and cancellation of the mock engine over real HTTP.

mod engine_support;

use std::time::{Duration, Instant};

use engine_support::*;
use futures::future::join_all;
use inferplane_worker::engine::{EngineConfig, MockEngine};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MODEL: &str = "mock-llm";

#[tokio::test]
async fn streaming_sends_each_token_when_generated() -> TestResult {
    let engine = start(EngineConfig {
        ttft_ms: 30,
        itl_ms: 60,
        ..EngineConfig::default()
    })
    .await;
    let client = client();
    let began = Instant::now();
    let mut response = client
        .post(format!("{}/v1/chat/completions", engine.base_url()))
        .json(&chat_body(
            MODEL,
            "hi",
            json!({"max_tokens": 10, "stream": true}),
        ))
        .send()
        .await?;
    let first = response.chunk().await?.ok_or("empty stream")?;
    let first_at = began.elapsed();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    while response.chunk().await?.is_some() {}
    let total = began.elapsed();
    // 30 ms prefill + 9 x 60 ms between tokens; nothing held back until the end.
    assert!(
        total >= Duration::from_millis(570),
        "whole stream took {total:?}"
    );
    assert!(
        total - first_at >= Duration::from_millis(300),
        "first chunk after {first_at:?}, generation took {total:?}"
    );
    Ok(())
}

#[tokio::test]
async fn saturated_engine_queues_requests_then_serves_them() -> TestResult {
    let engine = start(EngineConfig {
        max_num_seqs: 2,
        ttft_ms: 5,
        itl_ms: 20,
        ..EngineConfig::default()
    })
    .await;
    let client = client();
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let requests: Vec<_> = (0..5)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                post_json(
                    &client,
                    &url,
                    &chat_body(MODEL, &format!("request {i}"), json!({"max_tokens": 10})),
                )
                .await
            })
        })
        .collect();
    let base = engine.base_url();
    let saw_waiting = eventually(Duration::from_secs(5), || async {
        let text = metrics_text(&client, &base).await.unwrap_or_default();
        text.contains("vllm:num_requests_waiting")
            && model_metric(&text, "vllm:num_requests_waiting", MODEL) > 0.0
            && model_metric(&text, "vllm:num_requests_running", MODEL) == 2.0
    })
    .await;
    assert!(saw_waiting, "never saw a waiting request while saturated");
    assert!(engine.stats().waiting > 0 || engine.stats().succeeded > 0);
    for request in join_all(requests).await {
        let (status, answer) = request??;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["usage"]["completion_tokens"], 10);
    }
    let text = metrics_text(&client, &base).await?;
    assert_eq!(model_metric(&text, "vllm:num_requests_waiting", MODEL), 0.0);
    assert_eq!(model_metric(&text, "vllm:num_requests_running", MODEL), 0.0);
    assert_eq!(
        model_metric(&text, "vllm:request_queue_time_seconds_count", MODEL),
        5.0
    );
    // Three requests waited about one generation (~185 ms) or two.
    assert!(model_metric(&text, "vllm:request_queue_time_seconds_sum", MODEL) > 0.1);
    let stats = engine.stats();
    assert_eq!((stats.succeeded, stats.in_flight, stats.running), (5, 0, 0));
    Ok(())
}

#[tokio::test]
async fn full_queue_answers_503() -> TestResult {
    let engine = start(EngineConfig {
        max_num_seqs: 1,
        max_waiting: 1,
        ttft_ms: 1,
        itl_ms: 50,
        ..EngineConfig::default()
    })
    .await;
    let client = client();
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let streaming = chat_body(
        MODEL,
        "hold the slot",
        json!({"max_tokens": 20, "stream": true}),
    );
    let running = client.post(&url).json(&streaming).send().await?;
    let queued = client.post(&url).json(&streaming).send().await?;
    assert!(
        eventually(Duration::from_secs(2), || async {
            engine.stats().waiting == 1
        })
        .await
    );
    let (status, body) =
        post_json(&client, &url, &chat_body(MODEL, "one too many", json!({}))).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["type"], "ServiceUnavailableError");
    assert_eq!(engine.stats().rejected, 1);
    drop((running, queued));
    assert!(
        eventually(Duration::from_secs(2), || async {
            engine.stats().in_flight == 0
        })
        .await
    );
    Ok(())
}

#[tokio::test]
async fn metrics_count_tokens_and_finish_reasons() -> TestResult {
    let engine = start(EngineConfig {
        embedding_models: vec!["bge".into()],
        ..fast_config()
    })
    .await;
    let client = client();
    let base = engine.base_url();
    let chat = format!("{base}/v1/chat/completions");

    // 4 + 3 words + 3 = 10 prompt tokens, 6 generated, length.
    let (_, first) = post_json(
        &client,
        &chat,
        &chat_body(MODEL, "count my tokens", json!({"max_tokens": 6})),
    )
    .await?;
    assert_eq!(first["usage"]["prompt_tokens"], 10);
    // Natural end: 16 tokens, stop. Streaming counts the same.
    let body = chat_body(MODEL, "again please", json!({"stream": true}));
    sse_payloads(client.post(&chat).json(&body).send().await?)
        .await
        .map_err(|_| "broke")?;
    // A batch of two prompts (2 + 3 tokens), 4 tokens each.
    let (_, batch) = post_json(
        &client,
        &format!("{base}/v1/completions"),
        &json!({"model": MODEL, "prompt": ["two words", "three words here"], "max_tokens": 4}),
    )
    .await?;
    assert_eq!(batch["usage"]["prompt_tokens"], 5);
    // Embeddings count prompt tokens on their own model.
    post_json(
        &client,
        &format!("{base}/v1/embeddings"),
        &json!({"model": "bge", "input": "a b c"}),
    )
    .await?;

    let text = metrics_text(&client, &base).await?;
    let prompt_tokens = 10.0 + (4.0 + 2.0 + 3.0) + 5.0;
    assert_eq!(
        model_metric(&text, "vllm:prompt_tokens_total", MODEL),
        prompt_tokens
    );
    assert_eq!(
        model_metric(&text, "vllm:generation_tokens_total", MODEL),
        6.0 + 16.0 + 8.0
    );
    let success = |reason: &str, model: &str| {
        metric(
            &text,
            "vllm:request_success_total",
            &format!("engine=\"0\",finished_reason=\"{reason}\",model_name=\"{model}\""),
        )
    };
    assert_eq!(success("length", MODEL), Some(3.0));
    assert_eq!(success("stop", MODEL), Some(1.0));
    assert_eq!(success("abort", MODEL), Some(0.0));
    assert_eq!(success("stop", "bge"), Some(1.0));
    assert_eq!(model_metric(&text, "vllm:prompt_tokens_total", "bge"), 3.0);
    // One TTFT and e2e observation per sequence, one ITL per token after the first.
    assert_eq!(
        model_metric(&text, "vllm:time_to_first_token_seconds_count", MODEL),
        4.0
    );
    assert_eq!(
        model_metric(&text, "vllm:e2e_request_latency_seconds_count", MODEL),
        4.0
    );
    assert_eq!(
        model_metric(&text, "vllm:inter_token_latency_seconds_count", MODEL),
        5.0 + 15.0 + 6.0
    );
    let inf_bucket = metric(
        &text,
        "vllm:time_to_first_token_seconds_bucket",
        &format!("engine=\"0\",le=\"+Inf\",model_name=\"{MODEL}\""),
    );
    assert_eq!(inf_bucket, Some(4.0));
    assert!(text.contains("# TYPE vllm:time_to_first_token_seconds histogram"));
    assert!(text.contains("# TYPE vllm:generation_tokens_total counter"));
    assert_eq!(model_metric(&text, "vllm:kv_cache_usage_perc", MODEL), 0.0);
    assert_eq!(model_metric(&text, "vllm:gpu_cache_usage_perc", MODEL), 0.0);
    Ok(())
}

#[tokio::test]
async fn shared_prompt_prefix_hits_the_simulated_cache() -> TestResult {
    let engine = start(fast_config()).await;
    let client = client();
    let url = format!("{}/v1/completions", engine.base_url());
    let long_prompt: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let long_prompt = long_prompt.join(" ");
    let (_, cold) = post_json(
        &client,
        &url,
        &json!({"model": MODEL, "prompt": long_prompt, "max_tokens": 1}),
    )
    .await?;
    assert_eq!(cold["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let (_, warm) = post_json(
        &client,
        &url,
        &json!({"model": MODEL, "prompt": long_prompt, "max_tokens": 1}),
    )
    .await?;
    // 40 tokens = two full 16-token blocks cached.
    assert_eq!(warm["usage"]["prompt_tokens_details"]["cached_tokens"], 32);
    let text = metrics_text(&client, &engine.base_url()).await?;
    assert_eq!(
        model_metric(&text, "vllm:prefix_cache_queries_total", MODEL),
        80.0
    );
    assert_eq!(
        model_metric(&text, "vllm:prefix_cache_hits_total", MODEL),
        32.0
    );
    Ok(())
}

#[tokio::test]
async fn kv_cache_usage_rises_while_running() -> TestResult {
    let engine = start(EngineConfig {
        kv_cache_tokens: 1000,
        ttft_ms: 1,
        itl_ms: 30,
        ..EngineConfig::default()
    })
    .await;
    let client = client();
    let response = client
        .post(format!("{}/v1/completions", engine.base_url()))
        .json(&json!({"model": MODEL, "prompt": "a b c d e f g h i j", "max_tokens": 30, "stream": true}))
        .send()
        .await?;
    let base = engine.base_url();
    let rose = eventually(Duration::from_secs(2), || async {
        let text = metrics_text(&client, &base).await.unwrap_or_default();
        text.contains("kv_cache") && model_metric(&text, "vllm:kv_cache_usage_perc", MODEL) >= 0.011
    })
    .await;
    assert!(
        rose,
        "prompt (10) + generated tokens never showed in kv_cache_usage_perc"
    );
    sse_payloads(response).await.map_err(|_| "broke")?;
    let text = metrics_text(&client, &base).await?;
    assert_eq!(model_metric(&text, "vllm:kv_cache_usage_perc", MODEL), 0.0);
    Ok(())
}

fn abort_count(text: &str) -> Option<f64> {
    metric(
        text,
        "vllm:request_success_total",
        &format!("engine=\"0\",finished_reason=\"abort\",model_name=\"{MODEL}\""),
    )
}

#[tokio::test]
async fn client_disconnect_mid_stream_releases_the_slot() -> TestResult {
    let engine = start(EngineConfig {
        max_num_seqs: 1,
        ttft_ms: 1,
        itl_ms: 30,
        ..EngineConfig::default()
    })
    .await;
    let client = client();
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let mut response = client
        .post(&url)
        .json(&chat_body(
            MODEL,
            "long story",
            json!({"max_tokens": 100, "stream": true}),
        ))
        .send()
        .await?;
    response.chunk().await?.ok_or("no first chunk")?;
    assert_eq!(engine.stats().running, 1);
    drop(response);
    let released = eventually(Duration::from_secs(2), || async {
        let stats = engine.stats();
        stats.running == 0 && stats.in_flight == 0 && stats.cancelled == 1
    })
    .await;
    assert!(released, "slot still held: {:?}", engine.stats());
    let text = metrics_text(&client, &engine.base_url()).await?;
    assert_eq!(abort_count(&text), Some(1.0));
    // The only slot is free again.
    let (status, _) = post_json(
        &client,
        &url,
        &chat_body(MODEL, "next", json!({"max_tokens": 2})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(engine.stats().succeeded, 1);
    Ok(())
}

#[tokio::test]
async fn client_disconnect_cancels_non_streaming_and_queued_requests() -> TestResult {
    let engine = start(EngineConfig {
        max_num_seqs: 1,
        ttft_ms: 1,
        itl_ms: 30,
        ..EngineConfig::default()
    })
    .await;
    init();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()?;
    let url = format!("{}/v1/chat/completions", engine.base_url());
    // Holds the slot for ~3 s, but its client gives up after 300 ms.
    let running = tokio::spawn({
        let (impatient, url) = (impatient.clone(), url.clone());
        async move {
            let body = chat_body(MODEL, "slow", json!({"max_tokens": 100}));
            impatient.post(&url).json(&body).send().await
        }
    });
    assert!(
        eventually(Duration::from_secs(2), || async {
            engine.stats().running == 1
        })
        .await
    );
    // Queued behind it, gives up too.
    let queued = impatient
        .post(&url)
        .json(&chat_body(MODEL, "queued", json!({"max_tokens": 2})))
        .send()
        .await;
    let running = running.await?;
    assert!(
        running.is_err() && queued.is_err(),
        "both requests should time out"
    );
    let released = eventually(Duration::from_secs(2), || async {
        let stats = engine.stats();
        stats.running == 0 && stats.waiting == 0 && stats.in_flight == 0 && stats.cancelled == 2
    })
    .await;
    assert!(released, "not released: {:?}", engine.stats());
    Ok(())
}

#[tokio::test]
async fn graceful_shutdown_finishes_streams_and_kill_cuts_them() -> TestResult {
    let client = client();
    let body = chat_body(
        MODEL,
        "finish me",
        json!({"max_tokens": 10, "stream": true}),
    );
    let slow = EngineConfig {
        ttft_ms: 1,
        itl_ms: 20,
        ..EngineConfig::default()
    };

    let engine = start(slow.clone()).await;
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let mut response = client.post(&url).json(&body).send().await?;
    response.chunk().await?.ok_or("no first chunk")?;
    let stopping = tokio::spawn(engine.shutdown());
    let payloads = sse_payloads(response)
        .await
        .map_err(|_| "graceful shutdown cut the stream")?;
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    stopping.await??;
    assert!(
        client.get(&url).send().await.is_err(),
        "engine still listening"
    );

    let engine = start(slow).await;
    let url = format!("{}/v1/chat/completions", engine.base_url());
    let mut response = client.post(&url).json(&body).send().await?;
    response.chunk().await?.ok_or("no first chunk")?;
    engine.kill().await?;
    let cut = sse_payloads(response).await;
    assert!(cut.is_err(), "killed engine must cut the stream");
    Ok(())
}

#[tokio::test]
async fn hundreds_of_engines_share_a_process() -> TestResult {
    let client = client();
    let engines = join_all((0..200).map(|seed| {
        MockEngine::start(EngineConfig {
            seed,
            ..fast_config()
        })
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let healths = join_all(
        engines
            .iter()
            .map(|engine| client.get(format!("{}/health", engine.base_url())).send()),
    )
    .await;
    for health in healths {
        assert_eq!(health?.status(), StatusCode::OK);
    }
    // Each engine has its own metrics; different seeds answer differently.
    let body = chat_body(MODEL, "same prompt", json!({"max_tokens": 4}));
    let urls: Vec<String> = engines
        .iter()
        .take(3)
        .map(|engine| format!("{}/v1/chat/completions", engine.base_url()))
        .collect();
    let answers = join_all(urls.iter().map(|url| post_json(&client, url, &body))).await;
    let texts: Vec<Value> = answers
        .into_iter()
        .map(|answer| answer.map(|(_, body)| body["choices"][0]["message"]["content"].clone()))
        .collect::<Result<_, _>>()?;
    assert_ne!(texts[0], texts[1]);
    assert_eq!(engines[0].stats().succeeded, 1);
    assert_eq!(engines[5].stats().succeeded, 0);
    join_all(engines.into_iter().map(|engine| engine.shutdown()))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(())
}
