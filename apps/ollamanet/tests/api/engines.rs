//! Engine administration through the gateway (`/api/admin/engines…`, served by the inference
//! service): the fleet's state, a node's models, pulls with streamed progress, deletes, who may
//! do it, and the audit records of pulls and deletes. Engines are fake Ollama nodes (test doubles
//! for the Ollama servers outside the platform) and the real embedded engine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kit::bus::{EVENTS_EXCHANGE, Handler, HandlerError, Message, Subscription};
use kit::testing::{Stack, TestInfra};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::engine::import_tiny;
use crate::fake_ollama::{FakeOllama, config_with_nodes, platform_on};
use crate::helpers::{Deployment, SseReader, base_config, eventually, wait_for_nodes, without_engine};

/// A node's id: its URL's `host:port`.
fn id(node: &FakeOllama) -> String {
    node.url.strip_prefix("http://").unwrap().to_owned()
}

fn engine(node: &FakeOllama) -> String {
    format!("/api/admin/engines/{}", id(node))
}

async fn pull(d: &Deployment, token: &str, node: &str, body: Value) -> reqwest::Response {
    d.client.post(d.at(&format!("/api/admin/engines/{node}/pull"))).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn model_names(d: &Deployment, token: &str, node: &str) -> Vec<String> {
    let (status, models) = d.call(Method::GET, &format!("/api/admin/engines/{node}/models"), Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{models}");
    models["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn administrators_see_every_engine_with_its_state() {
    let a = FakeOllama::start("node-a", &["alpha"]).await;
    let b = FakeOllama::start("node-b", &["beta", "gamma:7b"]).await;
    let d = platform_on(&[&a, &b], |c| c.inference.node_capacity = 3).await;
    let admin = d.admin_token("root").await;

    let (status, list) = d.call(Method::GET, "/api/admin/engines", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["next_cursor"], Value::Null);
    assert_eq!(list["admission"], json!({"running": 0, "waiting": 0, "capacity": 6}));
    let nodes = list["items"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    let first = nodes.iter().find(|n| n["url"] == a.url).expect("node a listed");
    assert_eq!(first["id"], id(&a));
    assert_eq!(first["source"], "configured");
    assert_eq!(first["healthy"], true);
    assert_eq!(first["breaker"], "closed");
    assert_eq!(first["models"], json!(["alpha:latest"]));
    assert_eq!(first["loaded"], json!([]));
    assert_eq!((first["in_flight"].as_u64(), first["capacity"].as_u64()), (Some(0), Some(3)));
    assert!(first["last_probe_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{first}");
    assert_eq!(first["last_error"], Value::Null);

    let (status, one) = d.call(Method::GET, &engine(&b), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (one["id"].as_str(), one["models"].clone()),
        (Some(id(&b).as_str()), json!(["beta:latest", "gamma:7b"]))
    );

    let (status, missing) = d.call(Method::GET, "/api/admin/engines/nowhere:1", Some(&admin), None).await;
    assert_eq!((status, missing["code"].as_str()), (StatusCode::NOT_FOUND, Some("node_not_found")), "{missing}");
    let (status, _) = d.call(Method::GET, "/api/admin/engines/nowhere:1/models", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A node's models as the node reports them.
    let (status, models) = d.call(Method::GET, &format!("{}/models", engine(&b)), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{models}");
    let beta = &models["items"][0];
    assert_eq!(beta["name"], "beta:latest");
    assert_eq!((beta["size"].as_u64(), beta["digest"].as_str()), (Some(1000), Some("0123456789abcdef")));
    assert_eq!(beta["modified_at"], "2025-01-01T00:00:00Z");
    assert_eq!(beta["details"]["quantization_level"], "Q4_0");
    assert_eq!(beta["loaded"], Value::Null);
    assert_eq!(models["items"][1]["name"], "gamma:7b");

    // Engines' own management endpoints stay unreachable through the user-facing face.
    for path in ["/ollama/api/pull", "/ollama/api/delete", "/ollama/api/create", "/ollama/api/copy"] {
        let (status, _) = d.call(Method::POST, path, Some(&admin), Some(json!({"model": "alpha"}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn a_pull_streams_its_progress_and_the_model_is_then_on_the_node() {
    let a = FakeOllama::start("node-a", &["alpha"]).await;
    let d = platform_on(&[&a], |_| {}).await;
    let admin = d.admin_token("root").await;
    let user = d.user_token("uma").await;

    let res = pull(&d, &admin, &id(&a), json!({"model": "delta"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let events = SseReader::new(res).rest().await;
    let (last, progress) = events.split_last().unwrap();
    assert!(progress.len() >= 3 && progress.iter().all(|e| e.event == "progress"), "{events:?}");
    assert_eq!(progress.last().unwrap().data["status"], "writing manifest");
    let downloading = progress.iter().find(|e| e.data.get("total").is_some()).expect("a download step");
    assert_eq!(downloading.data["digest"], "sha256:abc");
    assert_eq!(downloading.data["total"], 100);
    assert!(downloading.data["completed"].is_u64());
    assert_eq!(
        (last.event.as_str(), &last.data),
        ("done", &json!({"node": id(&a), "model": "delta", "status": "success"}))
    );

    // On the node, in the fleet's view, and routable as soon as the pull is done.
    assert!(a.has("delta"));
    assert!(model_names(&d, &admin, &id(&a)).await.contains(&"delta:latest".to_owned()));
    let (_, node) = d.call(Method::GET, &engine(&a), Some(&admin), None).await;
    assert_eq!(node["models"], json!(["alpha:latest", "delta:latest"]));
    let chat = json!({"model": "delta", "stream": false, "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&user), Some(chat)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A model the registry does not have: the stream ends with an error event.
    let res = pull(&d, &admin, &id(&a), json!({"model": "missing-model:1b"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let events = SseReader::new(res).rest().await;
    let last = events.last().unwrap();
    assert_eq!(last.event, "error", "{events:?}");
    assert_eq!((last.data["status"].as_u64(), last.data["code"].as_str()), (Some(502), Some("pull_failed")));
    assert!(last.data["detail"].as_str().unwrap().contains("file does not exist"), "{}", last.data);
    assert!(!a.has("missing-model:1b"));
}

#[tokio::test]
async fn a_bad_pull_is_refused_before_the_node_is_asked() {
    let a = FakeOllama::start("node-a", &["alpha"]).await;
    let d = platform_on(&[&a], |_| {}).await;
    let admin = d.admin_token("root").await;

    for bad in ["../etc/passwd", "a b", "x:", "a/b/c/d", "", "-x"] {
        let res = pull(&d, &admin, &id(&a), json!({"model": bad})).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_model_name", "{problem}");
        assert_eq!(problem["errors"][0]["field"], "model");
    }
    let (status, problem) =
        d.call(Method::POST, &format!("{}/pull", engine(&a)), Some(&admin), Some(json!({"name": "delta"}))).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")),
        "{problem}"
    );
    let res = pull(&d, &admin, "nowhere:1", json!({"model": "delta"})).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "node_not_found");
    assert!(!a.has("delta"));
}

/// Ollama stops a pull whose client goes away; the platform's pull goes on without its admin.
#[tokio::test]
async fn a_pull_goes_on_when_the_admin_goes_away() {
    let a = FakeOllama::start_with("node-a", &["alpha"], true).await;
    let d = platform_on(&[&a], |_| {}).await;
    let admin = d.admin_token("root").await;

    let mut events = SseReader::new(pull(&d, &admin, &id(&a), json!({"model": "epsilon"})).await);
    assert_eq!(events.next().await.unwrap().event, "progress");
    drop(events);
    // Time for the disconnection to reach the inference service, with the node's pull held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!a.has("epsilon"));
    eventually("the pull finishing without its client", async || {
        a.release();
        a.has("epsilon")
    })
    .await;
    eventually("the fleet seeing the model", async || {
        d.call(Method::GET, &engine(&a), Some(&admin), None).await.1["models"]
            .as_array()
            .is_some_and(|m| m.contains(&json!("epsilon:latest")))
    })
    .await;
}

/// Asking again while a pull runs follows that pull rather than starting a second one.
#[tokio::test]
async fn a_second_request_follows_the_running_pull() {
    let a = FakeOllama::start_with("node-a", &["alpha"], true).await;
    let d = platform_on(&[&a], |_| {}).await;
    let admin = d.admin_token("root").await;

    let mut first = SseReader::new(pull(&d, &admin, &id(&a), json!({"model": "zeta"})).await);
    assert_eq!(first.next().await.unwrap().data["status"], "pulling manifest");
    let mut second = SseReader::new(pull(&d, &admin, &id(&a), json!({"model": "zeta:latest"})).await);
    assert_eq!(second.next().await.unwrap().data["status"], "pulling manifest", "the latest progress first");
    eventually("the pull finishing", async || {
        a.release();
        a.has("zeta")
    })
    .await;
    for events in [first, second] {
        let rest = events.rest().await;
        assert_eq!(rest.last().unwrap().event, "done", "{rest:?}");
    }
    assert_eq!(a.pulls(), 1, "one pull on the node");
}

#[tokio::test]
async fn a_delete_removes_the_model_from_the_node() {
    let a = FakeOllama::start("node-a", &["alpha", "team/beta:q4"]).await;
    let d = platform_on(&[&a], |_| {}).await;
    let admin = d.admin_token("root").await;
    let delete = |model: &str| format!("{}/models?model={model}", engine(&a));

    let (status, body) = d.call(Method::DELETE, &delete("team/beta:q4"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(!a.has("team/beta:q4"));
    assert_eq!(model_names(&d, &admin, &id(&a)).await, ["alpha:latest"]);
    let (_, node) = d.call(Method::GET, &engine(&a), Some(&admin), None).await;
    assert_eq!(node["models"], json!(["alpha:latest"]), "the fleet knows at once");

    let (status, body) = d.call(Method::DELETE, &delete("team/beta:q4"), Some(&admin), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("model_not_found")), "{body}");
    let (status, body) = d.call(Method::DELETE, &delete("..%2Fx"), Some(&admin), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_model_name")), "{body}");
    let (status, body) = d.call(Method::DELETE, &format!("{}/models", engine(&a)), Some(&admin), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")), "{body}");
    let (status, body) =
        d.call(Method::DELETE, "/api/admin/engines/nowhere:1/models?model=alpha", Some(&admin), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("node_not_found")));

    let (status, _) = d.call(Method::DELETE, &delete("alpha"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!a.has("alpha"));
    assert!(model_names(&d, &admin, &id(&a)).await.is_empty());
}

/// Every route, for checking who may call it.
fn routes(node: &str) -> Vec<(Method, String, Option<Value>)> {
    let base = format!("/api/admin/engines/{node}");
    vec![
        (Method::GET, "/api/admin/engines".to_owned(), None),
        (Method::GET, base.clone(), None),
        (Method::GET, format!("{base}/models"), None),
        (Method::DELETE, format!("{base}/models?model=alpha"), None),
        (Method::POST, format!("{base}/pull"), Some(json!({"model": "delta"}))),
    ]
}

#[tokio::test]
async fn only_administrators_reach_engine_administration() {
    let a = FakeOllama::start("node-a", &["alpha"]).await;
    let d = platform_on(&[&a], |_| {}).await;
    let user = d.user_token("uma").await;

    for (method, path, body) in routes(&id(&a)) {
        let (status, problem) = d.call(method.clone(), &path, Some(&user), body.clone()).await;
        assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{method} {path}");
        let (status, _) = d.call(method.clone(), &path, None, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // The old paths are gone.
    let admin = d.admin_token("root").await;
    let (status, _) = d.call(Method::GET, "/api/inference/nodes", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(a.has("alpha") && !a.has("delta"));
}

/// The inference service checks the Admin role itself: reached without the gateway (its own
/// process), a user is refused just the same. The gateway in front of it still streams a pull.
#[tokio::test]
async fn the_inference_service_checks_the_role_itself() {
    let a = FakeOllama::start("node-a", &["alpha"]).await;
    let infra = TestInfra::new().await;
    let config = config_with_nodes(&infra, &[&a]);
    let d = Deployment::apart(infra, config, &["auth", "inference"]).await;
    wait_for_nodes(&d, 1).await;
    let inference = d.config.upstreams["inference"].0[0].clone();
    let user = d.user_token("uma").await;
    let admin = d.admin_token("root").await;

    for (method, path, body) in routes(&id(&a)) {
        let mut req = d.client.request(method.clone(), format!("{inference}{path}")).bearer_auth(&user);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    let res = d.client.get(format!("{inference}/api/admin/engines")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let events = SseReader::new(pull(&d, &admin, &id(&a), json!({"model": "delta"})).await).rest().await;
    assert_eq!(events.last().unwrap().event, "done", "{events:?}");
    assert!(a.has("delta"));
}

struct Collect(Arc<Mutex<Vec<Value>>>);

#[async_trait]
impl Handler for Collect {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(serde_json::from_slice(&msg.body).unwrap());
        Ok(())
    }
}

/// Pulls and deletes reach the audit log's consumers as `admin.audited` events, on RabbitMQ.
#[tokio::test]
async fn pulls_and_deletes_are_audited() {
    let a = FakeOllama::start("node-a", &["alpha"]).await;
    let infra = TestInfra::with_stack(Stack::Full).await;
    let observer = kit::config::Platform::new(infra.config.clone(), "observer").unwrap();
    observer.bus.wait_connected().await;
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sub = Subscription::broadcast(EVENTS_EXCHANGE, "audit-observer", &[kit::audit::AUDITED]);
    observer.bus.subscribe(sub, Arc::new(Collect(seen.clone()))).await;
    let config = config_with_nodes(&infra, &[&a]);
    let d = Deployment::in_process_with(infra, config, &without_engine()).await;
    wait_for_nodes(&d, 1).await;
    let admin = d.admin_token("root").await;
    let (_, me) = d.call(Method::GET, "/api/auth/me", Some(&admin), None).await;

    let events = SseReader::new(pull(&d, &admin, &id(&a), json!({"model": "delta"})).await).rest().await;
    assert_eq!(events.last().unwrap().event, "done");
    let (status, _) = d.call(Method::DELETE, &format!("{}/models?model=alpha", engine(&a)), Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Refused actions are not.
    let (status, _) = d.call(Method::DELETE, &format!("{}/models?model=alpha", engine(&a)), Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    eventually("both audit records delivered", async || seen.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for event in &seen {
        assert_eq!((event["type"].as_str(), event["source"].as_str()), (Some("admin.audited"), Some("inference")));
        let record = &event["data"];
        assert_eq!(record["actor_id"], me["id"]);
        assert_eq!(record["actor"], "root");
        assert_eq!(
            (record["target_type"].as_str(), record["target_id"].as_str()),
            (Some("engine"), Some(id(&a).as_str()))
        );
        assert!(record["request_id"].is_string(), "{record}");
    }
    assert_eq!(seen[0]["data"]["action"], "engine.pull");
    assert_eq!(seen[0]["data"]["after"], json!({"model": "delta", "insecure": false}));
    assert_eq!(seen[1]["data"]["action"], "engine.delete_model");
    assert_eq!(seen[1]["data"]["before"], json!({"model": "alpha"}));
    observer.bus.close().await;
}

/// The embedded engine is the node `local`: its models, the loaded one, and a delete.
#[tokio::test]
async fn the_embedded_engine_is_the_local_node() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.engine.threads = Some(1);
    config.engine.num_ctx = 512;
    import_tiny(infra.data_dir(), &config, "tiny", 1).await;
    let d = Deployment::in_process_with(infra, config, &ollamanet::app::Service::ALL).await;
    wait_for_nodes(&d, 1).await;
    let admin = d.admin_token("root").await;

    let (_, list) = d.call(Method::GET, "/api/admin/engines", Some(&admin), None).await;
    let local = &list["items"][0];
    assert_eq!((local["id"].as_str(), local["source"].as_str()), (Some("local"), Some("local")), "{list}");
    assert_eq!(local["url"], Value::Null);
    assert_eq!(local["models"], json!(["tiny:latest"]));

    let chat = json!({"model": "tiny", "stream": false, "messages": [{"role": "user", "content": "hi"}],
        "options": {"num_predict": 2}});
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&admin), Some(chat)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, models) = d.call(Method::GET, "/api/admin/engines/local/models", Some(&admin), None).await;
    let tiny = &models["items"][0];
    assert_eq!(tiny["name"], "tiny:latest", "{models}");
    assert!(tiny["size"].as_u64().unwrap() > 0 && tiny["digest"].as_str().is_some_and(|d| d.len() == 64), "{tiny}");
    assert_eq!(tiny["details"]["format"], "gguf");
    assert!(tiny["loaded"]["size"].as_u64().is_some() && tiny["loaded"]["expires_at"].is_string(), "{tiny}");

    let (status, body) = d.call(Method::DELETE, "/api/admin/engines/local/models?model=tiny", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, models) = d.call(Method::GET, "/api/admin/engines/local/models", Some(&admin), None).await;
    assert_eq!(models["items"], json!([]));
    let (status, body) = d.call(Method::DELETE, "/api/admin/engines/local/models?model=tiny", Some(&admin), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("model_not_found")), "{body}");
}

/// The embedded engine's registry is not there (nothing listens on its port): the admin's pull
/// is a 502 problem with the engine's code before any stream, not a 500 nor a stream that fails,
/// and the engine is asked again as soon as the registry is back.
#[tokio::test]
async fn a_pull_from_an_unreachable_registry_is_a_502_with_its_code() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    crate::engine::engine_config(&mut config);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    config.engine.registry_url = format!("http://{closed}");
    let d = Deployment::start_with(crate::helpers::Mode::AllInOne, infra, config).await;
    wait_for_nodes(&d, 1).await;
    let admin = d.admin_token("root").await;
    let (_, nodes) = d.call(Method::GET, "/api/admin/engines", Some(&admin), None).await;
    let node = nodes["items"][0]["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let res = pull(&d, &admin, &node, json!({"model": "tiny"})).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["code"], "registry_unavailable", "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(&closed.to_string()), "{problem}");
    }
}
