//! The client against a fake engine, in-process and over HTTP.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures::StreamExt;
use kit::upstream::Upstream;
use ollama_api::ndjson::{self, DecodeError};
use ollama_api::types::*;
use ollama_api::{ClientError, OllamaClient};
use serde_json::json;
use tokio::sync::Notify;

use crate::helpers::fixture;

#[derive(Clone, Default)]
struct Engine {
    /// Notified when a streamed body is dropped, i.e. when the engine would stop generating.
    stream_dropped: Arc<Notify>,
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, serde_json::to_string(&ErrorResponse::new(message)).unwrap())
}

/// An NDJSON body cut into awkward pieces: a line split across chunks, several lines in one.
fn ndjson_body(text: String) -> Response {
    let bytes = Bytes::from(text);
    let mut cuts: Vec<usize> = [0, 7, 8, 90, 91, 250].into_iter().filter(|&c| c < bytes.len()).collect();
    cuts.push(bytes.len());
    let parts: Vec<Result<Bytes, Infallible>> = cuts.windows(2).map(|w| Ok(bytes.slice(w[0]..w[1]))).collect();
    let body = Body::from_stream(futures::stream::iter(parts));
    ([(header::CONTENT_TYPE, ndjson::CONTENT_TYPE)], body).into_response()
}

/// Notifies when dropped.
struct DropGuard(Arc<Notify>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// A generation that never ends on its own: a chunk every 10 ms.
fn endless(engine: &Engine) -> Response {
    let guard = DropGuard(engine.stream_dropped.clone());
    let chunks = futures::stream::unfold((guard, 0u64), |(guard, n)| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let chunk =
            json!({"model": "endless", "created_at": "2025-01-01T00:00:00Z", "response": n.to_string(), "done": false});
        Some((Ok::<_, Infallible>(ndjson::encode(&chunk).unwrap()), (guard, n + 1)))
    });
    ([(header::CONTENT_TYPE, ndjson::CONTENT_TYPE)], Body::from_stream(chunks)).into_response()
}

fn chat_lines() -> String {
    let mut text = String::new();
    for word in ["The", " sky", " is", " blue."] {
        let chunk = json!({"model": "llama3.2", "created_at": "2023-08-04T08:52:19.385406455-07:00",
            "message": {"role": "assistant", "content": word}, "done": false});
        text.push_str(&format!("{chunk}\n"));
    }
    text.push_str(&format!("{}\n", fixture("ollama/openapi_chat_response.json").replace('\n', "")));
    text
}

async fn chat(body: String) -> Response {
    let req: ChatRequest = serde_json::from_str(&body).unwrap();
    match req.model.as_str() {
        "busy" => {
            error(StatusCode::SERVICE_UNAVAILABLE, "server busy, please try again.  maximum pending requests exceeded")
        }
        _ if req.is_streaming() => ndjson_body(chat_lines()),
        _ => json_response(StatusCode::OK, fixture("ollama/chat_response_no_stream.json")),
    }
}

async fn generate(State(engine): State<Engine>, body: String) -> Response {
    let req: GenerateRequest = serde_json::from_str(&body).unwrap();
    match req.model.as_str() {
        "endless" => endless(&engine),
        "failing" => ndjson_body(fixture("ollama/generate_stream_error.ndjson")),
        _ if req.is_streaming() => ndjson_body(fixture("ollama/generate_stream.ndjson")),
        _ => json_response(StatusCode::OK, fixture("ollama/generate_response_no_stream.json")),
    }
}

async fn show(body: String) -> Response {
    let req: ShowRequest = serde_json::from_str(&body).unwrap();
    if req.model == "gemma4" {
        json_response(StatusCode::OK, fixture("ollama/openapi_show_response.json"))
    } else {
        error(StatusCode::NOT_FOUND, &format!("model \"{}\" not found, try pulling it first", req.model))
    }
}

async fn remove(body: String) -> Response {
    let req: DeleteRequest = serde_json::from_str(&body).unwrap();
    if req.model == "llama3:13b" {
        StatusCode::OK.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "model not found")
    }
}

