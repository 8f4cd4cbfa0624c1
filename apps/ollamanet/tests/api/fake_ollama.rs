//! A fake Ollama server: a test double standing for the Ollama servers outside the platform that
//! the inference service drives. It speaks Ollama's wire format for the endpoints the platform
//! uses, answers with its own name in every generation (so tests can tell which node answered),
//! and can hold a stream open until the test releases it, or die.
//!
//! It reads request bodies as Ollama does, with Go's `encoding/json`: an object's keys match a
//! request's fields regardless of case (Unicode simple folding: `ſ` is an `s`, the Kelvin sign a
//! `k`), the last of several matching keys wins, and `options` is a map whose keys match exactly
//! (again the last wins). What it ran is what such a server would have run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kit::testing::TestInfra;
use ollamanet::config::AppConfig;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Deployment, base_config, wait_for_nodes, without_engine};

#[derive(Clone)]
struct Node {
    name: String,
    models: Arc<Mutex<Vec<String>>>,
    /// When set, a stream stops after its first chunk until released.
    gate: Option<Arc<Notify>>,
    generations: Arc<Mutex<usize>>,
    /// Every chat request's body as Go reads it, in arrival order.
    chats: Arc<Mutex<Vec<Value>>>,
    /// Every request to a model (chat, generate, embed, embeddings, show) as Go reads it, with
    /// its path, in arrival order.
    requests: Arc<Mutex<Vec<(&'static str, Value)>>>,
    /// Pull requests received.
    pulls: Arc<Mutex<usize>>,
}

pub struct FakeOllama {
    pub url: String,
    models: Arc<Mutex<Vec<String>>>,
    gate: Option<Arc<Notify>>,
    generations: Arc<Mutex<usize>>,
    chats: Arc<Mutex<Vec<Value>>>,
    requests: Arc<Mutex<Vec<(&'static str, Value)>>>,
    pulls: Arc<Mutex<usize>>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl FakeOllama {
    pub async fn start(name: &str, models: &[&str]) -> Self {
        Self::start_with(name, models, false).await
    }

    /// `gated`: every stream (generation or pull) waits after its first chunk for
    /// [`FakeOllama::release`].
    pub async fn start_with(name: &str, models: &[&str], gated: bool) -> Self {
        let node = Node::new(name, models, gated);
        let app = router(&node);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let server = tokio::spawn(kit::server::serve(
            listener,
            app,
            stop.clone(),
            kit::server::ServeOptions { drain_timeout: std::time::Duration::ZERO, ..Default::default() },
        ));
        Self {
            url,
            models: node.models,
            gate: node.gate,
            generations: node.generations,
            chats: node.chats,
            requests: node.requests,
            pulls: node.pulls,
            stop,
            server,
        }
    }

    /// Lets every held stream continue.
    pub fn release(&self) {
        if let Some(g) = &self.gate {
            g.notify_waiters();
        }
    }

    pub fn generations(&self) -> usize {
        *self.generations.lock().unwrap()
    }

    /// The bodies of the chat requests received so far.
    pub fn chats(&self) -> Vec<Value> {
        self.chats.lock().unwrap().clone()
    }

    /// The requests to a model received so far (path, body as Go reads it).
    pub fn requests(&self) -> Vec<(&'static str, Value)> {
        self.requests.lock().unwrap().clone()
    }

    /// The models the requests received so far named, as Go reads them (`name:tag`).
    pub fn models_asked(&self) -> Vec<String> {
        self.requests().iter().map(|(_, body)| full(body["model"].as_str().unwrap_or_default())).collect()
    }

    pub fn pulls(&self) -> usize {
        *self.pulls.lock().unwrap()
    }

    pub fn has(&self, model: &str) -> bool {
        self.models.lock().unwrap().contains(&full(model))
    }

    /// The server dies: its port closes and its open connections are cut.
    pub fn kill(&self) {
        self.stop.cancel();
        self.server.abort();
    }
}

/// The fake's routes, for a test that serves them itself (e.g. over TLS).
pub fn router_for(name: &str, models: &[&str]) -> Router {
    router(&Node::new(name, models, false))
}

impl Node {
    fn new(name: &str, models: &[&str], gated: bool) -> Self {
        Node {
            name: name.to_owned(),
            models: Arc::new(Mutex::new(models.iter().map(|m| full(m)).collect())),
            gate: gated.then(|| Arc::new(Notify::new())),
            generations: Arc::default(),
            chats: Arc::default(),
            requests: Arc::default(),
            pulls: Arc::default(),
        }
    }
}

fn router(node: &Node) -> Router {
    Router::new()
        .route("/api/version", get(|| async { Json(json!({"version": "0.12.0"})) }))
        .route("/api/tags", get(tags))
        .route("/api/ps", get(|| async { Json(json!({"models": []})) }))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/api/embed", post(embed))
        .route("/api/embeddings", post(embeddings))
        .route("/api/show", post(show))
        .route("/api/pull", post(pull))
        .route("/api/delete", delete(remove))
        .with_state(node.clone())
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.kill();
    }
}

fn full(model: &str) -> String {
    if model.contains(':') { model.to_owned() } else { format!("{model}:latest") }
}

fn entry(name: &str) -> Value {
    json!({
        "name": name, "model": name, "modified_at": "2025-01-01T00:00:00Z", "size": 1000,
        "digest": "0123456789abcdef", "details": {"format": "gguf", "family": "llama", "parameter_size": "1B", "quantization_level": "Q4_0"}
    })
}

async fn tags(State(n): State<Node>) -> Json<Value> {
    let models: Vec<Value> = n.models.lock().unwrap().iter().map(|m| entry(m)).collect();
    Json(json!({ "models": models }))
}

fn not_found(model: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": format!("model \"{model}\" not found, try pulling it first")})))
        .into_response()
}

