//! A typed Ollama client over [`Upstream`], so the same code reaches an engine in-process (its
//! router) or over HTTP.
//!
//! Streaming methods return once the response status is known: an error before the first byte
//! (connection refused, 404, 503 busy) is the `Err` of the call, so a router can still try
//! another node; after that, errors arrive as stream items. Dropping a stream drops the response
//! body, which closes the connection (HTTP) or drops the handler's stream (in-process), and the
//! engine stops generating.

use std::borrow::Cow;

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use kit::upstream::{Upstream, UpstreamError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ndjson;
use crate::types::{
    ChatRequest, ChatResponse, CopyRequest, CreateRequest, DeleteRequest, EmbedRequest, EmbedResponse,
    EmbeddingsRequest, EmbeddingsResponse, ErrorResponse, GenerateRequest, GenerateResponse, ListResponse,
    ProgressResponse, PsResponse, PullRequest, ShowRequest, ShowResponse, VersionResponse,
};

/// Error bodies are read up to this size; Ollama's are a line of text.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request never reached an engine (no instance, connection refused): safe to send to
    /// another node.
    #[error("engine unreachable: {0}")]
    Unreachable(#[source] UpstreamError),
    /// The exchange failed after the request may have been sent, before a response arrived.
    #[error("engine request failed: {0}")]
    Transport(#[source] UpstreamError),
    /// The engine answered with an error status: 404 unknown model, 400 bad request, 503 busy…
    /// `code` is the stable code OllamaNet's engine (or a problem document) gives; Ollama gives
    /// none.
    #[error("engine answered {status}: {message}")]
    Status { status: StatusCode, message: String, code: Option<String> },
    /// The request could not be serialized.
    #[error("request not encodable: {0}")]
    Encode(#[source] serde_json::Error),
    /// A non-streamed body that is not the expected JSON.
    #[error("undecodable engine response: {0}")]
    Decode(#[source] serde_json::Error),
    /// A stream failed after it started: a broken body, an undecodable line, or the engine's
    /// `{"error": …}` line.
    #[error("engine stream failed: {0}")]
    Stream(#[source] ndjson::DecodeError<axum::Error>),
}

impl ClientError {
    /// The request certainly did not reach an engine, so retrying elsewhere cannot duplicate work.
    pub fn never_reached(&self) -> bool {
        matches!(self, ClientError::Unreachable(_))
    }

    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<UpstreamError> for ClientError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::NoInstance | UpstreamError::Connect(_) | UpstreamError::InvalidUrl(_) => {
                ClientError::Unreachable(e)
            }
            UpstreamError::Failed(_) | UpstreamError::Timeout => ClientError::Transport(e),
        }
    }
}

/// A stream of typed NDJSON items from an engine.
pub type ItemStream<T> = std::pin::Pin<Box<dyn Stream<Item = Result<T, ClientError>> + Send>>;

#[derive(Clone)]
pub struct OllamaClient {
    upstream: Upstream,
}

impl OllamaClient {
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }

    pub async fn version(&self) -> Result<VersionResponse, ClientError> {
        self.call(Method::GET, "/api/version", None::<&()>).await
    }

    /// Models on disk.
    pub async fn tags(&self) -> Result<ListResponse, ClientError> {
        self.call(Method::GET, "/api/tags", None::<&()>).await
    }

    /// Models loaded in memory.
    pub async fn ps(&self) -> Result<PsResponse, ClientError> {
        self.call(Method::GET, "/api/ps", None::<&()>).await
    }

    pub async fn show(&self, req: &ShowRequest) -> Result<ShowResponse, ClientError> {
        self.call(Method::POST, "/api/show", Some(req)).await
    }

    /// One answer (`stream: false` is sent whatever `req.stream` says).
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ClientError> {
        let req = with_stream(req, false, |r| r.stream, |r, s| r.stream = s);
        self.call(Method::POST, "/api/chat", Some(&*req)).await
    }

    /// The answer as chunks (`stream: true` is sent whatever `req.stream` says).
    pub async fn chat_stream(&self, req: &ChatRequest) -> Result<ItemStream<ChatResponse>, ClientError> {
        let req = with_stream(req, true, |r| r.stream, |r, s| r.stream = s);
        self.stream("/api/chat", &*req).await
    }

    pub async fn generate(&self, req: &GenerateRequest) -> Result<GenerateResponse, ClientError> {
        let req = with_stream(req, false, |r| r.stream, |r, s| r.stream = s);
        self.call(Method::POST, "/api/generate", Some(&*req)).await
    }

    pub async fn generate_stream(&self, req: &GenerateRequest) -> Result<ItemStream<GenerateResponse>, ClientError> {
        let req = with_stream(req, true, |r| r.stream, |r, s| r.stream = s);
        self.stream("/api/generate", &*req).await
    }

    pub async fn embed(&self, req: &EmbedRequest) -> Result<EmbedResponse, ClientError> {
        self.call(Method::POST, "/api/embed", Some(req)).await
    }

    /// The legacy single-prompt endpoint.
    pub async fn embeddings(&self, req: &EmbeddingsRequest) -> Result<EmbeddingsResponse, ClientError> {
        self.call(Method::POST, "/api/embeddings", Some(req)).await
    }

    /// Download progress, ending with `{"status":"success"}`.
    pub async fn pull_stream(&self, req: &PullRequest) -> Result<ItemStream<ProgressResponse>, ClientError> {
        let req = with_stream(req, true, |r| r.stream, |r, s| r.stream = s);
        self.stream("/api/pull", &*req).await
    }

    /// Creation progress, ending with `{"status":"success"}`.
    pub async fn create_stream(&self, req: &CreateRequest) -> Result<ItemStream<ProgressResponse>, ClientError> {
        let req = with_stream(req, true, |r| r.stream, |r, s| r.stream = s);
        self.stream("/api/create", &*req).await
    }

    pub async fn delete(&self, req: &DeleteRequest) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, "/api/delete", req).await
    }

    pub async fn copy(&self, req: &CopyRequest) -> Result<(), ClientError> {
        self.call_empty(Method::POST, "/api/copy", req).await
    }

    /// A JSON exchange; [`Upstream::json`] resends it to another instance if it cannot connect.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.upstream.json(method, path, body).await?;
        check(status, &bytes)?;
        serde_json::from_slice(&bytes).map_err(ClientError::Decode)
    }

    /// An exchange whose success has no body worth reading (copy, delete).
    async fn call_empty<B: Serialize>(&self, method: Method, path: &str, body: &B) -> Result<(), ClientError> {
        let (status, bytes) = self.upstream.json(method, path, Some(body)).await?;
        check(status, &bytes)
    }

    async fn stream<B: Serialize, T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<ItemStream<T>, ClientError> {
        let body = serde_json::to_vec(body).map_err(ClientError::Encode)?;
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, ndjson::CONTENT_TYPE);
        if let Some(id) = kit::request_id::current().and_then(|id| HeaderValue::from_str(&id).ok()) {
            builder = builder.header(kit::request_id::HEADER, id);
        }
        let req =
            builder.body(Body::from(body)).map_err(|e| ClientError::Transport(UpstreamError::Failed(e.to_string())))?;
        let res = self.upstream.call(req).await?;
        let status = res.status();
        if !status.is_success() {
            let bytes =
                Limited::new(res.into_body(), MAX_ERROR_BODY).collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            return Err(status_error(status, &bytes));
        }
        let items = ndjson::decode::<T, _, _, _>(BodyExt::into_data_stream(res.into_body()));
        Ok(Box::pin(items.map(|item| item.map_err(ClientError::Stream))))
    }
}

