//! The embedded engine through the whole platform: gateway → inference → engine, in one process
//! and as separate `ollamanet serve --only engine` processes, with real (tiny and SmolLM2) models.

use std::path::Path;
use std::time::{Duration, Instant};

use kit::testing::{Stack, TestInfra};
use ollamanet::config::AppConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::process::Child;

use crate::helpers::{Deployment, Mode, base_config, client, eventually, spawn_serve, wait_for_nodes, without_engine};

/// The engine key of the tests' keyed engines.
const ENGINE_KEY: &str = "test-engine-key-0123456789";

/// Engine settings for tests: one thread per worker (tests run side by side), a small context.
pub fn engine_config(config: &mut AppConfig) {
    config.engine.threads = Some(1);
    config.engine.num_ctx = 512;
}

/// Writes the tiny random-weights model made from `seed` and imports it as `name` into the
/// store under `data_dir`.
pub async fn import_tiny(data_dir: &Path, config: &AppConfig, name: &str, seed: u64) {
    std::fs::create_dir_all(data_dir).unwrap();
    let file = data_dir.join(format!("tiny-{seed}.gguf"));
    ollamanet_engine::write_tiny_llama(&file, seed).unwrap();
    ollamanet_engine::import(data_dir, &config.engine, &file, name).await.unwrap();
}

