//! The inference service through the gateway, driving fake Ollama nodes (test doubles for the
//! Ollama servers outside the platform): routing, failover, admission, the two public faces and
//! discovery. Engine administration is in `engines.rs`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kit::bus::DISCOVERY_EXCHANGE;
use kit::testing::{Stack, TestInfra};
use ollamanet_inference::discovery::{NODE_HEARTBEAT, NodeHeartbeat};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::fake_ollama::{FakeOllama, platform_on};
use crate::helpers::{Deployment, base_config, wait_for_nodes, without_engine};

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// The concatenated content of an NDJSON chat stream, and its last object.
async fn read_ndjson(res: reqwest::Response) -> (String, Value) {
    let text = res.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let content = lines.iter().filter_map(|l| l["message"]["content"].as_str()).collect();
    (content, lines.last().cloned().unwrap_or(Value::Null))
}

#[tokio::test]
async fn requests_go_to_a_node_that_has_the_model() {
    let a = FakeOllama::start("node-a", &["alpha"]).await;
    let b = FakeOllama::start("node-b", &["beta"]).await;
    let d = platform_on(&[&a, &b], |_| {}).await;
    let token = d.user_token("uma").await;

    for (model, node) in [("beta", "node-b"), ("alpha", "node-a"), ("beta:latest", "node-b")] {
        let res =
            d.client.post(d.at("/ollama/api/chat")).bearer_auth(&token).json(&chat(model, true)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/x-ndjson");
        let (content, last) = read_ndjson(res).await;
        assert_eq!(content, format!("Hello from {node}"));
        assert_eq!(last["done"], true);
        assert_eq!(last["eval_count"], 3);
    }
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat("gamma", false))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "model \"gamma\" not found, try pulling it first");

    let (status, tags) = d.call(Method::GET, "/ollama/api/tags", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = tags["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha:latest", "beta:latest"]);

    let (status, _) = d.call(Method::GET, "/ollama/api/tags", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the Ollama face needs a token or an API key");
}

/// An engine behind https (a TLS tunnel in front of an Ollama, as the original design's ngrok
/// URLs were) is driven like any other once the system trust store vouches for its certificate
/// (here through `SSL_CERT_FILE`). An untrusted certificate is refused by the same `kit::tls`
/// configuration; the engine's https registry test shows that.
#[tokio::test]
async fn a_node_behind_https_is_trusted_through_the_system_trust_store() {
    let (url, ca_pem) = kit::testing::serve_tls(crate::fake_ollama::router_for("tunnelled", &["alpha"])).await;
    let infra = TestInfra::new().await;
    let ca_file = infra.data_dir().join("tunnel-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let mut config = base_config(&infra);
    config.inference.nodes = vec![url.into()];
    config.inference.probe_interval = Duration::from_millis(200);
    let args = ["--only", "gateway,auth,inference"];

    let d = Deployment::process(infra, config, &args, &[("SSL_CERT_FILE", ca_file.to_str().unwrap())]).await;
    wait_for_nodes(&d, 1).await;
    let token = d.user_token("tina").await;
    let res =
        d.client.post(d.at("/ollama/api/chat")).bearer_auth(&token).json(&chat("alpha", true)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(read_ndjson(res).await.0, "Hello from tunnelled");
}

#[tokio::test]
async fn the_openai_face_speaks_openai() {
    let a = FakeOllama::start("node-a", &["alpha"]).await;
    let d = platform_on(&[&a], |_| {}).await;
    let token = d.user_token("olga").await;
    let req = json!({"model": "alpha", "messages": [{"role": "user", "content": "hi"}]});

    let (status, done) = d.call(Method::POST, "/v1/chat/completions", Some(&token), Some(req.clone())).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["object"], "chat.completion");
    assert_eq!(done["choices"][0]["message"]["content"], "Hello from node-a");
    assert_eq!(done["usage"], json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}));

    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let res = d.client.post(d.at("/v1/chat/completions")).bearer_auth(&token).json(&streamed).send().await.unwrap();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let text = res.text().await.unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(*frames.last().unwrap(), "data: [DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "Hello from node-a");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]), "one id for the whole stream");

    let (status, models) = d.call(Method::GET, "/v1/models", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(models["data"][0]["id"], "alpha:latest");
    let (status, emb) = d
        .call(Method::POST, "/v1/embeddings", Some(&token), Some(json!({"model": "alpha", "input": ["a", "b"]})))
        .await;
    assert_eq!(status, StatusCode::OK, "{emb}");
    assert_eq!(emb["data"].as_array().unwrap().len(), 2);

    let (status, err) = d
        .call(Method::POST, "/v1/chat/completions", Some(&token), Some(json!({"model": "nope", "messages": []})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["type"], "not_found_error", "OpenAI's error shape: {err}");
}

#[tokio::test]
async fn a_dead_node_leaves_other_streams_intact_and_new_requests_go_to_the_survivor() {
    let a = FakeOllama::start_with("node-a", &["alpha"], true).await;
    let b = FakeOllama::start_with("node-b", &["alpha"], true).await;
    let d = platform_on(&[&a, &b], |_| {}).await;
    let token = d.user_token("vera").await;

    // Two held streams: least-loaded routing puts one on each node.
    let mut streams = Vec::new();
    for _ in 0..2 {
        let res = d
            .client
            .post(d.at("/ollama/api/chat"))
            .bearer_auth(&token)
            .json(&chat("alpha", true))
            .send()
            .await
            .unwrap();
        let mut body = res.bytes_stream();
        let first = tokio::time::timeout(Duration::from_secs(10), body.next()).await.unwrap().unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("Hello"));
        streams.push(body);
    }
    assert_eq!((a.generations(), b.generations()), (1, 1), "one stream per node");

    a.kill();
    b.release();
    // The survivor's stream finishes normally.
    let mut rest = String::new();
    let mut on_b = streams.remove(1);
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), on_b.next()).await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(rest.contains("node-b") && rest.contains("\"done\":true"), "{rest}");

    // New requests succeed at once: a connection refused by the dead node is retried on the other.
    let b_before = b.generations();
    let started = Instant::now();
    for _ in 0..5 {
        let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat("alpha", false))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["message"]["content"], "Hello from node-b");
    }
    assert!(started.elapsed() < Duration::from_secs(1), "served by the survivor within a second");
    assert_eq!(b.generations() - b_before, 5);
}

