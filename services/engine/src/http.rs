//! Ollama's REST API, field for field: NDJSON streams flushed per token, `{"error": …}` bodies
//! with Ollama's status codes, nanosecond durations.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, head, post};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::engine::{EngineState, Failure, GenRequest, Generation, Preload, PromptInput};
use crate::llm::{Event, Finished};
use crate::name::ModelName;
use crate::registry::Progress;
use crate::store::{self, ExtraLayers, ModelEntry};
use ollamanet_model_format::gguf::{self, GgufFile};
use ollamanet_model_format::template::TemplateMessage;

/// The version `/api/version` reports: the Ollama API level this engine implements.
pub const OLLAMA_VERSION: &str = "0.12.0";

pub type AppState = Arc<EngineState>;

impl Failure {
    /// Ollama's `{"error": …}`, with `code` when there is one (Ollama's clients ignore it).
    fn json(&self) -> Value {
        match self.code {
            Some(code) => json!({"error": self.message, "code": code}),
            None => json!({"error": self.message}),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.json())).into_response()
    }
}

/// Ollama's 405 for a known path and a wrong method.
async fn method_not_allowed() -> Failure {
    Failure::new(405, "method not allowed")
}

fn route(m: MethodRouter<AppState>) -> MethodRouter<AppState> {
    m.fallback(method_not_allowed)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", route(get(root).head(root)))
        .route("/api/version", route(get(version).head(version)))
        .route("/api/tags", route(get(tags).head(tags)))
        .route("/api/show", route(post(show)))
        .route("/api/ps", route(get(ps)))
        .route("/api/generate", route(post(generate)))
        .route("/api/chat", route(post(chat)))
        .route("/api/embed", route(post(embed)))
        .route("/api/embeddings", route(post(embeddings)))
        .route("/api/pull", route(post(pull)))
        .route("/api/delete", route(axum::routing::delete(delete)))
        .route("/api/copy", route(post(copy)))
        .route("/api/create", route(post(create)))
        .route("/api/blobs/{digest}", route(head(blob_exists).post(blob_upload)))
        .merge(crate::openai::routes())
}

/// Reads a JSON body as Ollama does: an empty body is "missing request body", bad JSON is 400.
pub async fn body<T: DeserializeOwned>(body: Body) -> Result<T, Failure> {
    let bytes = axum::body::to_bytes(body, 64 << 20).await.map_err(|e| Failure::bad_request(e.to_string()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::bad_request("missing request body"));
    }
    serde_json::from_slice(&bytes).map_err(|e| Failure::bad_request(e.to_string()))
}

/// RFC 3339 with nanoseconds, as Go marshals `time.Time`.
pub fn timestamp(t: SystemTime) -> String {
    let t: time::OffsetDateTime = t.into();
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub fn ndjson_line(v: &impl serde::Serialize) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

pub fn ndjson(stream: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let mut res = Body::from_stream(stream.map(Ok::<_, Infallible>)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    res
}

async fn root() -> &'static str {
    "Ollama is running"
}

async fn version() -> axum::Json<Value> {
    axum::Json(json!({"version": OLLAMA_VERSION}))
}

// ---------------------------------------------------------------------------------------------
// Generation

#[derive(Deserialize, Default)]
#[serde(default)]
struct GenerateRequest {
    model: String,
    prompt: String,
    system: Option<String>,
    suffix: Option<String>,
    stream: Option<bool>,
    raw: bool,
    format: Option<Value>,
    keep_alive: Option<Value>,
    options: Option<Map<String, Value>>,
    images: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    tools: Option<Value>,
    stream: Option<bool>,
    format: Option<Value>,
    keep_alive: Option<Value>,
    options: Option<Map<String, Value>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    pub images: Option<Vec<String>>,
    pub tool_calls: Option<Value>,
    pub tool_name: Option<String>,
}

impl ChatMessage {
    pub fn to_template(&self) -> TemplateMessage {
        TemplateMessage {
            role: self.role.clone(),
            content: self.content.clone(),
            tool_calls: self.tool_calls.clone(),
            tool_name: self.tool_name.clone(),
            name: self.tool_name.clone(),
        }
    }
}

/// The counters of a final object.
pub fn metrics_json(done: &Finished, load: Duration, started: Instant) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("total_duration".into(), json!(nanos(started.elapsed())));
    m.insert("load_duration".into(), json!(nanos(load)));
    m.insert("prompt_eval_count".into(), json!(done.prompt_eval_count));
    m.insert("prompt_eval_duration".into(), json!(nanos(done.prompt_eval_duration)));
    m.insert("eval_count".into(), json!(done.eval_count));
    m.insert("eval_duration".into(), json!(nanos(done.eval_duration)));
    m
}