fn chat(model: &str, num_predict: i64) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Hello"}],
        "options": {"num_predict": num_predict, "temperature": 0.7, "seed": 7},
    })
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// Opens a streamed chat through the gateway and returns it after its first chunk.
async fn open_stream(d: &Deployment, token: &str, body: &Value) -> reqwest::Response {
    let mut res = d.client.post(d.at("/ollama/api/chat")).bearer_auth(token).json(body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.chunk().await.unwrap().expect("a first chunk");
    res
}

async fn ps_names(engine_url: &str) -> Vec<String> {
    let ps: Value = reqwest::get(format!("{engine_url}/api/ps")).await.unwrap().json().await.unwrap();
    ps["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_embedded_engine_serves_both_faces_through_the_gateway() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    import_tiny(infra.data_dir(), &config, "tiny", 1).await;
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let token = d.user_token("ada").await;

    let (status, tags) = d.call(Method::GET, "/ollama/api/tags", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{tags}");
    assert_eq!(tags["models"][0]["name"], "tiny:latest");

    // Ollama's face: NDJSON, one object per token, a final object with the counters.
    let mut body = chat("tiny", 8);
    body["stream"] = json!(true);
    let res = d.client.post(d.at("/ollama/api/chat")).bearer_auth(&token).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let lines = ndjson(&res.text().await.unwrap());
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "length");
    assert_eq!(last["eval_count"], 8);
    assert!(last["prompt_eval_count"].as_u64().unwrap() > 0);
    assert!(last["eval_duration"].as_u64().unwrap() > 0, "nanoseconds");
    assert_eq!(lines.iter().filter(|l| l["done"] == false).count(), 8, "one chunk per token");

    // OpenAI's face: SSE chunks, a usage chunk, [DONE].
    let res = d
        .client
        .post(d.at("/v1/chat/completions"))
        .bearer_auth(&token)
        .json(&json!({
            "model": "tiny", "stream": true, "max_tokens": 5, "seed": 1,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Hello"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let frames: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(frames.last(), Some(&"[DONE]"));
    let usage: Value = frames.iter().rev().nth(1).map(|f| serde_json::from_str(f).unwrap()).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 5, "{usage}");

    // Without a token, nothing.
    let (status, _) = d.call(Method::POST, "/ollama/api/chat", None, Some(chat("tiny", 2))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A model's chat template that would build gigabytes — one instruction makes 100 MB, each
/// `s ~ s` doubles it — fails its own request with 400 `template_limit`, in the worker process it
/// renders in: the platform's memory never holds it, and the next chat, and the next hostile
/// one, are answered.
#[tokio::test]
async fn a_chat_template_that_needs_gigabytes_fails_its_request() {
    const GREEDY: &str = "{% set s = 'x' * 100000000 %}{% set s = s ~ s %}{% set s = s ~ s %}{% set s = s ~ s %}\
        {% set s = s ~ s %}{% set s = s ~ s %}{% set s = s ~ s %}{% set s = s ~ s %}{{ s | length }}{{ messages }}";
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    import_tiny(infra.data_dir(), &config, "tiny", 1).await;
    let file = infra.data_dir().join("greedy.gguf");
    ollamanet_engine::write_tiny_llama_with_template(&file, 2, GREEDY).unwrap();
    ollamanet_engine::import(infra.data_dir(), &config.engine, &file, "greedy").await.unwrap();
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let token = d.user_token("ada").await;
    for _ in 0..2 {
        let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat("greedy", 2))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.to_string().contains("512 MiB"), "{body}");
        let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat("tiny", 2))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The platform runs in this process: 12.8 GB built here would have shown, or killed it.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak_kib: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap();
    assert!(peak_kib < 2 << 20, "this process peaked at {peak_kib} KiB");
}

/// A client that goes away mid-stream stops the decoding, through gateway and inference.
/// Users may ask the embedded engine about a model (`/ollama/api/show`): the answer names its
/// file by digest, never by where the server keeps it.
#[tokio::test]
async fn show_names_no_path_of_the_server() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    import_tiny(infra.data_dir(), &config, "tiny", 1).await;
    let data_dir = infra.data_dir().display().to_string();
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let token = d.user_token("ada").await;
    for verbose in [false, true] {
        let body = json!({"model": "tiny", "verbose": verbose});
        let res = d.client.post(d.at("/ollama/api/show")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let text = res.text().await.unwrap();
        assert!(!text.contains(&data_dir) && !text.contains("blobs/sha256-"), "{text}");
        let show: Value = serde_json::from_str(&text).unwrap();
        let modelfile = show["modelfile"].as_str().unwrap();
        assert!(modelfile.lines().any(|l| l.starts_with("FROM sha256:")), "{modelfile}");
    }
}

#[tokio::test]
async fn a_client_that_disconnects_stops_the_engine() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    import_tiny(infra.data_dir(), &config, "tiny", 1).await;
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let stats = d.engine.clone().expect("the engine runs in this process");
    let token = d.user_token("bob").await;

    let mut res = open_stream(&d, &token, &chat("tiny", -1)).await;
    for _ in 0..3 {
        res.chunk().await.unwrap().unwrap();
    }
    assert_eq!(stats.running("tiny"), 1);
    drop(res);
    eventually("the engine to cancel the generation", async || stats.requests_cancelled() == 1).await;
    assert_eq!(stats.running("tiny"), 0);
    let after = stats.tokens_generated();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stats.tokens_generated(), after, "decoding went on after the client left");
}

/// SmolLM2-135M-Instruct, fetched from PyPI by `models demo`, answers through the platform.
#[tokio::test]
async fn slow_smollm2_knows_the_capital_of_france_through_the_platform() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.engine.threads = Some(2);
    config.engine.num_ctx = 2048;
    ollamanet_engine::demo(infra.data_dir(), &config.engine, |m| eprintln!("{m}")).await.expect("demo models");
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await.patient();
    let token = d.user_token("cleo").await;

    let ask = json!({
        "model": "smollm2:135m",
        "stream": false,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "options": {"temperature": 0, "num_predict": 64},
    });
    // A real model on a loaded machine: more time than the default client's.
    let res = d
        .client
        .post(d.at("/ollama/api/chat"))
        .bearer_auth(&token)
        .json(&ask)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = body["message"]["content"].as_str().unwrap();
    assert!(answer.contains("Paris"), "{answer:?}");

    let (status, body) = d
        .call(
            Method::POST,
            "/v1/embeddings",
            Some(&token),
            Some(json!({"model": "all-minilm", "input": ["Paris is in France"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 384);
}

/// An engine process on its own data directory.
async fn engine_process(infra: &TestInfra, base: &AppConfig, name: &str, models: &[(&str, u64)]) -> (Child, String) {
    let mut config = base.clone();
    config.infra.data_dir = infra.data_dir().join(name);
    config.engine.parallel = 2;
    for (model, seed) in models {
        import_tiny(&config.infra.data_dir, &config, model, *seed).await;
    }
    spawn_serve(infra, &config, &["--only", "engine"]).await
}

/// Two engine processes: a model only one has is routed there; killing one leaves the other's
/// streams intact, and new requests go to the survivor at once.
#[tokio::test]
async fn two_engine_processes_route_by_model_and_survive_a_death() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    let (_one, url_one) = engine_process(&infra, &config, "one", &[("alpha", 1), ("shared", 3)]).await;
    let (mut two, url_two) = engine_process(&infra, &config, "two", &[("shared", 3)]).await;
    config.inference.nodes = vec![url_one.clone().into(), url_two.clone().into()];
    config.inference.probe_interval = Duration::from_millis(200);
    let d = Deployment::in_process_with(infra, config, &without_engine()).await;
    let token = d.user_token("dora").await;
    // Both nodes, not only the first with both models: routing by load needs to know of two.
    wait_for_nodes(&d, 2).await;

    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat("alpha", 3))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ps_names(&url_one).await, ["alpha:latest"]);
    assert!(ps_names(&url_two).await.is_empty(), "alpha is not on node two");

    // One endless stream on each node (least in-flight first).
    let mut first = open_stream(&d, &token, &chat("shared", -1)).await;
    let mut second = open_stream(&d, &token, &chat("shared", -1)).await;
    assert!(ps_names(&url_two).await.contains(&"shared:latest".to_owned()), "the second stream went to node two");

    two.kill().await.unwrap();
    // What node two sent before dying may still be in flight; after that its stream ends, while
    // the other goes on.
    let mut alive = 0;
    for stream in [&mut first, &mut second] {
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        let ended = loop {
            match tokio::time::timeout_at(until, stream.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(_) => break true,
                Err(_) => break false,
            }
        };
        if !ended {
            alive += 1;
        }
    }
    assert_eq!(alive, 1, "the stream on the surviving node goes on; the other one ends");

    // New requests reach the survivor right away (a refused connection is retried on another
    // node before the first byte).
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat("shared", 2))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(started.elapsed() < Duration::from_secs(1), "a request after the death took {:?}", started.elapsed());
    }
}