const METRICS: [(&str, u64); 6] = [
    ("total_duration", 5_000_000),
    ("load_duration", 1_000_000),
    ("prompt_eval_count", 7),
    ("prompt_eval_duration", 1_000_000),
    ("eval_count", 3),
    ("eval_duration", 2_000_000),
];

/// The answer's three pieces; the last names the node.
fn pieces(n: &Node) -> [String; 3] {
    ["Hello".into(), " from".into(), format!(" {}", n.name)]
}

async fn generation(n: Node, req: Value, chat: bool) -> Response {
    let model = full(req["model"].as_str().unwrap_or_default());
    if !n.models.lock().unwrap().contains(&model) {
        return not_found(&model);
    }
    *n.generations.lock().unwrap() += 1;
    if chat {
        n.chats.lock().unwrap().push(req.clone());
    }
    let stream = req["stream"].as_bool().unwrap_or(true);
    let shape = move |text: &str, done: bool| {
        let mut v = json!({"model": model, "created_at": "2025-01-01T00:00:00Z", "done": done});
        if chat {
            v["message"] = json!({"role": "assistant", "content": text});
        } else {
            v["response"] = json!(text);
        }
        if done {
            v["done_reason"] = json!("stop");
            for (k, value) in METRICS {
                v[k] = json!(value);
            }
        }
        v
    };
    let parts = pieces(&n);
    if !stream {
        return Json(shape(&parts.concat(), true)).into_response();
    }
    let gate = n.gate.clone();
    let lines = async_stream(move |tx| async move {
        let mut first = true;
        for p in parts {
            if tx.send(shape(&p, false)).await.is_err() {
                return;
            }
            if std::mem::take(&mut first)
                && let Some(g) = &gate
            {
                g.notified().await;
            }
        }
        let _ = tx.send(shape("", true)).await;
    });
    let mut res = Response::new(lines);
    res.headers_mut().insert("content-type", "application/x-ndjson".parse().unwrap());
    res
}

/// A body fed line by line from a task; dropping the body ends the task at its next send.
fn async_stream<F, Fut>(produce: F) -> Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Value>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(1);
    tokio::spawn(produce(tx));
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(format!("{v}\n")), rx))
    }))
}

async fn chat(State(n): State<Node>, body: Bytes) -> Response {
    match n.read("/api/chat", &body) {
        Ok(req) => generation(n, req, true).await,
        Err(e) => e.into_response(),
    }
}

async fn generate(State(n): State<Node>, body: Bytes) -> Response {
    match n.read("/api/generate", &body) {
        Ok(req) => generation(n, req, false).await,
        Err(e) => e.into_response(),
    }
}

