//! What hostile model files and chat templates get from a running engine: a clear error for the
//! request, quickly, and an engine that goes on serving. (Hostile registries: `pull`.)

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TINY, TestEngine};

/// Generous: only a hang (or a multi-gigabyte allocation being filled) takes this long.
const DEADLINE: Duration = Duration::from_secs(60);

/// A GGUF header: magic, version 3, the counts, then `rest`.
fn header(n_tensors: u64, n_kv: u64, rest: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b.extend_from_slice(rest);
    b
}

/// A GGUF string: its length as declared, then `content`.
fn string(declared: u64, content: &[u8]) -> Vec<u8> {
    [&declared.to_le_bytes()[..], content].concat()
}

/// GGUF headers that lie about their sizes, each with what it tries.
fn hostile_headers() -> Vec<(&'static str, Vec<u8>)> {
    let array = 9u32.to_le_bytes();
    let mut nested = string(1, b"k");
    nested.extend(array);
    for _ in 0..10_000 {
        nested.extend(array);
        nested.extend(1u64.to_le_bytes());
    }
    vec![
        ("2^60 metadata pairs", header(0, 1 << 60, &[0; 64])),
        ("2^24 - 1 tensors", header((1 << 24) - 1, 0, &[0; 64])),
        ("a string of 2^40 bytes", header(0, 1, &string(1 << 40, b"abc"))),
        ("a string of 15 MiB", header(0, 1, &string(15 << 20, b"abc"))),
        ("arrays nested 10000 deep", header(0, 1, &nested)),
        ("a truncated header", header(3, 5, &string(8, b"general."))),
    ]
}

#[tokio::test]
async fn lying_gguf_headers_are_refused_by_create_and_import() {
    let e = TestEngine::with_tiny().await;
    tokio::time::timeout(DEADLINE, async {
        for (what, bytes) in hostile_headers() {
            // Uploaded and turned into a model through the API.
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            let res = e.send(e.client.post(e.url(&format!("/api/blobs/{digest}"))).body(bytes.clone())).await;
            assert_eq!(res.status, 201, "{what}: {}", res.text);
            let create = json!({"model": "hostile", "files": {"model.gguf": digest}, "stream": false});
            let res = e.post("/api/create", &create).await;
            assert_eq!(res.status, 400, "{what}: {}", res.text);
            assert!(res.body["error"].as_str().unwrap().starts_with("invalid GGUF: "), "{what}: {}", res.text);

            // Imported from a file, as `ollamanet models import` does.
            let file = e.data_dir().join("hostile.gguf");
            std::fs::write(&file, &bytes).unwrap();
            let err = ollamanet_engine::import(&e.data_dir(), &e.config, &file, "hostile").await.unwrap_err();
            assert!(err.to_string().contains("GGUF"), "{what}: {err}");
        }
    })
    .await
    .expect("refused within the deadline");
    // Nothing was made of them, and the engine goes on serving.
    let names: Vec<Value> = e.get("/api/tags").await.body["models"].as_array().unwrap().to_vec();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(e.complete("hi", json!({"num_predict": 1})).await["eval_count"], 1);
}

#[tokio::test]
async fn a_chat_template_that_would_run_forever_fails_its_request() {
    let e = TestEngine::with_tiny().await;
    let templates = [
        (
            "loops",
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ messages[0].content }}{% endfor %}{% endfor %}",
        ),
        ("recursion", "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}{{ messages }}"),
        ("recursive loop", "{% for m in messages recursive %}{{ loop(messages) }}{% endfor %}"),
        ("output", "{% set s = 'x' * 50000000 %}{% for m in range(100) %}{{ s }}{% endfor %}{{ messages }}"),
    ];
    let chat = |model: &str| {
        json!({"model": model, "stream": false, "messages": [{"role": "user", "content": "hi"}],
               "options": {"num_predict": 2}})
    };
    tokio::time::timeout(DEADLINE, async {
        for (what, template) in templates {
            let res = e
                .post(
                    "/api/create",
                    &json!({"model": what.replace(' ', "-"), "from": TINY, "template": template, "stream": false}),
                )
                .await;
            assert_eq!(res.status, 200, "{what}: {}", res.text);
            let res = e.post("/api/chat", &chat(&what.replace(' ', "-"))).await;
            assert_eq!(res.status, 400, "{what}: {}", res.text);
            assert_eq!(res.body["code"], "template_limit", "{what}: {}", res.text);
            assert!(res.body["error"].as_str().unwrap().contains("chat template exceeded its limits"), "{}", res.text);
        }
    })
    .await
    .expect("each template fails within the deadline, not after it ran out");
    // The model's own template still renders.
    let res = e.post("/api/chat", &chat(TINY)).await;
    assert_eq!(res.status, 200, "{}", res.text);
}

#[tokio::test]
async fn no_answer_names_a_path_of_the_store() {
    let e = TestEngine::with_tiny().await;
    let data_dir = e.data_dir().display().to_string();
    let show = e.post("/api/show", &json!({"model": TINY})).await;
    assert_eq!(show.status, 200, "{}", show.text);
    let modelfile = show.body["modelfile"].as_str().unwrap();
    let from = modelfile.lines().find(|l| l.starts_with("FROM ")).unwrap();
    let digest = from.strip_prefix("FROM ").unwrap();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{modelfile}");
    let mut answers = vec![show.text];
    answers.push(e.post("/api/show", &json!({"model": TINY, "verbose": true})).await.text);
    answers.push(e.get("/api/tags").await.text);
    assert_eq!(e.complete("hi", json!({"num_predict": 1})).await["eval_count"], 1);
    answers.push(e.get("/api/ps").await.text);
    answers.push(e.get("/v1/models").await.text);
    answers.push(e.get(&format!("/v1/models/{TINY}")).await.text);
    answers.push(e.ndjson("/api/create", &json!({"model": "copy", "from": TINY})).await.0.text);
    // Failures too: a blob that is not there, a file that is not GGUF.
    let missing = format!("sha256:{}", "0".repeat(64));
    answers.push(e.post("/api/create", &json!({"model": "x", "files": {"m.gguf": missing}})).await.text);
    let junk = b"not a model";
    let junk_digest = format!("sha256:{}", hex::encode(Sha256::digest(junk)));
    e.send(e.client.post(e.url(&format!("/api/blobs/{junk_digest}"))).body(junk.to_vec())).await;
    answers.push(e.post("/api/create", &json!({"model": "x", "files": {"m.gguf": junk_digest}})).await.text);
    for answer in answers {
        assert!(!answer.contains(&data_dir), "{answer}");
        assert!(!answer.contains("blobs/sha256-"), "{answer}");
    }
}