/// How each face shapes the objects of a generation.
trait Shape: Send + 'static {
    fn chunk(&self, text: &str) -> Value;
    fn last(&mut self, full_text: Option<&str>, done: &Finished, load: Duration, started: Instant) -> Value;
}

struct GenerateShape {
    model: String,
}

impl Shape for GenerateShape {
    fn chunk(&self, text: &str) -> Value {
        json!({"model": self.model, "created_at": timestamp(SystemTime::now()), "response": text, "done": false})
    }

    fn last(&mut self, full: Option<&str>, done: &Finished, load: Duration, started: Instant) -> Value {
        let mut m = Map::new();
        m.insert("model".into(), json!(self.model));
        m.insert("created_at".into(), json!(timestamp(SystemTime::now())));
        m.insert("response".into(), json!(full.unwrap_or("")));
        m.insert("done".into(), json!(true));
        m.insert("done_reason".into(), json!(done.reason.as_str()));
        m.insert("context".into(), json!(done.context));
        m.extend(metrics_json(done, load, started));
        Value::Object(m)
    }
}

struct ChatShape {
    model: String,
}

impl Shape for ChatShape {
    fn chunk(&self, text: &str) -> Value {
        json!({"model": self.model, "created_at": timestamp(SystemTime::now()),
               "message": {"role": "assistant", "content": text}, "done": false})
    }

    fn last(&mut self, full: Option<&str>, done: &Finished, load: Duration, started: Instant) -> Value {
        let mut m = Map::new();
        m.insert("model".into(), json!(self.model));
        m.insert("created_at".into(), json!(timestamp(SystemTime::now())));
        m.insert("message".into(), json!({"role": "assistant", "content": full.unwrap_or("")}));
        m.insert("done_reason".into(), json!(done.reason.as_str()));
        m.insert("done".into(), json!(true));
        m.extend(metrics_json(done, load, started));
        Value::Object(m)
    }
}

/// Streams a generation as NDJSON; a failure mid-stream ends it with one `{"error": …}` line.
fn stream_generation(generation: Generation, mut shape: impl Shape) -> Response {
    let Generation { mut events, load_duration, started, mut guard } = generation;
    let stream = async_stream(move |tx| async move {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Text(t) => {
                    if tx.send(ndjson_line(&shape.chunk(&t))).await.is_err() {
                        return;
                    }
                }
                Event::Done(done) => {
                    guard.release();
                    let _ = tx.send(ndjson_line(&shape.last(None, &done, load_duration, started))).await;
                    return;
                }
                Event::Error(e) => {
                    let _ = tx.send(ndjson_line(&json!({"error": e}))).await;
                    return;
                }
            }
        }
    });
    ndjson(stream)
}

/// Collects a generation into one object.
async fn collect_generation(generation: Generation, mut shape: impl Shape) -> Response {
    let Generation { mut events, load_duration, started, mut guard } = generation;
    let mut text = String::new();
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Done(done) => {
                guard.release();
                return axum::Json(shape.last(Some(&text), &done, load_duration, started)).into_response();
            }
            Event::Error(e) => return Failure::internal(e).into_response(),
        }
    }
    Failure::internal("the generation ended without a result").into_response()
}