async fn embed(State(n): State<Node>, body: Bytes) -> Response {
    let req = match n.read("/api/embed", &body) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let model = full(req["model"].as_str().unwrap_or_default());
    if !n.models.lock().unwrap().contains(&model) {
        return not_found(&model);
    }
    let texts: Vec<&str> = match &req["input"] {
        Value::Array(items) => items.iter().map(|t| t.as_str().unwrap_or_default()).collect(),
        other => vec![other.as_str().unwrap_or_default()],
    };
    let embeddings: Vec<Value> = texts.iter().map(|t| json!(bag_of_words(t))).collect();
    Json(json!({"model": model, "embeddings": embeddings, "total_duration": 1000, "prompt_eval_count": 2}))
        .into_response()
}

async fn embeddings(State(n): State<Node>, body: Bytes) -> Response {
    let req = match n.read("/api/embeddings", &body) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let model = full(req["model"].as_str().unwrap_or_default());
    if !n.models.lock().unwrap().contains(&model) {
        return not_found(&model);
    }
    Json(json!({"embedding": bag_of_words(req["prompt"].as_str().unwrap_or_default())})).into_response()
}

/// A stand-in for an embedding: the text's words hashed into 64 dimensions, so texts sharing
/// words are similar and the same text always has the same vector.
fn bag_of_words(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; 64];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let hash = word
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        v[(hash % 64) as usize] += 1.0;
    }
    if v.iter().all(|x| *x == 0.0) {
        v[0] = 1.0;
    }
    v
}

async fn show(State(n): State<Node>, body: Bytes) -> Response {
    let req = match n.read("/api/show", &body) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    // Ollama reads the deprecated `name` when `model` is empty.
    let model = full(req["model"].as_str().filter(|m| !m.is_empty()).or(req["name"].as_str()).unwrap_or_default());
    if !n.models.lock().unwrap().contains(&model) {
        return not_found(&model);
    }
    Json(json!({
        "modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
        "details": {"format": "gguf", "family": "llama", "parameter_size": "1B", "quantization_level": "Q4_0"},
        "model_info": {"general.architecture": "llama"}, "capabilities": ["completion"],
        "modified_at": "2025-01-01T00:00:00Z"
    }))
    .into_response()
}

/// Pulling, as Ollama does it: progress lines a little apart, the model in place only after the
/// last one, and nothing if the client goes away first. A model whose name starts with
/// `missing` is not in the registry: the stream ends with Ollama's error line.
async fn pull(State(n): State<Node>, Json(req): Json<Value>) -> Response {
    let model = full(req["model"].as_str().unwrap_or_default());
    *n.pulls.lock().unwrap() += 1;
    let lines = async_stream(move |tx| async move {
        let missing = model.starts_with("missing");
        let steps = [
            json!({"status": "pulling manifest"}),
            json!({"status": "pulling abc", "digest": "sha256:abc", "total": 100, "completed": 50}),
            json!({"status": "pulling abc", "digest": "sha256:abc", "total": 100, "completed": 100}),
            json!({"status": "verifying sha256 digest"}),
            json!({"status": "writing manifest"}),
        ];
        let steps = if missing { &steps[..1] } else { &steps[..] };
        for (i, step) in steps.iter().enumerate() {
            if tx.send(step.clone()).await.is_err() {
                return;
            }
            if i == 0
                && let Some(g) = &n.gate
            {
                g.notified().await;
            }
            tokio::time::sleep(PULL_STEP).await;
        }
        if missing {
            let _ = tx.send(json!({"error": "pull model manifest: file does not exist"})).await;
            return;
        }
        // Ollama finishes only for a client still there to read the result.
        if !tx.is_closed() {
            n.models.lock().unwrap().push(model);
            let _ = tx.send(json!({"status": "success"})).await;
        }
    });
    let mut res = Response::new(lines);
    res.headers_mut().insert("content-type", "application/x-ndjson".parse().unwrap());
    res
}

/// The pause between a pull's progress lines.
const PULL_STEP: Duration = Duration::from_millis(50);

async fn remove(State(n): State<Node>, Json(req): Json<Value>) -> Response {
    let model = full(req["model"].as_str().or(req["name"].as_str()).unwrap_or_default());
    let mut models = n.models.lock().unwrap();
    match models.iter().position(|m| *m == model) {
        Some(i) => {
            models.remove(i);
            StatusCode::OK.into_response()
        }
        None => not_found(&model),
    }
}

