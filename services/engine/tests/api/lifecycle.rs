use std::time::Duration;

use serde_json::json;

use crate::helpers::{TINY, TestEngine, eventually};

#[tokio::test]
async fn empty_requests_load_and_keep_alive_zero_unloads() {
    let e = TestEngine::with_tiny().await;
    assert!(e.get("/api/ps").await.body["models"].as_array().unwrap().is_empty());

    let res = e.post("/api/generate", &json!({"model": TINY})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["done"], true);
    assert_eq!(res.body["done_reason"], "load");
    assert_eq!(res.body["response"], "");
    let ps = e.get("/api/ps").await.body;
    let models = ps["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["name"], TINY);
    assert_eq!(models[0]["size_vram"], 0);
    assert_eq!(models[0]["context_length"], 512);
    assert!(models[0]["size"].as_u64().unwrap() > 0);
    assert!(models[0]["expires_at"].as_str().unwrap().contains('T'));
    assert_eq!(e.stats.loaded_models(), [TINY]);

    let res = e.post("/api/chat", &json!({"model": TINY, "messages": [], "keep_alive": 0})).await;
    assert_eq!(res.body["done_reason"], "unload", "{}", res.text);
    assert_eq!(res.body["message"], json!({"role": "assistant", "content": ""}));
    assert!(e.get("/api/ps").await.body["models"].as_array().unwrap().is_empty());

    let res = e.post("/api/chat", &json!({"model": TINY, "messages": []})).await;
    assert_eq!(res.body["done_reason"], "load");
    assert_eq!(e.stats.loaded_models().len(), 1);
}

#[tokio::test]
async fn a_generation_with_keep_alive_zero_unloads_when_done() {
    let e = TestEngine::with_tiny().await;
    let res = e
        .post(
            "/api/generate",
            &json!({"model": TINY, "prompt": "hi", "keep_alive": 0, "stream": false, "options": {"num_predict": 2}}),
        )
        .await;
    assert_eq!(res.status, 200);
    assert!(e.stats.loaded_models().is_empty(), "unloaded before the answer went out");
}

#[tokio::test]
async fn keep_alive_expiry_and_forever() {
    let e = TestEngine::with_tiny().await;
    let res = e.post("/api/generate", &json!({"model": TINY, "keep_alive": "300ms"})).await;
    assert_eq!(res.body["done_reason"], "load");
    eventually(Duration::from_secs(10), "the model to expire", || async { e.stats.loaded_models().is_empty() }).await;

    let res = e.post("/api/generate", &json!({"model": TINY, "keep_alive": -1})).await;
    assert_eq!(res.body["done_reason"], "load");
    let ps = e.get("/api/ps").await.body;
    let expires = ps["models"][0]["expires_at"].as_str().unwrap();
    assert!(expires > "2100", "forever is far away: {expires}");
}

#[tokio::test]
async fn the_memory_budget_evicts_the_least_recently_used_idle_model() {
    // Room for one tiny model (weights + KV cache) but not two.
    let e = TestEngine::tiny_with(|c| c.memory_budget = Some(1_000_000)).await;
    e.import_tiny("tiny2", 2).await;
    e.post("/api/generate", &json!({"model": TINY})).await;
    assert_eq!(e.stats.loaded_models(), [TINY]);
    let res = e.post("/api/generate", &json!({"model": "tiny2"})).await;
    assert_eq!(res.body["done_reason"], "load", "{}", res.text);
    assert_eq!(e.stats.loaded_models(), ["tiny2:latest"]);
}

#[tokio::test]
async fn a_different_num_ctx_reloads() {
    let e = TestEngine::with_tiny().await;
    e.post("/api/generate", &json!({"model": TINY})).await;
    assert_eq!(e.get("/api/ps").await.body["models"][0]["context_length"], 512);
    e.post("/api/generate", &json!({"model": TINY, "options": {"num_ctx": 256}})).await;
    assert_eq!(e.get("/api/ps").await.body["models"][0]["context_length"], 256);
}