/// `serve --only engine --announce` and `ollamanet announce --url` put engines into the fleet
/// over RabbitMQ; each is used within a second of announcing, reached with the deployment's
/// engine key.
#[tokio::test]
async fn announced_engines_are_used_within_a_second() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    // The engines listen on 127.0.0.1: this deployment accepts private targets.
    config.inference.announce_policy.allow_private = true;
    config.inference.announce_policy.allowed_hosts = vec!["127.0.0.1".parse().unwrap()];
    config.engine.key = Some(ENGINE_KEY.into());
    config.inference.engine_key = Some(ENGINE_KEY.into());
    let base = config.clone();
    let d = Deployment::in_process_with(infra, config, &without_engine()).await;
    let infra = d.infra();
    let token = d.user_token("eli").await;

    let mut announced = base.clone();
    announced.infra.data_dir = infra.data_dir().join("announced");
    import_tiny(&announced.infra.data_dir, &announced, "beta", 2).await;
    let (_engine, _) = spawn_serve(infra, &announced, &["--only", "engine", "--announce"]).await;
    let started = Instant::now();
    eventually("the announced engine to serve", async || {
        d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat("beta", 2))).await.0 == StatusCode::OK
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());

    // An engine somewhere else (here: another engine process, as a real Ollama would be),
    // announced by the CLI.
    let (_other, other_url) = engine_process(infra, &base, "elsewhere", &[("gamma", 4)]).await;
    let file = infra.data_dir().join("announce.toml");
    std::fs::write(&file, ollamanet::config::to_toml(&base, false)).unwrap();
    let _announcer = tokio::process::Command::new(env!("CARGO_BIN_EXE_ollamanet"))
        .args(["--config", file.to_str().unwrap(), "announce", "--url", &other_url])
        .env_remove("AMQP_URL")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    eventually("the engine announced by the CLI to serve", async || {
        d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat("gamma", 2))).await.0 == StatusCode::OK
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?} (including the CLI's start)", started.elapsed());
}