/// A stream fed by a task: `f` gets a sender; the stream ends when it returns. Dropping the
/// stream (the client went away) aborts the task, which drops what it holds (the generation's
/// receiver, so the worker stops).
pub fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Bytes> + Send + 'static
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let task = tokio::spawn(f(tx));
    let abort = AbortOnDrop(task);
    futures::stream::unfold((rx, abort), |(mut rx, abort)| async move { rx.recv().await.map(|b| (b, (rx, abort))) })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn load_response(model: &str, chat: bool, p: Preload) -> Value {
    let (reason, load) = match p {
        Preload::Loaded { load_duration } => ("load", load_duration),
        Preload::Unloaded => ("unload", Duration::ZERO),
    };
    let mut v =
        json!({"model": model, "created_at": timestamp(SystemTime::now()), "done": true, "done_reason": reason});
    if chat {
        v["message"] = json!({"role": "assistant", "content": ""});
    } else {
        v["response"] = json!("");
    }
    if reason == "load" {
        v["load_duration"] = json!(nanos(load));
    }
    v
}

pub(crate) async fn generate(State(state): State<AppState>, raw: Body) -> Result<Response, Failure> {
    let req: GenerateRequest = body(raw).await?;
    if req.model.is_empty() {
        return Err(Failure::bad_request("model is required"));
    }
    if req.images.as_ref().is_some_and(|i| !i.is_empty()) {
        return Err(Failure::bad_request(format!("\"{}\" does not support images", req.model)));
    }
    let options = req.options.clone().unwrap_or_default();
    if req.prompt.is_empty() && req.suffix.as_deref().unwrap_or("").is_empty() {
        let p = state.preload(&req.model, req.keep_alive.as_ref(), &options).await?;
        return Ok(axum::Json(load_response(&req.model, false, p)).into_response());
    }
    let generation = state
        .generate(GenRequest {
            model: req.model.clone(),
            input: PromptInput::Generate { prompt: req.prompt, system: req.system, raw: req.raw },
            options,
            format: req.format,
            keep_alive: req.keep_alive,
        })
        .await?;
    let shape = GenerateShape { model: req.model };
    Ok(if req.stream.unwrap_or(true) {
        stream_generation(generation, shape)
    } else {
        collect_generation(generation, shape).await
    })
}

pub(crate) async fn chat(State(state): State<AppState>, raw: Body) -> Result<Response, Failure> {
    let req: ChatRequest = body(raw).await?;
    if req.model.is_empty() {
        return Err(Failure::bad_request("model is required"));
    }
    if req.messages.iter().any(|m| m.images.as_ref().is_some_and(|i| !i.is_empty())) {
        return Err(Failure::bad_request(format!("\"{}\" does not support images", req.model)));
    }
    let options = req.options.clone().unwrap_or_default();
    if req.messages.is_empty() {
        let p = state.preload(&req.model, req.keep_alive.as_ref(), &options).await?;
        return Ok(axum::Json(load_response(&req.model, true, p)).into_response());
    }
    let messages = req.messages.iter().map(ChatMessage::to_template).collect();
    let generation = state
        .generate(GenRequest {
            model: req.model.clone(),
            input: PromptInput::Chat { messages, tools: req.tools },
            options,
            format: req.format,
            keep_alive: req.keep_alive,
        })
        .await?;
    let shape = ChatShape { model: req.model };
    Ok(if req.stream.unwrap_or(true) {
        stream_generation(generation, shape)
    } else {
        collect_generation(generation, shape).await
    })
}

// ---------------------------------------------------------------------------------------------
// Embeddings

#[derive(Deserialize, Default)]
#[serde(default)]
struct EmbedRequest {
    model: String,
    input: Value,
    truncate: Option<bool>,
    dimensions: Option<usize>,
    options: Option<Map<String, Value>>,
    keep_alive: Option<Value>,
}