fn engine_router(engine: Engine) -> Router {
    Router::new()
        .route(
            "/api/version",
            get(|| async { json_response(StatusCode::OK, fixture("ollama/openapi_version_response.json")) }),
        )
        .route(
            "/api/tags",
            get(|| async { json_response(StatusCode::OK, fixture("ollama/openapi_tags_response.json")) }),
        )
        .route("/api/ps", get(|| async { json_response(StatusCode::OK, fixture("ollama/openapi_ps_response.json")) }))
        .route("/api/show", post(show))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/api/embed", post(|| async { json_response(StatusCode::OK, fixture("ollama/embed_response.json")) }))
        .route(
            "/api/embeddings",
            post(|| async { json_response(StatusCode::OK, fixture("ollama/embeddings_response.json")) }),
        )
        .route("/api/pull", post(|| async { ndjson_body(fixture("ollama/pull_stream.ndjson")) }))
        .route("/api/create", post(|| async { ndjson_body(fixture("ollama/create_stream.ndjson")) }))
        .route("/api/delete", delete(remove))
        .route("/api/copy", post(|| async { StatusCode::OK }))
        .with_state(engine)
}

fn in_process() -> (OllamaClient, Engine) {
    let engine = Engine::default();
    (OllamaClient::new(Upstream::in_process(engine_router(engine.clone()))), engine)
}

async fn over_http() -> (OllamaClient, Engine) {
    let engine = Engine::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = engine_router(engine.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (OllamaClient::new(Upstream::http(&[format!("http://{addr}")]).unwrap()), engine)
}

async fn both() -> [(OllamaClient, Engine, &'static str); 2] {
    let (a, ae) = in_process();
    let (b, be) = over_http().await;
    [(a, ae, "in-process"), (b, be, "http")]
}

#[tokio::test]
async fn simple_calls() {
    for (client, _, mode) in both().await {
        assert_eq!(client.version().await.unwrap().version, "0.12.6", "{mode}");
        assert_eq!(client.tags().await.unwrap().models[0].name, "gemma4", "{mode}");
        assert_eq!(client.ps().await.unwrap().models[0].context_length, Some(4096), "{mode}");
        let show = client.show(&ShowRequest { model: "gemma4".into(), ..Default::default() }).await.unwrap();
        assert_eq!(show.capabilities, [Capability::Completion, Capability::Vision], "{mode}");
        let embed = client.embed(&EmbedRequest { model: "all-minilm".into(), ..Default::default() }).await.unwrap();
        assert_eq!(embed.embeddings[0].len(), 10, "{mode}");
        let legacy = client.embeddings(&EmbeddingsRequest { model: "all-minilm".into(), ..Default::default() }).await;
        assert_eq!(legacy.unwrap().embedding.len(), 10, "{mode}");
        client.delete(&DeleteRequest { model: "llama3:13b".into() }).await.unwrap();
        client.copy(&CopyRequest { source: "a".into(), destination: "b".into() }).await.unwrap();
    }
}

#[tokio::test]
async fn error_answers_keep_status_and_message() {
    for (client, _, mode) in both().await {
        let err = client.show(&ShowRequest { model: "nope".into(), ..Default::default() }).await.unwrap_err();
        match &err {
            ClientError::Status { status, message, .. } => {
                assert_eq!(*status, StatusCode::NOT_FOUND, "{mode}");
                assert_eq!(message, "model \"nope\" not found, try pulling it first");
            }
            other => panic!("{mode}: {other:?}"),
        }
        assert!(!err.never_reached());
        let err = client.delete(&DeleteRequest { model: "other".into() }).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{mode}");
        // A streaming call fails before its stream when the engine refuses it.
        let busy = ChatRequest { model: "busy".into(), ..Default::default() };
        let err = client.chat_stream(&busy).await.err().expect("503");
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE), "{mode}");
        assert!(err.to_string().contains("server busy"), "{err}");
    }
}

#[tokio::test]
async fn non_ollama_error_bodies() {
    // A plain-text 404, as Go's mux writes for an unknown path.
    let text = Router::new().route("/api/version", get(|| async { (StatusCode::NOT_FOUND, "404 page not found") }));
    let err = OllamaClient::new(Upstream::in_process(text)).version().await.unwrap_err();
    assert!(
        matches!(err, ClientError::Status { status: StatusCode::NOT_FOUND, ref message, .. } if message == "404 page not found")
    );
    // A problem document, as OllamaNet's gateway writes.
    let problem = Router::new().route(
        "/api/version",
        get(|| async {
            json_response(
                StatusCode::BAD_GATEWAY,
                json!({"code": "bad_gateway", "detail": "the engine failed"}).to_string(),
            )
        }),
    );
    let err = OllamaClient::new(Upstream::in_process(problem)).version().await.unwrap_err();
    assert!(
        matches!(err, ClientError::Status { ref message, ref code, .. } if message == "the engine failed" && code.as_deref() == Some("bad_gateway")),
        "{err:?}"
    );
    // An answer that is not what was asked for.
    let garbage = Router::new().route("/api/version", get(|| async { "[]" }));
    let err = OllamaClient::new(Upstream::in_process(garbage)).version().await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err:?}");
}