#[tokio::test]
async fn admission_caps_users_and_queues_the_rest_in_order() {
    let a = FakeOllama::start_with("node-a", &["alpha"], true).await;
    let d = platform_on(&[&a], |c| {
        c.inference.node_capacity = 1;
        c.inference.per_user_concurrency = 1;
        c.inference.queue = 1;
    })
    .await;
    let first = d.user_token("wade").await;
    let second = d.user_token("xena").await;
    let third = d.user_token("yuri").await;

    let held =
        d.client.post(d.at("/ollama/api/chat")).bearer_auth(&first).json(&chat("alpha", true)).send().await.unwrap();
    let mut held = held.bytes_stream();
    held.next().await.unwrap().unwrap();

    // The same user again: over their own cap.
    let res =
        d.client.post(d.at("/ollama/api/chat")).bearer_auth(&first).json(&chat("alpha", false)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(header::RETRY_AFTER));

    // Another user waits in the queue and is told its place.
    let waiting = d
        .client
        .post(d.at("/ollama/api/chat"))
        .bearer_auth(&second)
        .header(ollamanet_inference::QUEUE_EVENTS, "1")
        .json(&chat("alpha", true))
        .send()
        .await
        .unwrap();
    let mut waiting = waiting.bytes_stream();
    let line = tokio::time::timeout(Duration::from_secs(10), waiting.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&line).trim(), "{\"queue_position\":1}");

    // The queue is full: a third user is turned away.
    let res =
        d.client.post(d.at("/ollama/api/chat")).bearer_auth(&third).json(&chat("alpha", false)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key(header::RETRY_AFTER));

    // The first stream ends; the waiting one runs.
    a.release();
    while held.next().await.is_some() {}
    let mut rest = String::new();
    loop {
        a.release();
        match tokio::time::timeout(Duration::from_millis(200), waiting.next()).await {
            Ok(Some(chunk)) => rest.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            Ok(None) => break,
            Err(_) => continue,
        }
    }
    assert!(rest.contains("Hello") && rest.contains("\"done\":true"), "{rest}");
}

/// Publishes a heartbeat for `node` on the deployment's own bus namespace.
async fn announce(infra_config: &kit::config::InfraConfig, node: &FakeOllama, models: &[&str]) {
    let announcer = kit::config::Platform::new(infra_config.clone(), "announcer").unwrap();
    announcer.bus.wait_connected().await;
    let beat = NodeHeartbeat {
        url: node.url.clone(),
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        load: 0,
        capacity: Some(2),
        leaving: false,
    };
    let id = uuid::Uuid::now_v7().to_string();
    announcer
        .bus
        .publish(DISCOVERY_EXCHANGE, NODE_HEARTBEAT, &id, serde_json::to_vec(&beat).unwrap().into())
        .await
        .unwrap();
    announcer.bus.close().await;
}

/// A node announced over RabbitMQ is used within a second.
#[tokio::test]
async fn an_announced_node_is_used_within_a_second() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let node = FakeOllama::start("node-c", &["gamma"]).await;
    let mut config = base_config(&infra);
    // The fake node listens on 127.0.0.1: this deployment accepts private targets.
    config.inference.announce_policy.allow_private = true;
    config.inference.announce_policy.allowed_hosts = vec!["127.0.0.1".parse().unwrap()];
    let bus_config = config.infra.clone();
    let d = Deployment::in_process_with(infra, config, &without_engine()).await;
    let token = d.user_token("ann").await;

    let started = Instant::now();
    announce(&bus_config, &node, &["gamma:latest"]).await;
    loop {
        let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat("gamma", false))).await;
        if status == StatusCode::OK {
            assert_eq!(body["message"]["content"], "Hello from node-c");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the announced node was not used within 1 s: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// With the default policy, an announcement pointing at a private address is refused: the
/// node never joins the fleet (the test above shows a joining node serves within 1 s).
#[tokio::test]
async fn an_announced_private_address_is_refused() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let node = FakeOllama::start("node-d", &["delta"]).await;
    let mut config = base_config(&infra);
    assert!(!config.inference.announce_policy.allow_private);
    config.inference.announce_policy.allowed_hosts = vec!["*".parse().unwrap()];
    let bus_config = config.infra.clone();
    let d = Deployment::in_process_with(infra, config, &without_engine()).await;
    let admin = d.admin_token("root").await;

    announce(&bus_config, &node, &["delta:latest"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, nodes) = d.call(Method::GET, "/api/admin/engines", Some(&admin), None).await;
    assert_eq!(nodes["items"], json!([]), "a node on 127.0.0.1 must not join");
    let (status, _) = d.call(Method::POST, "/ollama/api/chat", Some(&admin), Some(chat("delta", false))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(node.generations(), 0);
}
