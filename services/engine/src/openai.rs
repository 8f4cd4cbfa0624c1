//! The OpenAI-compatible face, as Ollama serves it: `/v1/chat/completions` and `/v1/completions`
//! (SSE `data:` frames ending with `data: [DONE]`, a usage chunk with
//! `stream_options.include_usage`), `/v1/models`, `/v1/embeddings`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::engine::{Failure, GenRequest, Generation, PromptInput};
use crate::http::{AppState, async_stream, finish_vector, inputs};
use crate::llm::{Event, Finished};
use crate::template::TemplateMessage;

/// An error in OpenAI's shape.
struct OpenAiError(Failure);

impl From<Failure> for OpenAiError {
    fn from(f: Failure) -> Self {
        Self(f)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = match self.0.status {
            404 => "not_found_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        };
        let body = json!({"error": {"message": self.0.message, "type": kind, "param": null, "code": null}});
        (status, axum::Json(body)).into_response()
    }
}

type Result<T> = std::result::Result<T, OpenAiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/models/{*model}", get(model))
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn json_body<T: serde::de::DeserializeOwned>(raw: Body) -> Result<T> {
    Ok(crate::http::body(raw).await?)
}

fn sse_frame(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn sse(stream: impl futures::Stream<Item = Bytes> + Send + 'static) -> Response {
    let mut res = Body::from_stream(stream.map(Ok::<_, Infallible>)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// OpenAI's sampling fields, as Ollama options.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Sampling {
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    seed: Option<i64>,
    stop: Option<Value>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
}

impl Sampling {
    fn options(&self) -> Map<String, Value> {
        let mut o = Map::new();
        if let Some(t) = self.temperature {
            o.insert("temperature".into(), json!(t));
        }
        if let Some(p) = self.top_p {
            o.insert("top_p".into(), json!(p));
        }
        if let Some(n) = self.max_completion_tokens.or(self.max_tokens) {
            o.insert("num_predict".into(), json!(n));
        }
        if let Some(s) = self.seed {
            o.insert("seed".into(), json!(s));
        }
        if let Some(s) = &self.stop {
            o.insert("stop".into(), s.clone());
        }
        if let Some(f) = self.frequency_penalty {
            o.insert("frequency_penalty".into(), json!(f));
        }
        if let Some(p) = self.presence_penalty {
            o.insert("presence_penalty".into(), json!(p));
        }
        o
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChatCompletionRequest {
    model: String,
    messages: Vec<Value>,
    stream: bool,
    stream_options: Option<StreamOptions>,
    response_format: Option<Value>,
    tools: Option<Value>,
    #[serde(flatten)]
    sampling: Sampling,
}

/// Message content: a string, or parts of which only text is supported.
fn content_text(v: &Value) -> std::result::Result<String, Failure> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => out.push_str(p.get("text").and_then(Value::as_str).unwrap_or_default()),
                    Some(other) => return Err(Failure::bad_request(format!("unsupported content type: {other}"))),
                    None => return Err(Failure::bad_request("invalid message content")),
                }
            }
            Ok(out)
        }
        _ => Err(Failure::bad_request("invalid message content")),
    }
}

fn response_format(v: Option<&Value>) -> Option<Value> {
    let v = v?;
    match v.get("type").and_then(Value::as_str) {
        Some("json_object") => Some(json!("json")),
        Some("json_schema") => v.get("json_schema").and_then(|s| s.get("schema")).cloned(),
        _ => None,
    }
}

fn usage(done: &Finished) -> Value {
    json!({
        "prompt_tokens": done.prompt_eval_count,
        "completion_tokens": done.eval_count,
        "total_tokens": done.prompt_eval_count + done.eval_count,
    })
}

async fn chat_completions(State(state): State<AppState>, raw: Body) -> Result<Response> {
    let req: ChatCompletionRequest = json_body(raw).await?;
    if req.model.is_empty() {
        return Err(Failure::bad_request("model is required").into());
    }
    if req.messages.is_empty() {
        return Err(Failure::bad_request("[] is too short - 'messages'").into());
    }
    let mut messages = Vec::new();
    for m in &req.messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let mut tm = TemplateMessage::new(role, &content_text(m.get("content").unwrap_or(&Value::Null))?);
        tm.tool_calls = m.get("tool_calls").cloned();
        tm.name = m.get("name").and_then(Value::as_str).map(str::to_owned);
        messages.push(tm);
    }
    let generation = state
        .generate(GenRequest {
            model: req.model.clone(),
            input: PromptInput::Chat { messages, tools: req.tools.clone() },
            options: req.sampling.options(),
            format: response_format(req.response_format.as_ref()),
            keep_alive: None,
        })
        .await?;
    let id = format!("chatcmpl-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    if req.stream {
        Ok(stream(generation, id, req.model, include_usage, true))
    } else {
        let (text, done) = collect(generation).await?;
        Ok(axum::Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": unix_now(),
            "model": req.model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": done.reason.as_str()}],
            "usage": usage(&done),
        }))
        .into_response())
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CompletionRequest {
    model: String,
    prompt: Value,
    stream: bool,
    stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    sampling: Sampling,
}