#[tokio::test]
async fn chat_streams_and_not() {
    for (client, _, mode) in both().await {
        let req: ChatRequest = serde_json::from_str(&fixture("ollama/chat_request_stream.json")).unwrap();
        // `chat` asks for one object even though the request itself streams by default.
        let one = client.chat(&req).await.unwrap();
        assert_eq!(one.message.content, "Hello! How are you today?", "{mode}");
        let chunks: Vec<ChatResponse> = client.chat_stream(&req).await.unwrap().map(Result::unwrap).collect().await;
        let text: String = chunks.iter().map(|c| c.message.content.as_str()).collect();
        assert_eq!(text, "The sky is blue.Hello! How can I help you today?", "{mode}");
        let last = chunks.last().unwrap();
        assert!(last.done && last.metrics.eval_count == Some(18), "{mode}");
        // A request that says `stream: false` is still streamed by `chat_stream`.
        let no_stream = ChatRequest { stream: Some(false), ..req };
        assert_eq!(client.chat_stream(&no_stream).await.unwrap().count().await, 5, "{mode}");
    }
}

#[tokio::test]
async fn generate_streams_and_not() {
    for (client, _, mode) in both().await {
        let req =
            GenerateRequest { model: "llama3.2".into(), prompt: "Why is the sky blue?".into(), ..Default::default() };
        let one = client.generate(&req).await.unwrap();
        assert_eq!(one.metrics.eval_count, Some(290), "{mode}");
        let chunks: Vec<_> = client.generate_stream(&req).await.unwrap().collect().await;
        assert_eq!(chunks.len(), 7, "{mode}");
    }
}

#[tokio::test]
async fn a_mid_stream_error_is_the_last_item() {
    for (client, _, mode) in both().await {
        let req = GenerateRequest { model: "failing".into(), ..Default::default() };
        let items: Vec<_> = client.generate_stream(&req).await.unwrap().collect().await;
        assert_eq!(items.len(), 5, "{mode}");
        assert!(items[..4].iter().all(Result::is_ok));
        match &items[4] {
            Err(ClientError::Stream(DecodeError::Remote(m))) => {
                assert_eq!(m, "an error was encountered while running the model")
            }
            other => panic!("{mode}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn progress_streams() {
    for (client, _, mode) in both().await {
        let pull: Vec<_> = client
            .pull_stream(&PullRequest { model: "llama3.2".into(), ..Default::default() })
            .await
            .unwrap()
            .collect()
            .await;
        let pull: Vec<ProgressResponse> = pull.into_iter().map(Result::unwrap).collect();
        assert_eq!(pull[1].total, Some(2_142_590_208), "{mode}");
        assert!(pull.last().unwrap().is_success(), "{mode}");
        let create = CreateRequest { model: "mario".into(), from: "llama3".into(), ..Default::default() };
        let items: Vec<_> = client.create_stream(&create).await.unwrap().collect().await;
        assert_eq!(items.len(), 11, "{mode}");
    }
}

#[tokio::test]
async fn dropping_a_stream_stops_the_engine() {
    for (client, engine, mode) in both().await {
        let req = GenerateRequest { model: "endless".into(), ..Default::default() };
        let mut stream = client.generate_stream(&req).await.unwrap();
        for _ in 0..3 {
            stream.next().await.unwrap().unwrap();
        }
        drop(stream);
        tokio::time::timeout(Duration::from_secs(5), engine.stream_dropped.notified())
            .await
            .unwrap_or_else(|_| panic!("{mode}: the engine kept generating after the client went away"));
    }
}

#[tokio::test]
async fn an_unreachable_engine_was_never_reached() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = OllamaClient::new(Upstream::http(&[format!("http://127.0.0.1:{port}")]).unwrap());
    let err = client.tags().await.unwrap_err();
    assert!(err.never_reached(), "{err:?}");
    let err = client.chat_stream(&ChatRequest { model: "m".into(), ..Default::default() }).await.err().unwrap();
    assert!(err.never_reached(), "{err:?}");
}