/// The request with `stream` set as the method needs, copied only when it differs.
fn with_stream<T: Clone>(
    req: &T,
    stream: bool,
    get: impl Fn(&T) -> Option<bool>,
    set: impl Fn(&mut T, Option<bool>),
) -> Cow<'_, T> {
    // Absent means streaming, so `None` is already right for a stream.
    let current = get(req);
    if current == Some(stream) || (stream && current.is_none()) {
        return Cow::Borrowed(req);
    }
    let mut owned = req.clone();
    set(&mut owned, Some(stream));
    Cow::Owned(owned)
}

fn check(status: StatusCode, body: &Bytes) -> Result<(), ClientError> {
    if status.is_success() { Ok(()) } else { Err(status_error(status, body)) }
}

/// The error of an error answer: Ollama's `{"error"}` (and the `code` OllamaNet's engine adds),
/// else a problem's `detail` and `code`, else the text itself.
fn status_error(status: StatusCode, body: &[u8]) -> ClientError {
    let (message, code) = serde_json::from_slice::<ErrorResponse>(body)
        .map(|e| (e.error, e.code))
        .or_else(|_| {
            let v = serde_json::from_slice::<serde_json::Value>(body).map_err(|_| ())?;
            let detail = v.get("detail").and_then(|d| d.as_str()).ok_or(())?;
            Ok((detail.to_owned(), v.get("code").and_then(|c| c.as_str()).map(str::to_owned)))
        })
        .unwrap_or_else(|()| {
            let text = String::from_utf8_lossy(&body[..body.len().min(1024)]).trim().to_owned();
            (if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text }, None)
        });
    ClientError::Status { status, message, code }
}