async fn completions(State(state): State<AppState>, raw: Body) -> Result<Response> {
    let req: CompletionRequest = json_body(raw).await?;
    if req.model.is_empty() {
        return Err(Failure::bad_request("model is required").into());
    }
    let prompt = match &req.prompt {
        Value::String(s) => s.clone(),
        _ => return Err(Failure::bad_request("prompt must be a string").into()),
    };
    let generation = state
        .generate(GenRequest {
            model: req.model.clone(),
            input: PromptInput::Generate { prompt, system: None, raw: true },
            options: req.sampling.options(),
            format: None,
            keep_alive: None,
        })
        .await?;
    let id = format!("cmpl-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    if req.stream {
        Ok(stream(generation, id, req.model, include_usage, false))
    } else {
        let (text, done) = collect(generation).await?;
        Ok(axum::Json(json!({
            "id": id,
            "object": "text_completion",
            "created": unix_now(),
            "model": req.model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": done.reason.as_str()}],
            "usage": usage(&done),
        }))
        .into_response())
    }
}

async fn collect(generation: Generation) -> std::result::Result<(String, Finished), Failure> {
    let Generation { mut events, mut guard, .. } = generation;
    let mut text = String::new();
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Done(done) => {
                guard.release();
                return Ok((text, done));
            }
            Event::Error(e) => return Err(Failure::internal(e)),
        }
    }
    Err(Failure::internal("the generation ended without a result"))
}

/// SSE chunks: one per piece of text, then one with `finish_reason`, the usage chunk if asked,
/// and `[DONE]`.
fn stream(generation: Generation, id: String, model: String, include_usage: bool, chat: bool) -> Response {
    let Generation { mut events, mut guard, .. } = generation;
    let created = unix_now();
    let object = if chat { "chat.completion.chunk" } else { "text_completion" };
    let chunk = move |text: Option<&str>, finish: Option<&str>| -> Value {
        let choice = if chat {
            json!({"index": 0, "delta": {"role": "assistant", "content": text.unwrap_or("")}, "finish_reason": finish})
        } else {
            json!({"text": text.unwrap_or(""), "index": 0, "finish_reason": finish})
        };
        json!({"id": id, "object": object, "created": created, "model": model,
               "system_fingerprint": "fp_ollama", "choices": [choice]})
    };
    let body = async_stream(move |tx| async move {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Text(t) => {
                    if tx.send(sse_frame(&chunk(Some(&t), None))).await.is_err() {
                        return;
                    }
                }
                Event::Done(done) => {
                    guard.release();
                    let _ = tx.send(sse_frame(&chunk(None, Some(done.reason.as_str())))).await;
                    if include_usage {
                        let mut u = chunk(None, None);
                        u["choices"] = json!([]);
                        u["usage"] = usage(&done);
                        let _ = tx.send(sse_frame(&u)).await;
                    }
                    let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
                    return;
                }
                Event::Error(e) => {
                    let err = json!({"error": {"message": e, "type": "api_error", "param": null, "code": null}});
                    let _ = tx.send(sse_frame(&err)).await;
                    return;
                }
            }
        }
    });
    sse(body)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EmbeddingsRequest {
    model: String,
    input: Value,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
}

async fn embeddings(State(state): State<AppState>, raw: Body) -> Result<Response> {
    let req: EmbeddingsRequest = json_body(raw).await?;
    if req.model.is_empty() {
        return Err(Failure::bad_request("model is required").into());
    }
    let inputs = inputs(&req.input)?;
    if inputs.is_empty() {
        return Err(Failure::bad_request("invalid input").into());
    }
    let (emb, _) = state.embed(&req.model, inputs, true, &Map::new(), None).await?;
    let as_base64 = req.encoding_format.as_deref() == Some("base64");
    let data: Vec<Value> = emb
        .vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let v = finish_vector(v, req.dimensions);
            let embedding = if as_base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "embedding": embedding, "index": i})
        })
        .collect();
    Ok(axum::Json(json!({
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": {"prompt_tokens": emb.prompt_eval_count, "total_tokens": emb.prompt_eval_count},
    }))
    .into_response())
}

fn model_object(entry: &crate::store::ModelEntry) -> Value {
    let created = entry.modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    json!({"id": entry.name.display_short(), "object": "model", "created": created, "owned_by": entry.name.namespace})
}

async fn models(State(state): State<AppState>) -> Result<Response> {
    let store = state.store.clone();
    let entries = tokio::task::spawn_blocking(move || store.list())
        .await
        .map_err(|e| Failure::internal(e.to_string()))?
        .map_err(|e| Failure::internal(e.to_string()))?;
    let data: Vec<Value> = entries.iter().map(model_object).collect();
    Ok(axum::Json(json!({"object": "list", "data": data})).into_response())
}

async fn model(State(state): State<AppState>, Path(model): Path<String>) -> Result<Response> {
    let entry = state
        .entry(&model)
        .await
        .map_err(|f| if f.status == 404 { Failure::new(404, format!("model \"{model}\" not found")) } else { f })?;
    Ok(axum::Json(model_object(&entry)).into_response())
}