impl Node {
    /// Reads a request body as Ollama does and records it; a body Go would not decode is Ollama's
    /// 400.
    fn read(&self, path: &'static str, body: &[u8]) -> Result<Value, (StatusCode, Json<Value>)> {
        let raw: Raw = serde_json::from_slice(body)
            .map_err(|e| (StatusCode::BAD_REQUEST, Json(json!({"error": e.to_string()}))))?;
        let req = go_struct(raw, REQUEST_FIELDS);
        self.requests.lock().unwrap().push((path, req.clone()));
        Ok(req)
    }
}

/// The fields of Ollama's request structs this double reads (`api.ChatRequest`,
/// `GenerateRequest`, `EmbedRequest`, `EmbeddingsRequest`, `ShowRequest`), and of `api.Message`.
const REQUEST_FIELDS: &[&str] = &[
    "model",
    "name",
    "messages",
    "prompt",
    "input",
    "system",
    "stream",
    "keep_alive",
    "options",
    "format",
    "tools",
    "think",
    "raw",
    "images",
];
const MESSAGE_FIELDS: &[&str] = &["role", "content", "thinking", "images", "tool_calls", "tool_name"];

/// JSON as Go's decoder walks it: an object keeps every key, in order, repeats included.
enum Raw {
    Object(Vec<(String, Raw)>),
    Array(Vec<Raw>),
    Scalar(Value),
}

impl<'de> serde::Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Raw>()? {
                    entries.push((k, v));
                }
                Ok(Raw::Object(entries))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = s.next_element::<Raw>()? {
                    items.push(v);
                }
                Ok(Raw::Array(items))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Scalar(json!(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Scalar(json!(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::Scalar(json!(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Scalar(json!(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Scalar(json!(v)))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Raw, E> {
                Ok(Raw::Scalar(Value::Null))
            }
        }
        d.deserialize_any(V)
    }
}

/// Go's case folding of a key, as far as these tests need it: each character to its lower case
/// by way of its upper case, which takes `ſ` to `s` and the Kelvin sign to `k` as Go's simple
/// folding does.
fn go_fold(key: &str) -> String {
    key.chars()
        .flat_map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u.to_lowercase().collect::<Vec<_>>(),
                _ => vec![c],
            }
        })
        .collect()
}

/// An object decoded into a Go struct with `fields`: an exact key first, else one that folds to
/// the field; the last one wins; unknown keys are dropped.
fn go_struct(raw: Raw, fields: &[&str]) -> Value {
    let Raw::Object(entries) = raw else { return go_value(raw) };
    let mut out = serde_json::Map::new();
    for (key, value) in entries {
        let field = fields.iter().find(|f| **f == key).or_else(|| fields.iter().find(|f| go_fold(f) == go_fold(&key)));
        let Some(field) = field else { continue };
        let value = match (*field, value) {
            ("messages", Raw::Array(items)) => {
                Value::Array(items.into_iter().map(|m| go_struct(m, MESSAGE_FIELDS)).collect())
            }
            (_, v) => go_value(v),
        };
        out.insert((*field).to_owned(), value);
    }
    Value::Object(out)
}

/// Any other value, its objects decoded into Go maps: exact keys, the last one wins.
fn go_value(raw: Raw) -> Value {
    match raw {
        Raw::Object(entries) => Value::Object(entries.into_iter().map(|(k, v)| (k, go_value(v))).collect()),
        Raw::Array(items) => Value::Array(items.into_iter().map(go_value).collect()),
        Raw::Scalar(v) => v,
    }
}

/// A configuration whose inference service drives `nodes`, probing them often.
pub fn config_with_nodes(infra: &TestInfra, nodes: &[&FakeOllama]) -> AppConfig {
    let mut config = base_config(infra);
    config.inference.nodes = nodes.iter().map(|n| n.url.clone().into()).collect();
    config.inference.probe_interval = Duration::from_millis(200);
    config
}

/// The platform without its own engine, driving `nodes`, once its probes have seen them all.
pub async fn platform_on(nodes: &[&FakeOllama], tweak: impl FnOnce(&mut AppConfig)) -> Deployment {
    let infra = TestInfra::new().await;
    let mut config = config_with_nodes(&infra, nodes);
    tweak(&mut config);
    let d = Deployment::in_process_with(infra, config, &without_engine()).await;
    wait_for_nodes(&d, nodes.len()).await;
    d
}
