//! The inference service, called on behalf of the user whose message is being answered: their
//! identity travels with the request (in-process) and so does their credential (over the
//! network), so inference applies that user's model access and admission limits.

use std::pin::Pin;

use axum::body::Body;
use futures::{Stream, StreamExt};
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use kit::authn::Identity;
use kit::upstream::{Upstream, UpstreamError};
use ollama_api::types::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, OneOrMany};
use serde::Deserialize;

const CHAT_PATH: &str = "/ollama/api/chat";
const EMBED_PATH: &str = "/ollama/api/embed";
/// Error bodies are short; anything longer is not read.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Who a call is made for.
#[derive(Clone)]
pub struct Caller {
    pub identity: Identity,
    /// The caller's `Authorization` header, for an inference service reached over the network.
    pub authorization: Option<HeaderValue>,
}

/// Why the model did not answer, with the code the client sees.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    fn from_status(status: StatusCode, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct OllamaError {
            error: String,
        }
        let message = serde_json::from_slice::<OllamaError>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_owned());
        let code = match status {
            StatusCode::NOT_FOUND => "model_not_found",
            StatusCode::FORBIDDEN => "model_forbidden",
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => "inference_busy",
            _ => "inference_failed",
        };
        Self::new(code, message)
    }

    fn transport(e: UpstreamError) -> Self {
        match e {
            UpstreamError::NoInstance | UpstreamError::Connect(_) => {
                Self::new("inference_unavailable", "the inference service is not reachable")
            }
            UpstreamError::Timeout => Self::new("inference_timeout", "the inference service did not answer in time"),
            other => Self::new("inference_failed", other.to_string()),
        }
    }
}

/// One line of a streamed chat.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ChatLine {
    /// The request waits for an engine; this is its place in the queue (1 = next).
    Queued {
        queue_position: usize,
    },
    Error {
        error: String,
    },
    Chunk(Box<ChatResponse>),
}

pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatLine, Failure>> + Send>>;

#[derive(Clone)]
pub struct Inference {
    upstream: Upstream,
}

impl Inference {
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }

    /// Starts a streamed chat. Dropping the stream cancels the generation at the engine.
    pub async fn chat_stream(&self, caller: &Caller, req: &ChatRequest) -> Result<ChatStream, Failure> {
        let res = self.send(caller, req, true).await?;
        let lines = ollama_api::ndjson::decode::<ChatLine, _, _, _>(res.into_body().into_data_stream());
        Ok(Box::pin(lines.map(|line| line.map_err(|e| Failure::new("inference_failed", e.to_string())))))
    }

    /// A whole answer at once (for short jobs such as titles).
    pub async fn chat(&self, caller: &Caller, req: &ChatRequest) -> Result<ChatResponse, Failure> {
        let res = self.send(caller, req, false).await?;
        let bytes = res.into_body().collect().await.map_err(|e| Failure::new("inference_failed", e.to_string()))?;
        serde_json::from_slice(&bytes.to_bytes()).map_err(|e| Failure::new("inference_failed", e.to_string()))
    }

    /// The vectors of `input` (in order) from the embedding model `model`.
    pub async fn embed(&self, caller: &Caller, model: &str, input: Vec<String>) -> Result<Vec<Vec<f32>>, Failure> {
        let count = input.len();
        let req = EmbedRequest { model: model.to_owned(), input: Some(OneOrMany::Many(input)), ..Default::default() };
        let body = serde_json::to_vec(&req).map_err(|e| Failure::new("inference_failed", e.to_string()))?;
        let res = self.post(caller, EMBED_PATH, body, false).await?;
        let bytes = res.into_body().collect().await.map_err(|e| Failure::new("inference_failed", e.to_string()))?;
        let answer: EmbedResponse =
            serde_json::from_slice(&bytes.to_bytes()).map_err(|e| Failure::new("inference_failed", e.to_string()))?;
        if answer.embeddings.len() != count || answer.embeddings.iter().any(Vec::is_empty) {
            return Err(Failure::new("inference_failed", "the embedding model did not return one vector per input"));
        }
        Ok(answer.embeddings)
    }

    async fn send(&self, caller: &Caller, req: &ChatRequest, stream: bool) -> Result<http::Response<Body>, Failure> {
        let mut req = req.clone();
        req.stream = Some(stream);
        let body = serde_json::to_vec(&req).map_err(|e| Failure::new("inference_failed", e.to_string()))?;
        self.post(caller, CHAT_PATH, body, stream).await
    }

    /// POSTs a JSON body to the inference service as `caller`. `queue_events`: ask for the
    /// queue-position lines of a stream.
    async fn post(
        &self,
        caller: &Caller,
        path: &'static str,
        body: Vec<u8>,
        queue_events: bool,
    ) -> Result<http::Response<Body>, Failure> {
        let mut builder = kit::upstream::on_behalf(
            Request::builder().method(Method::POST).uri(path).header(header::CONTENT_TYPE, "application/json"),
            &caller.identity,
            caller.authorization.as_ref(),
        );
        if queue_events {
            builder = builder.header(ollama_api::QUEUE_EVENTS, "1");
        }
        let request = builder.body(Body::from(body)).map_err(|e| Failure::new("inference_failed", e.to_string()))?;
        let res = self.upstream.call(request).await.map_err(Failure::transport)?;
        if !res.status().is_success() {
            let status = res.status();
            let limited = http_body_util::Limited::new(res.into_body(), MAX_ERROR_BODY);
            let body = limited.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            return Err(Failure::from_status(status, &body));
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_told_apart() {
        let q: ChatLine = serde_json::from_str(r#"{"queue_position":2}"#).unwrap();
        assert!(matches!(q, ChatLine::Queued { queue_position: 2 }));
        let e: ChatLine = serde_json::from_str(r#"{"error":"boom"}"#).unwrap();
        assert!(matches!(e, ChatLine::Error { error } if error == "boom"));
        let c: ChatLine = serde_json::from_str(
            r#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"hi"},"done":false}"#,
        )
        .unwrap();
        assert!(matches!(c, ChatLine::Chunk(c) if c.message.content == "hi"));
    }
}
