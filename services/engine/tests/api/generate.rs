use serde_json::{Value, json};

use crate::helpers::{TINY, TestEngine};

fn greedy(n: u64) -> Value {
    json!({"temperature": 0, "seed": 7, "num_predict": n})
}

#[tokio::test]
async fn streams_ndjson_chunks_and_a_final_object_with_counters() {
    let e = TestEngine::with_tiny().await;
    let (res, lines) =
        e.ndjson("/api/generate", &json!({"model": TINY, "prompt": "Hello there", "options": greedy(12)})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.headers["content-type"], "application/x-ndjson");
    let (last, chunks) = lines.split_last().expect("lines");
    assert!(!chunks.is_empty());
    for c in chunks {
        assert_eq!(c["model"], TINY);
        assert_eq!(c["done"], false);
        assert!(c["response"].is_string());
        assert!(c["created_at"].as_str().unwrap().contains('T'));
    }
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "length");
    assert_eq!(last["response"], "");
    assert_eq!(last["eval_count"], 12);
    assert!(last["prompt_eval_count"].as_u64().unwrap() > 5, "the template wraps the prompt: {last}");
    for k in ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"] {
        assert!(last[k].is_u64(), "{k} in {last}");
    }
    assert!(last["total_duration"].as_u64() >= last["eval_duration"].as_u64());
    assert!(last["context"].as_array().is_some_and(|c| !c.is_empty()));
    let text: String = chunks.iter().map(|c| c["response"].as_str().unwrap()).collect();
    assert!(!text.is_empty());
}

#[tokio::test]
async fn non_streaming_returns_one_object_with_the_whole_text() {
    let e = TestEngine::with_tiny().await;
    let res =
        e.post("/api/generate", &json!({"model": TINY, "prompt": "Hi", "stream": false, "options": greedy(8)})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.headers["content-type"], "application/json");
    let b = &res.body;
    assert_eq!(b["done"], true);
    assert_eq!(b["done_reason"], "length");
    assert_eq!(b["eval_count"], 8);
    assert!(!b["response"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn seed_and_zero_temperature_are_deterministic() {
    let e = TestEngine::with_tiny().await;
    let a = e.complete("Once upon a time", greedy(24)).await;
    let b = e.complete("Once upon a time", greedy(24)).await;
    assert_eq!(a["response"], b["response"]);
    // The same with sampling and a fixed seed.
    let sampled = json!({"temperature": 0.9, "seed": 123, "num_predict": 24, "top_k": 40});
    let c = e.complete("Once upon a time", sampled.clone()).await;
    let d = e.complete("Once upon a time", sampled).await;
    assert_eq!(c["response"], d["response"]);
}

#[tokio::test]
async fn a_stop_string_ends_the_output_before_it() {
    let e = TestEngine::with_tiny().await;
    let full = e.complete("Tell me a story", greedy(40)).await["response"].as_str().unwrap().to_owned();
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() >= 10, "{full:?}");
    // A stop string from the middle of the output: generation must end right before its first
    // occurrence, without sending any of it.
    let stop: String = chars[5..8].iter().collect();
    let expected = &full[..full.find(&stop).unwrap()];
    let (res, lines) = e
        .ndjson(
            "/api/generate",
            &json!({"model": TINY, "prompt": "Tell me a story", "options": {"temperature": 0, "seed": 7, "num_predict": 40, "stop": [stop]}}),
        )
        .await;
    assert_eq!(res.status, 200);
    let last = lines.last().unwrap();
    assert_eq!(last["done_reason"], "stop", "{last}");
    let text: String = lines.iter().map(|c| c["response"].as_str().unwrap_or("")).collect();
    assert_eq!(text, expected, "stop {stop:?} in {full:?}");
}

#[tokio::test]
async fn num_predict_ends_with_length() {
    let e = TestEngine::with_tiny().await;
    let b = e.complete("x", greedy(3)).await;
    assert_eq!(b["done_reason"], "length");
    assert_eq!(b["eval_count"], 3);
}

#[tokio::test]
async fn raw_prompts_skip_the_template() {
    let e = TestEngine::with_tiny().await;
    let templated = e.complete("abc", greedy(1)).await;
    let raw = e
        .post(
            "/api/generate",
            &json!({"model": TINY, "prompt": "abc", "raw": true, "stream": false, "options": greedy(1)}),
        )
        .await
        .body;
    assert_eq!(raw["prompt_eval_count"], 3, "three bytes, three tokens: {raw}");
    assert!(templated["prompt_eval_count"].as_u64().unwrap() > 3);
}

#[tokio::test]
async fn json_format_constrains_the_output() {
    let e = TestEngine::with_tiny().await;
    let b = e
        .post(
            "/api/generate",
            &json!({"model": TINY, "prompt": "json please", "format": "json", "stream": false, "options": greedy(16)}),
        )
        .await
        .body;
    let text = b["response"].as_str().unwrap();
    assert!(text.starts_with('{'), "{text:?}");
}
