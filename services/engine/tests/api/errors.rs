use serde_json::json;

use crate::helpers::{TINY, TestEngine};

#[tokio::test]
async fn errors_have_ollamas_statuses_and_bodies() {
    let e = TestEngine::with_tiny().await;
    let res = e.post("/api/generate", &json!({"model": "nope", "prompt": "x"})).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.body, json!({"error": "model \"nope\" not found, try pulling it first"}));
    let res = e.post("/api/chat", &json!({"model": "nope:1b", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(res.status, 404);

    let res = e.post("/api/generate", &json!({"prompt": "x"})).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body, json!({"error": "model is required"}));

    for path in ["/api/generate", "/api/chat", "/api/show", "/api/embed", "/api/pull", "/api/copy", "/api/create"] {
        let res = e.send(e.client.post(e.url(path))).await;
        assert_eq!(res.status, 400, "{path}");
        assert_eq!(res.body, json!({"error": "missing request body"}), "{path}");
    }
    let res = e.send(e.client.post(e.url("/api/generate")).body("{not json")).await;
    assert_eq!(res.status, 400);
    assert!(res.body["error"].is_string());

    let res = e.send(e.client.get(e.url("/api/generate"))).await;
    assert_eq!(res.status, 405);
    assert!(res.body["error"].is_string());
    let res = e.send(e.client.post(e.url("/api/tags"))).await;
    assert_eq!(res.status, 405);

    let res = e.post("/api/generate", &json!({"model": TINY, "prompt": "x", "keep_alive": true})).await;
    assert_eq!(res.status, 400, "{}", res.text);
    let res = e.post("/api/generate", &json!({"model": TINY, "prompt": "x", "options": {"temperature": "hot"}})).await;
    assert_eq!(res.status, 400, "{}", res.text);
    let res = e.post("/api/embed", &json!({"model": TINY, "input": "x"})).await;
    assert_eq!(res.status, 400, "a text model does not embed: {}", res.text);
}

#[tokio::test]
async fn root_and_version() {
    let e = TestEngine::spawn().await;
    let res = e.get("/").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text, "Ollama is running");
    let res = e.get("/api/version").await;
    assert!(res.body["version"].as_str().unwrap().starts_with("0."));
}