/// Every route of an engine process, with a body that would do harm (or work) if it got through.
fn every_engine_route() -> Vec<(Method, String, Option<Value>)> {
    let blob = format!("/api/blobs/sha256:{}", "ab".repeat(32));
    let post = |path: &str, body: Value| (Method::POST, path.to_owned(), Some(body));
    let get = |path: &str| (Method::GET, path.to_owned(), None);
    vec![
        get("/"),
        get("/api/version"),
        get("/api/tags"),
        post("/api/show", json!({"model": "tiny"})),
        get("/api/ps"),
        post("/api/generate", json!({"model": "tiny", "prompt": "Hi", "stream": false, "options": {"num_predict": 1}})),
        post("/api/chat", chat("tiny", 1)),
        post("/api/embed", json!({"model": "tiny", "input": "Hi"})),
        post("/api/embeddings", json!({"model": "tiny", "prompt": "Hi"})),
        post("/api/pull", json!({"model": "http://127.0.0.1:9/attacker/model", "insecure": true})),
        (Method::DELETE, "/api/delete".into(), Some(json!({"model": "tiny"}))),
        post("/api/copy", json!({"source": "tiny", "destination": "stolen"})),
        post("/api/create", json!({"model": "planted", "from": "tiny"})),
        (Method::POST, blob.clone(), None),
        (Method::HEAD, blob, None),
        post(
            "/v1/chat/completions",
            json!({"model": "tiny", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}),
        ),
        post("/v1/completions", json!({"model": "tiny", "max_tokens": 1, "prompt": "Hi"})),
        post("/v1/embeddings", json!({"model": "tiny", "input": "Hi"})),
        get("/v1/models"),
        get("/health"),
        get("/ready"),
        get("/metrics"),
        get("/openapi.json"),
        get("/no/such/route"),
    ]
}

