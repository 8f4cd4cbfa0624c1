//! A fake Ollama server: a test double standing for the Ollama servers outside the platform that
//! the inference service drives. It speaks Ollama's wire format for the endpoints the platform
//! uses, answers with its own name in every generation (so tests can tell which node answered),
//! and can hold a stream open until the test releases it, or die.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
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
    /// Every chat request's body, in arrival order.
    chats: Arc<Mutex<Vec<Value>>>,
    /// Pull requests received.
    pulls: Arc<Mutex<usize>>,
}

pub struct FakeOllama {
    pub url: String,
    models: Arc<Mutex<Vec<String>>>,
    gate: Option<Arc<Notify>>,
    generations: Arc<Mutex<usize>>,
    chats: Arc<Mutex<Vec<Value>>>,
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

async fn chat(State(n): State<Node>, Json(req): Json<Value>) -> Response {
    generation(n, req, true).await
}

async fn generate(State(n): State<Node>, Json(req): Json<Value>) -> Response {
    generation(n, req, false).await
}

async fn embed(State(n): State<Node>, Json(req): Json<Value>) -> Response {
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

async fn show(State(n): State<Node>, Json(req): Json<Value>) -> Response {
    let model = full(req["model"].as_str().unwrap_or_default());
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

/// A configuration whose inference service drives `nodes`, probing them often.
pub fn config_with_nodes(infra: &TestInfra, nodes: &[&FakeOllama]) -> AppConfig {
    let mut config = base_config(infra);
    config.inference.nodes = nodes.iter().map(|n| n.url.clone()).collect();
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
