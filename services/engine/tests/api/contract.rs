//! The engine's answers decode into `ollama-api`'s types: what the inference service's client
//! reads from every engine.

use ollama_api::types::{ChatResponse, GenerateResponse, ListResponse, PsResponse, ShowResponse, VersionResponse};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::helpers::{TINY, TestEngine};

fn decode<T: DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

#[tokio::test]
async fn answers_decode_as_ollama_api_types() {
    let e = TestEngine::with_tiny().await;
    let (_, lines) =
        e.ndjson("/api/generate", &json!({"model": TINY, "prompt": "hi", "options": {"num_predict": 3}})).await;
    let chunks: Vec<GenerateResponse> = lines.iter().map(decode).collect();
    let last = chunks.last().unwrap();
    assert!(last.done);
    assert_eq!(last.done_reason, "length");
    assert_eq!(last.metrics.eval_count, Some(3));
    assert!(last.metrics.total_duration.is_some() && last.metrics.prompt_eval_duration.is_some());

    let (_, lines) = e
        .ndjson(
            "/api/chat",
            &json!({"model": TINY, "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": 2}}),
        )
        .await;
    let chunks: Vec<ChatResponse> = lines.iter().map(decode).collect();
    assert!(chunks.last().unwrap().done);

    let tags: ListResponse = decode(&e.get("/api/tags").await.body);
    assert_eq!(tags.models[0].name, TINY);
    assert_eq!(tags.models[0].details.family, "llama");
    let show: ShowResponse = decode(&e.post("/api/show", &json!({"model": TINY})).await.body);
    assert!(show.template.contains("im_start"));
    let ps: PsResponse = decode(&e.get("/api/ps").await.body);
    assert_eq!(ps.models[0].name, TINY);
    assert_eq!(ps.models[0].context_length, Some(512));
    let _: VersionResponse = decode(&e.get("/api/version").await.body);
}