pub fn inputs(v: &Value) -> Result<Vec<String>, Failure> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| Failure::bad_request("invalid input type")))
            .collect(),
        _ => Err(Failure::bad_request("invalid input type")),
    }
}

/// Truncates to `dimensions` (if given) and L2-normalises, as Ollama does.
pub fn finish_vector(mut v: Vec<f32>, dimensions: Option<usize>) -> Vec<f32> {
    if let Some(d) = dimensions.filter(|d| *d > 0 && *d < v.len()) {
        v.truncate(d);
    }
    crate::llm::normalize(v)
}

pub(crate) async fn embed(State(state): State<AppState>, raw: Body) -> Result<Response, Failure> {
    let started = Instant::now();
    let req: EmbedRequest = body(raw).await?;
    if req.model.is_empty() {
        return Err(Failure::bad_request("model is required"));
    }
    let inputs = inputs(&req.input)?;
    let options = req.options.unwrap_or_default();
    if inputs.is_empty() {
        let p = state.preload(&req.model, req.keep_alive.as_ref(), &options).await?;
        let load = match p {
            Preload::Loaded { load_duration } => load_duration,
            Preload::Unloaded => Duration::ZERO,
        };
        return Ok(
            axum::Json(json!({"model": req.model, "embeddings": [], "load_duration": nanos(load)})).into_response()
        );
    }
    let (emb, load) =
        state.embed(&req.model, inputs, req.truncate.unwrap_or(true), &options, req.keep_alive.as_ref()).await?;
    let vectors: Vec<Vec<f32>> = emb.vectors.into_iter().map(|v| finish_vector(v, req.dimensions)).collect();
    Ok(axum::Json(json!({
        "model": req.model,
        "embeddings": vectors,
        "total_duration": nanos(started.elapsed()),
        "load_duration": nanos(load),
        "prompt_eval_count": emb.prompt_eval_count,
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EmbeddingsRequest {
    model: String,
    prompt: String,
    options: Option<Map<String, Value>>,
    keep_alive: Option<Value>,
}

/// The legacy endpoint: one prompt, an unnormalised vector (as Ollama's).
async fn embeddings(State(state): State<AppState>, raw: Body) -> Result<Response, Failure> {
    let req: EmbeddingsRequest = body(raw).await?;
    if req.model.is_empty() {
        return Err(Failure::bad_request("model is required"));
    }
    let options = req.options.unwrap_or_default();
    if req.prompt.is_empty() {
        state.preload(&req.model, req.keep_alive.as_ref(), &options).await?;
        return Ok(axum::Json(json!({"embedding": []})).into_response());
    }
    let (emb, _) = state.embed(&req.model, vec![req.prompt], true, &options, req.keep_alive.as_ref()).await?;
    let v = emb.vectors.into_iter().next().unwrap_or_default();
    Ok(axum::Json(json!({"embedding": v.iter().map(|x| f64::from(*x)).collect::<Vec<_>>()})).into_response())
}

// ---------------------------------------------------------------------------------------------
// Models

fn family_details(entry: &ModelEntry, header: Option<&GgufFile>) -> Value {
    let config = entry.config();
    let family = if config.model_family.is_empty() {
        header.and_then(GgufFile::architecture).unwrap_or_default().to_owned()
    } else {
        config.model_family.clone()
    };
    let families =
        config.model_families.clone().unwrap_or_else(|| if family.is_empty() { vec![] } else { vec![family.clone()] });
    let parameter_size = if config.model_type.is_empty() {
        header.map(|h| gguf::human_parameters(h.parameter_count())).unwrap_or_default()
    } else {
        config.model_type.clone()
    };
    let quantization_level = if config.file_type.is_empty() {
        header.map(GgufFile::quantization_level).unwrap_or_default()
    } else {
        config.file_type.clone()
    };
    json!({
        "parent_model": "",
        "format": if config.model_format.is_empty() { "gguf".to_owned() } else { config.model_format },
        "family": family,
        "families": families,
        "parameter_size": parameter_size,
        "quantization_level": quantization_level,
    })
}

fn header_of(state: &EngineState, entry: &ModelEntry) -> Option<std::sync::Arc<GgufFile>> {
    let path = entry.model_path()?;
    state.store.gguf(&path, entry.model_digest()?).ok()
}

fn capabilities(entry: &ModelEntry, header: Option<&GgufFile>) -> Vec<&'static str> {
    let Some(h) = header else { return vec!["completion"] };
    if h.is_embedding() {
        return vec!["embedding"];
    }
    let mut caps = vec!["completion"];
    let template = entry.text_layer(store::TEMPLATE_MEDIA_TYPE).or_else(|| h.chat_template().map(str::to_owned));
    if template.as_deref().is_some_and(|t| t.contains("tools")) {
        caps.push("tools");
    }
    if template.as_deref().is_some_and(|t| t.contains("suffix")) {
        caps.push("insert");
    }
    caps
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Failure> + Send + 'static) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Failure::internal(e.to_string()))?
}

pub(crate) async fn tags(State(state): State<AppState>) -> Result<Response, Failure> {
    let st = state.clone();
    let models = blocking(move || {
        let entries = st.store.list().map_err(|e| Failure::internal(e.to_string()))?;
        Ok(entries
            .iter()
            .map(|e| {
                let header = header_of(&st, e);
                let name = e.name.display_short();
                json!({
                    "name": name,
                    "model": name,
                    "modified_at": timestamp(e.modified),
                    "size": e.manifest.total_size(),
                    "digest": e.digest,
                    "details": family_details(e, header.as_deref()),
                })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(axum::Json(json!({"models": models})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShowRequest {
    model: String,
    name: String,
    verbose: bool,
}

pub(crate) async fn show(State(state): State<AppState>, raw: Body) -> Result<Response, Failure> {
    let req: ShowRequest = body(raw).await?;
    let model = if req.model.is_empty() { req.name } else { req.model };
    if model.is_empty() {
        return Err(Failure::bad_request("model is required"));
    }
    let entry = state
        .entry(&model)
        .await
        .map_err(|f| if f.status == 404 { Failure::new(404, format!("model '{model}' not found")) } else { f })?;
    let st = state.clone();
    let verbose = req.verbose;
    let v = blocking(move || show_json(&st, &entry, verbose)).await?;
    Ok(axum::Json(v).into_response())
}

fn show_json(state: &EngineState, entry: &ModelEntry, verbose: bool) -> Result<Value, Failure> {
    let path = entry.model_path().ok_or_else(|| Failure::internal("the model has no GGUF layer"))?;
    let header = if verbose {
        std::sync::Arc::new(GgufFile::read(&path, true).map_err(|e| Failure::internal(e.to_string()))?)
    } else {
        header_of(state, entry).ok_or_else(|| Failure::internal("cannot read the model file"))?
    };
    let template = entry
        .text_layer(store::TEMPLATE_MEDIA_TYPE)
        .or_else(|| header.chat_template().map(str::to_owned))
        .unwrap_or_default();
    let system = entry.text_layer(store::SYSTEM_MEDIA_TYPE).unwrap_or_default();
    let license = entry.text_layer(store::LICENSE_MEDIA_TYPE).unwrap_or_default();
    let params = entry.params();
    let mut parameters = String::new();
    for (k, v) in &params {
        let values = match v {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for item in values {
            let text = match item {
                Value::String(s) => format!("\"{s}\""),
                other => other.to_string(),
            };
            parameters.push_str(&format!("{k:<30} {text}\n"));
        }
    }
    let parameters = parameters.trim_end().to_owned();
    let short = entry.name.display_short();
    // Ollama writes the blob's path here; the digest names the same file without telling a
    // client where the store is.
    let digest = entry.model_digest().unwrap_or_default();
    let mut modelfile = format!(
        "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {short}\n\nFROM {digest}\n"
    );
    if !template.is_empty() {
        modelfile.push_str(&format!("TEMPLATE \"\"\"{template}\"\"\"\n"));
    }
    if !system.is_empty() {
        modelfile.push_str(&format!("SYSTEM \"\"\"{system}\"\"\"\n"));
    }
    for line in parameters.lines() {
        modelfile.push_str(&format!("PARAMETER {}\n", line.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    let mut model_info = Map::new();
    for (k, v) in &header.metadata {
        if k == "tokenizer.chat_template" {
            continue;
        }
        let value = match v {
            gguf::Value::Array(_, items) if !verbose && items.len() > 64 => Value::Null,
            other => other.to_json(),
        };
        model_info.insert(k.clone(), value);
    }
    model_info.insert("general.parameter_count".into(), json!(header.parameter_count()));
    let mut out = json!({
        "license": license,
        "modelfile": modelfile,
        "parameters": parameters,
        "template": template,
        "system": system,
        "details": family_details(entry, Some(header.as_ref())),
        "model_info": model_info,
        "capabilities": capabilities(entry, Some(header.as_ref())),
        "modified_at": timestamp(entry.modified),
    });
    if verbose {
        out["tensors"] = Value::Array(
            header.tensors.iter().map(|t| json!({"name": t.name, "type": t.kind.name(), "shape": t.dims})).collect(),
        );
    }
    Ok(out)
}

async fn ps(State(state): State<AppState>) -> Result<Response, Failure> {
    let models: Vec<Value> = state
        .sched
        .loaded()
        .iter()
        .map(|r| {
            let name = r.entry.name.display_short();
            // Forever is shown far in the future, as Ollama does.
            let expires = r.expires_at().unwrap_or_else(|| SystemTime::now() + Duration::from_secs(300 * 365 * 86_400));
            json!({
                "name": name,
                "model": name,
                "size": r.size,
                "digest": r.entry.digest,
                "details": family_details(&r.entry, Some(r.header.as_ref())),
                "expires_at": timestamp(expires),
                "size_vram": 0,
                "context_length": r.num_ctx,
            })
        })
        .collect();
    Ok(axum::Json(json!({"models": models})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CopyRequest {
    source: String,
    destination: String,
}

async fn copy(State(state): State<AppState>, raw: Body) -> Result<Response, Failure> {
    let req: CopyRequest = body(raw).await?;
    if req.source.is_empty() || req.destination.is_empty() {
        return Err(Failure::bad_request("source and destination are required"));
    }
    let src =
        ModelName::parse(&req.source).map_err(|_| Failure::new(404, format!("model \"{}\" not found", req.source)))?;
    let dst = ModelName::parse(&req.destination)
        .map_err(|_| Failure::bad_request(format!("invalid destination name: \"{}\"", req.destination)))?;
    let st = state.clone();
    let source = req.source.clone();
    blocking(move || {
        st.store.copy(&src, &dst).map_err(|e| match e {
            store::StoreError::NotFound(_) => Failure::new(404, format!("model \"{source}\" not found")),
            other => Failure::internal(other.to_string()),
        })
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeleteRequest {
    model: String,
    name: String,
}

async fn delete(State(state): State<AppState>, raw: Body) -> Result<Response, Failure> {
    let req: DeleteRequest = body(raw).await?;
    let model = if req.model.is_empty() { req.name } else { req.model };
    if model.is_empty() {
        return Err(Failure::bad_request("model is required"));
    }
    let not_found = || Failure::new(404, format!("model '{model}' not found"));
    let name = ModelName::parse(&model).map_err(|_| not_found())?;
    state.sched.unload(&name);
    let st = state.clone();
    let result = blocking(move || Ok(st.store.remove(&name))).await?;
    match result {
        Ok(()) => Ok(StatusCode::OK.into_response()),
        Err(store::StoreError::NotFound(_)) => Err(not_found()),
        Err(e @ store::StoreError::ReadOnly(_)) => Err(Failure::bad_request(e.to_string())),
        Err(e) => Err(Failure::internal(e.to_string())),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PullRequest {
    model: String,
    name: String,
    insecure: bool,
    stream: Option<bool>,
}

async fn pull(State(state): State<AppState>, raw: Body) -> Result<Response, Failure> {
    let req: PullRequest = body(raw).await?;
    let model = if req.model.is_empty() { req.name } else { req.model };
    if model.is_empty() {
        return Err(Failure::bad_request("model is required"));
    }
    let name = ModelName::parse(&model).map_err(|_| Failure::bad_request("invalid model name"))?;
    let insecure = req.insecure;
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    // Not spawned: when the client goes away, dropping this stops the pull, as Ollama's does.
    let mut work = Box::pin(async move {
        let mut report = move |p: Progress| {
            let _ = ptx.send(p);
        };
        state.registry.pull(&state.store, &state.pulls, &name, insecure, &mut report).await
    });
    if !req.stream.unwrap_or(true) {
        work.await?;
        return Ok(axum::Json(json!({"status": "success"})).into_response());
    }
    // The answer waits for the manifest, so that a registry that is down, slow or refused gets
    // its status and code rather than a stream that fails.
    let mut held = Vec::new();
    let finished = loop {
        tokio::select! {
            r = &mut work => break Some(r?),
            Some(p) = prx.recv() => {
                let past_manifest = p.status != "pulling manifest";
                held.push(ndjson_line(&p));
                if past_manifest {
                    break None;
                }
            }
        }
    };
    let stream = async_stream(move |tx| async move {
        for line in held {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let result = match finished {
            Some(done) => Ok(done),
            None => loop {
                tokio::select! {
                    r = &mut work => break r,
                    Some(p) = prx.recv() => {
                        if tx.send(ndjson_line(&p)).await.is_err() {
                            return;
                        }
                    }
                }
            },
        };
        while let Ok(p) = prx.try_recv() {
            if tx.send(ndjson_line(&p)).await.is_err() {
                return;
            }
        }
        if let Err(e) = result {
            let _ = tx.send(ndjson_line(&Failure::from(e).json())).await;
        }
    });
    Ok(ndjson(stream))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateRequest {
    model: String,
    name: String,
    from: Option<String>,
    files: Option<std::collections::BTreeMap<String, String>>,
    template: Option<String>,
    system: Option<String>,
    license: Option<Value>,
    parameters: Option<Map<String, Value>>,
    quantize: Option<String>,
    stream: Option<bool>,
}

async fn create(State(state): State<AppState>, raw: Body) -> Result<Response, Failure> {
    let req: CreateRequest = body(raw).await?;
    let model = if req.model.is_empty() { req.name.clone() } else { req.model.clone() };
    if model.is_empty() {
        return Err(Failure::bad_request("model is required"));
    }
    if req.quantize.as_deref().is_some_and(|q| !q.is_empty()) {
        return Err(Failure::bad_request("quantization is not supported by this engine"));
    }
    let name = ModelName::parse(&model).map_err(|_| Failure::bad_request("invalid model name"))?;
    let license = match &req.license {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(items)) => Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n")),
        _ => None,
    };
    // The GGUF: an uploaded blob (`files`), or the model layer of an existing model (`from`).
    let mut statuses = vec![];
    let mut base_params = Map::new();
    let mut base = ExtraLayers::default();
    let digest = if let Some(files) = req.files.as_ref().filter(|f| !f.is_empty()) {
        let gguf: Vec<&String> =
            files.iter().filter(|(f, _)| f.ends_with(".gguf") || files.len() == 1).map(|(_, d)| d).collect();
        let [digest] = gguf.as_slice() else {
            return Err(Failure::bad_request("create needs exactly one GGUF file in files"));
        };
        if !state.store.has_blob(digest) {
            return Err(Failure::bad_request(format!(
                "blob {digest} not found; upload it with POST /api/blobs/{digest}"
            )));
        }
        statuses.push("parsing GGUF".to_owned());
        (*digest).clone()
    } else if let Some(from) = req.from.as_ref().filter(|f| !f.is_empty()) {
        let entry = state.entry(from).await?;
        base_params = entry.params();
        base.template = entry.text_layer(store::TEMPLATE_MEDIA_TYPE);
        base.system = entry.text_layer(store::SYSTEM_MEDIA_TYPE);
        base.license = entry.text_layer(store::LICENSE_MEDIA_TYPE);
        let digest = entry.model_digest().ok_or_else(|| Failure::bad_request("the base model has no GGUF layer"))?;
        statuses.push(format!("using existing layer {digest}"));
        if entry.read_only {
            // Bring the blob into this store.
            let src = entry.model_path().ok_or_else(|| Failure::internal("blob path"))?;
            let st = state.clone();
            let d = digest.to_owned();
            blocking(move || {
                if !st.store.has_blob(&d) {
                    let mut f = std::fs::File::open(src).map_err(|e| Failure::internal(e.to_string()))?;
                    st.store.write_blob(&mut f, Some(&d)).map_err(|e| Failure::internal(e.to_string()))?;
                }
                Ok(())
            })
            .await?;
        }
        digest.to_owned()
    } else {
        return Err(Failure::bad_request("neither 'from' nor 'files' was specified"));
    };
    base_params.extend(req.parameters.clone().unwrap_or_default());
    let extra = ExtraLayers {
        template: req.template.clone().or(base.template),
        system: req.system.clone().or(base.system),
        license: license.or(base.license),
        params: Some(base_params),
    };
    let st = state.clone();
    let result = blocking(move || {
        let path = st.store.blob_path(&digest).map_err(|e| Failure::bad_request(e.to_string()))?;
        GgufFile::read(&path, false).map_err(|e| Failure::bad_request(format!("invalid GGUF: {e}")))?;
        st.store.create(&name, &digest, &extra).map_err(|e| Failure::internal(e.to_string()))
    })
    .await;
    if !req.stream.unwrap_or(true) {
        result?;
        return Ok(axum::Json(json!({"status": "success"})).into_response());
    }
    let mut lines: Vec<Bytes> = statuses.iter().map(|s| ndjson_line(&json!({"status": s}))).collect();
    match result {
        Ok(_) => {
            lines.push(ndjson_line(&json!({"status": "writing manifest"})));
            lines.push(ndjson_line(&json!({"status": "success"})));
        }
        Err(f) => lines.push(ndjson_line(&json!({"error": f.message}))),
    }
    Ok(ndjson(futures::stream::iter(lines)))
}

async fn blob_exists(State(state): State<AppState>, Path(digest): Path<String>) -> StatusCode {
    if state.store.has_blob(&digest) { StatusCode::OK } else { StatusCode::NOT_FOUND }
}

async fn blob_upload(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    raw: Body,
) -> Result<Response, Failure> {
    let path =
        state.store.blob_path(&digest).map_err(|_| Failure::bad_request(format!("invalid digest format: {digest}")))?;
    if path.is_file() {
        return Ok(StatusCode::OK.into_response());
    }
    let tmp = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(path.parent().unwrap_or(std::path::Path::new(".")))
        .map_err(|e| Failure::internal(e.to_string()))?;
    let (std_file, tmp_path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(std_file);
    let mut hasher = Sha256::new();
    let mut stream = raw.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failure::bad_request(e.to_string()))?;
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| Failure::internal(e.to_string()))?;
    }
    file.sync_all().await.map_err(|e| Failure::internal(e.to_string()))?;
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
    if got != digest {
        return Err(Failure::bad_request(format!("digest mismatch, expected \"{digest}\", got \"{got}\"")));
    }
    tmp_path.persist(&path).map_err(|e| Failure::internal(e.to_string()))?;
    Ok(StatusCode::CREATED.into_response())
}
