use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{TINY, TestEngine};

#[tokio::test]
async fn tags_show_copy_delete() {
    let e = TestEngine::with_tiny().await;
    let tags = e.get("/api/tags").await.body;
    let models = tags["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    let m = &models[0];
    assert_eq!(m["name"], TINY);
    assert_eq!(m["model"], TINY);
    assert_eq!(m["digest"].as_str().unwrap().len(), 64);
    assert!(m["size"].as_u64().unwrap() > 100_000);
    assert!(m["modified_at"].as_str().unwrap().contains('T'));
    let d = &m["details"];
    assert_eq!(d["format"], "gguf");
    assert_eq!(d["family"], "llama");
    assert_eq!(d["families"], json!(["llama"]));
    assert_eq!(d["quantization_level"], "F32");
    assert!(d["parameter_size"].as_str().unwrap().ends_with('K'), "{d}");

    let show = e.post("/api/show", &json!({"model": TINY})).await;
    assert_eq!(show.status, 200, "{}", show.text);
    let s = &show.body;
    assert!(s["template"].as_str().unwrap().contains("<|im_start|>"));
    assert_eq!(s["details"]["family"], "llama");
    assert_eq!(s["model_info"]["general.architecture"], "llama");
    assert_eq!(s["model_info"]["llama.context_length"], 2048);
    assert!(s["model_info"]["tokenizer.ggml.tokens"].is_null(), "long arrays only when verbose");
    assert_eq!(s["capabilities"], json!(["completion"]));
    assert!(s["modelfile"].as_str().unwrap().contains("FROM "));
    let verbose = e.post("/api/show", &json!({"model": TINY, "verbose": true})).await.body;
    assert_eq!(verbose["model_info"]["tokenizer.ggml.tokens"].as_array().unwrap().len(), 259);
    assert!(verbose["tensors"].as_array().unwrap().iter().any(|t| t["name"] == "token_embd.weight"));
    assert_eq!(e.post("/api/show", &json!({"model": "nope"})).await.status, 404);

    let res = e.post("/api/copy", &json!({"source": TINY, "destination": "me/copy:v1"})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.text.is_empty());
    let res = e.post("/api/copy", &json!({"source": "nope", "destination": "x"})).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.body, json!({"error": "model \"nope\" not found"}));
    let names: Vec<String> = e.get("/api/tags").await.body["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["me/copy:v1", TINY]);

    let res = e.send(e.client.delete(e.url("/api/delete")).json(&json!({"model": "me/copy:v1"}))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = e.send(e.client.delete(e.url("/api/delete")).json(&json!({"model": "me/copy:v1"}))).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.body, json!({"error": "model 'me/copy:v1' not found"}));
    // The original still works: its blobs were kept.
    assert_eq!(e.complete("x", json!({"num_predict": 1})).await["eval_count"], 1);
}

#[tokio::test]
async fn create_from_an_uploaded_blob() {
    let e = TestEngine::spawn().await;
    let file = e.data_dir().join("upload.gguf");
    ollamanet_engine::write_tiny_llama(&file, 3).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    let blob = format!("/api/blobs/{digest}");

    assert_eq!(e.send(e.client.head(e.url(&blob))).await.status, 404);
    let wrong = format!("/api/blobs/sha256:{}", "0".repeat(64));
    let res = e.send(e.client.post(e.url(&wrong)).body(bytes.clone())).await;
    assert_eq!(res.status, 400, "a digest mismatch is refused");
    let res = e.send(e.client.post(e.url(&blob)).body(bytes.clone())).await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(e.send(e.client.head(e.url(&blob))).await.status, 200);

    let (res, lines) = e
        .ndjson(
            "/api/create",
            &json!({"model": "made", "files": {"model.gguf": digest}, "system": "You are terse.", "parameters": {"temperature": 0, "stop": ["zz"]}}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(lines.last().unwrap(), &json!({"status": "success"}));
    let show = e.post("/api/show", &json!({"model": "made"})).await.body;
    assert_eq!(show["system"], "You are terse.");
    assert!(show["parameters"].as_str().unwrap().contains("temperature"), "{show}");
    let out = e
        .post(
            "/api/generate",
            &json!({"model": "made", "prompt": "hi", "stream": false, "options": {"num_predict": 2}}),
        )
        .await;
    assert_eq!(out.status, 200, "{}", out.text);

    let res = e.post("/api/create", &json!({"model": "derived", "from": "made", "system": "Other."})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(e.post("/api/show", &json!({"model": "derived"})).await.body["system"], "Other.");
    let res = e.post("/api/create", &json!({"model": "x"})).await;
    assert_eq!(res.status, 400);
}
