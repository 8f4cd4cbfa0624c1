use serde_json::{Value, json};

use crate::helpers::{TINY, TestEngine};

fn sse_events(text: &str) -> Vec<String> {
    assert!(text.ends_with("\n\n"), "frames end with a blank line");
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| f.strip_prefix("data: ").expect("data frame").to_owned())
        .collect()
}

#[tokio::test]
async fn chat_completions_stream_with_usage_and_done() {
    let e = TestEngine::with_tiny().await;
    let body = json!({
        "model": TINY,
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": 5,
        "temperature": 0,
        "seed": 3,
    });
    let res = e.post("/v1/chat/completions", &body).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.headers["content-type"], "text/event-stream");
    let events = sse_events(&res.text);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let (usage, rest) = chunks.split_last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    let total = usage["usage"]["total_tokens"].as_u64().unwrap();
    assert_eq!(total, usage["usage"]["prompt_tokens"].as_u64().unwrap() + 5);
    let (fin, text_chunks) = rest.split_last().unwrap();
    assert_eq!(fin["choices"][0]["finish_reason"], "length");
    for (i, c) in text_chunks.iter().enumerate() {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(c["id"], text_chunks[0]["id"], "one id per completion");
        assert_eq!(c["model"], TINY);
        let role = if i == 0 { json!("assistant") } else { Value::Null };
        assert_eq!(c["choices"][0]["delta"]["role"], role, "the first chunk carries the role");
        assert!(c["choices"][0]["finish_reason"].is_null());
    }

    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let res = e.post("/v1/chat/completions", &whole).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["object"], "chat.completion");
    assert_eq!(res.body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(res.body["choices"][0]["finish_reason"], "length");
    assert_eq!(res.body["usage"]["completion_tokens"], 5);
    let streamed: String = text_chunks.iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
    assert_eq!(res.body["choices"][0]["message"]["content"], streamed);
}

#[tokio::test]
async fn completions_models_and_errors() {
    let e = TestEngine::with_tiny().await;
    let res =
        e.post("/v1/completions", &json!({"model": TINY, "prompt": "abc", "max_tokens": 3, "temperature": 0})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["object"], "text_completion");
    assert!(res.body["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(res.body["usage"]["completion_tokens"], 3);
    assert!(
        res.body["usage"]["prompt_tokens"].as_u64().unwrap() > 3,
        "the model's template wraps the prompt, as in Ollama"
    );

    let res =
        e.post("/v1/completions", &json!({"model": TINY, "prompt": "abc", "max_tokens": 2, "stream": true})).await;
    let events = sse_events(&res.text);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "text_completion");

    let models = e.get("/v1/models").await.body;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], TINY);
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(models["data"][0]["owned_by"], "library");
    let one = e.get(&format!("/v1/models/{TINY}")).await;
    assert_eq!(one.body["id"], TINY);

    let res =
        e.post("/v1/chat/completions", &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.body["error"]["type"], "not_found_error");
    assert!(res.body["error"]["message"].as_str().unwrap().contains("nope"));
    let res = e.post("/v1/chat/completions", &json!({"model": TINY, "messages": []})).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body["error"]["type"], "invalid_request_error");
}