async fn engine_call(
    url: &str,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = client().request(method, format!("{url}{path}"));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    match body {
        Some(body) => req.json(body),
        None if path.starts_with("/api/blobs/") => req.body("not a model"),
        None => req,
    }
    .send()
    .await
    .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An engine process with a key answers 401, in Ollama's error format, on every route to a
/// caller without it (or with another): nobody can delete, copy, create, upload, pull or run a
/// model. With the key, the same API works.
#[tokio::test]
async fn an_engine_with_a_key_answers_nothing_without_it() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    config.engine.key = Some(ENGINE_KEY.into());
    let (_engine, url) = engine_process(&infra, &config, "keyed", &[("tiny", 1)]).await;

    for (method, path, body) in every_engine_route() {
        for key in [None, Some("test-engine-key-0123456788"), Some("")] {
            let res = engine_call(&url, method.clone(), &path, key, body.as_ref()).await;
            let status = res.status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {key:?}");
            assert!(res.headers().contains_key("www-authenticate"), "{method} {path}");
            if method != Method::HEAD {
                let body: Value = res.json().await.unwrap();
                assert!(body["error"].as_str().is_some_and(|e| e.contains("unauthorized")), "{body}");
            }
        }
    }

    // Nothing the attempts asked for happened.
    let tags: Value = engine_call(&url, Method::GET, "/api/tags", Some(ENGINE_KEY), None).await.json().await.unwrap();
    let names: Vec<&str> = tags["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tiny:latest"]);
    let blob = every_engine_route().into_iter().find(|(m, _, _)| *m == Method::HEAD).unwrap().1;
    let res = engine_call(&url, Method::HEAD, &blob, Some(ENGINE_KEY), None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "no blob was uploaded");

    // With the key: a chat, and a copy that can be deleted again.
    let res = engine_call(&url, Method::POST, "/api/chat", Some(ENGINE_KEY), Some(&chat("tiny", 2))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(ndjson(&res.text().await.unwrap()).last().unwrap()["done"], true);
    let copy = json!({"source": "tiny", "destination": "copied"});
    let res = engine_call(&url, Method::POST, "/api/copy", Some(ENGINE_KEY), Some(&copy)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res =
        engine_call(&url, Method::DELETE, "/api/delete", Some(ENGINE_KEY), Some(&json!({"model": "copied"}))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = engine_call(&url, Method::GET, "/health", Some(ENGINE_KEY), None).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Gateway and inference in one process, a keyed engine in another: configured with its key the
/// engine serves a chat end to end; configured without it, the node stays out of the fleet.
#[tokio::test]
async fn the_platform_reaches_a_keyed_engine_with_its_key() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    let mut keyed = config.clone();
    keyed.engine.key = Some(ENGINE_KEY.into());
    let (_engine, url) = engine_process(&infra, &keyed, "keyed", &[("tiny", 1)]).await;
    let (_other, other_url) = engine_process(&infra, &keyed, "unkeyed-config", &[]).await;
    config.inference.nodes = vec![
        ollamanet_inference::NodeConfig { url: url.clone(), key: Some(ENGINE_KEY.into()) },
        other_url.clone().into(),
    ];
    config.inference.probe_interval = Duration::from_millis(200);
    let d = Deployment::in_process_with(infra, config, &without_engine()).await;
    wait_for_nodes(&d, 1).await;
    let token = d.user_token("kim").await;

    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat("tiny", 2))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin = d.admin_token("keyadmin").await;
    let (_, list) = d.call(Method::GET, "/api/admin/engines", Some(&admin), None).await;
    let other = list["items"].as_array().unwrap().iter().find(|n| n["url"] == other_url.as_str()).expect("listed");
    assert_eq!(other["healthy"], false, "{other}");
    assert!(other["last_error"].as_str().is_some_and(|e| e.contains("401")), "{other}");
}

/// `ollamanet serve ARGS` that must refuse to start: its exit status and what it said.
async fn refused(infra: &TestInfra, config: &AppConfig, args: &[&str]) -> String {
    let file = infra.data_dir().join(format!("refused-{}.toml", args.join("_").replace([',', ':', '.'], "-")));
    std::fs::write(&file, ollamanet::config::to_toml(config, false)).unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_ollamanet"))
        .args(["--config", file.to_str().unwrap(), "serve"])
        .args(args)
        .env_remove("AMQP_URL")
        .env_remove("OLLAMANET_ENGINE__KEY")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("exits in time").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && !stdout.contains("listening on"), "{args:?} started: {stdout}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An engine without a key does not listen beyond loopback, is not announced, and never shares
/// a listener with other services.
#[tokio::test]
async fn an_engine_without_a_key_refuses_to_listen_on_the_network() {
    let infra = TestInfra::new().await;
    let config = base_config(&infra);
    let said = refused(&infra, &config, &["--only", "engine", "--listen", "0.0.0.0:0"]).await;
    assert!(said.contains("engine.key") && said.contains("0.0.0.0:0"), "{said}");
    let said = refused(&infra, &config, &["--only", "engine", "--listen", "127.0.0.1:0", "--announce"]).await;
    assert!(said.contains("engine.key"), "{said}");
    let said = refused(&infra, &config, &["--only", "engine,auth", "--listen", "127.0.0.1:0"]).await;
    assert!(said.contains("never shares a listener"), "{said}");
}
