use serde_json::json;

use crate::helpers::{TINY, TestEngine};

#[tokio::test]
async fn chat_streams_assistant_messages() {
    let e = TestEngine::with_tiny().await;
    let body = json!({
        "model": TINY,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        "options": {"temperature": 0, "seed": 1, "num_predict": 6},
    });
    let (res, lines) = e.ndjson("/api/chat", &body).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let (last, chunks) = lines.split_last().unwrap();
    for c in chunks {
        assert_eq!(c["message"]["role"], "assistant");
        assert!(c["message"]["content"].is_string());
        assert_eq!(c["done"], false);
    }
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "length");
    assert_eq!(last["message"], json!({"role": "assistant", "content": ""}));
    assert_eq!(last["eval_count"], 6);
    // ChatML around both messages: far more tokens than the two texts.
    assert!(last["prompt_eval_count"].as_u64().unwrap() > 40, "{last}");

    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let res = e.post("/api/chat", &whole).await;
    assert_eq!(res.status, 200);
    let text: String = chunks.iter().map(|c| c["message"]["content"].as_str().unwrap()).collect();
    assert_eq!(res.body["message"]["content"], text, "stream and whole answer agree");
    assert!(res.body.get("context").is_none());
}
