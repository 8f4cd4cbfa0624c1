//! One user must not be able to thrash models for everyone: `keep_alive: 0` unloads a model
//! other users are using, and a different `num_ctx` (or any runner option) reloads it. Users'
//! requests are brought within `inference.limits`; admins' pass as they are.

use kit::testing::TestInfra;
use ollamanet_inference::limits::RoleLimits;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::engine::{engine_config, import_tiny};
use crate::fake_ollama::{FakeOllama, platform_on};
use crate::helpers::{Deployment, Mode, PASSWORD, base_config};

/// Logs `username` in again (after a change of roles) and returns the new access token.
async fn login(d: &Deployment, username: &str) -> String {
    let (status, body) =
        d.call(Method::POST, "/api/auth/login", None, Some(json!({"login": username, "password": PASSWORD}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// What the node received for a request with these load settings, on each native path.
async fn received(d: &Deployment, node: &FakeOllama, token: &str, keep_alive: Value) -> Vec<Value> {
    let options = json!({"num_ctx": 1_000_000, "num_gpu": 0, "use_mmap": false, "temperature": 0.5});
    let bodies = [
        (
            "/ollama/api/chat",
            json!({"model": "shared", "stream": false, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        ("/ollama/api/generate", json!({"model": "shared", "stream": false, "prompt": "hi"})),
        ("/ollama/api/embed", json!({"model": "shared", "input": "hi"})),
        ("/ollama/api/embeddings", json!({"model": "shared", "prompt": "hi"})),
    ];
    let mut seen = Vec::new();
    for (path, mut body) in bodies {
        body["keep_alive"] = keep_alive.clone();
        body["options"] = options.clone();
        let (status, answer) = d.call(Method::POST, path, Some(token), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        let (at, req) = node.requests().pop().unwrap();
        assert_eq!(at, &path["/ollama".len()..]);
        seen.push(req);
    }
    seen
}

#[tokio::test]
async fn users_load_settings_are_brought_within_the_limits_and_admins_are_not() {
    let node = FakeOllama::start("limits", &["shared"]).await;
    let d = platform_on(&[&node], |c| {
        let research = RoleLimits { num_ctx_max: Some(8192), unload: Some(true), ..RoleLimits::default() };
        c.inference.limits.roles.insert("Research".into(), research);
    })
    .await;
    let admin = d.admin_token("root").await;
    let user = d.user_token("ulla").await;
    let researcher = d.register("rita").await;
    let (status, body) =
        d.call(Method::POST, "/api/admin/roles", Some(&admin), Some(json!({"name": "Research"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = format!("/api/admin/users/{}/roles", researcher["user"]["id"].as_str().unwrap());
    let (status, body) = d.call(Method::PUT, &path, Some(&admin), Some(json!({"roles": ["User", "Research"]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let researcher = login(&d, "rita").await;

    // A user cannot unload (0), shorten below five minutes, pin (-1) or resize the model.
    for (keep_alive, sent) in [(json!(0), None), (json!("1s"), None), (json!(-1), Some(json!("30m0s")))] {
        for req in received(&d, &node, &user, keep_alive.clone()).await {
            assert_eq!(req.get("keep_alive"), sent.as_ref(), "{keep_alive}: {req}");
            assert_eq!(req["options"], json!({"temperature": 0.5}), "{req}");
        }
    }
    for req in received(&d, &node, &user, json!("10m")).await {
        assert_eq!(req["keep_alive"], "10m", "within the limits: {req}");
    }
    // A role may be given more.
    for req in received(&d, &node, &researcher, json!(0)).await {
        assert_eq!((&req["keep_alive"], &req["options"]["num_ctx"]), (&json!(0), &json!(8192)), "{req}");
        assert!(req["options"].get("num_gpu").is_none(), "{req}");
    }
    // Admins are not limited.
    for req in received(&d, &node, &admin, json!(0)).await {
        assert_eq!(req["keep_alive"], 0, "{req}");
        assert_eq!(req["options"], json!({"num_ctx": 1_000_000, "num_gpu": 0, "use_mmap": false, "temperature": 0.5}));
    }
}

/// The embedded engine's loaded model, as the admin API reports it (null when not loaded).
async fn loaded(d: &Deployment, admin: &str) -> Value {
    let (status, models) = d.call(Method::GET, "/api/admin/engines/local/models", Some(admin), None).await;
    assert_eq!(status, StatusCode::OK, "{models}");
    let tiny = models["items"].as_array().unwrap().iter().find(|m| m["name"] == "tiny:latest").unwrap();
    tiny["loaded"].clone()
}

#[tokio::test]
async fn a_user_cannot_unload_or_reload_a_model_others_use_and_an_admin_can() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    import_tiny(infra.data_dir(), &config, "tiny", 1).await;
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let admin = d.admin_token("root").await;
    let (ann, bob) = (d.user_token("ann").await, d.user_token("bob").await);
    let chat = |options: Value| json!({"model": "tiny", "stream": false, "messages": [{"role": "user", "content": "Hello"}], "options": options});
    let unload = json!({"model": "tiny", "messages": [], "keep_alive": 0});

    let (status, body) =
        d.call(Method::POST, "/ollama/api/chat", Some(&ann), Some(chat(json!({"num_predict": 2})))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(loaded(&d, &admin).await["context_length"], 512, "loaded with the engine's context");

    // Bob's unload request only loads; his context size is not applied.
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&bob), Some(unload.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(loaded(&d, &admin).await["context_length"], 512, "still loaded after bob's keep_alive 0");
    let huge = chat(json!({"num_predict": 2, "num_ctx": 2048}));
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&bob), Some(huge.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(loaded(&d, &admin).await["context_length"], 512, "not reloaded for bob's num_ctx");
    let (status, body) =
        d.call(Method::POST, "/ollama/api/chat", Some(&ann), Some(chat(json!({"num_predict": 2})))).await;
    assert_eq!(status, StatusCode::OK, "ann is still served: {body}");

    // An admin still can.
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&admin), Some(huge)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(loaded(&d, &admin).await["context_length"], 2048, "reloaded for the admin's num_ctx");
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&admin), Some(unload)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(loaded(&d, &admin).await, Value::Null, "unloaded by the admin");
}
