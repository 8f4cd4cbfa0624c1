//! Errors as each face speaks them: `{"error": "…"}` on the Ollama face (what Ollama clients
//! parse), `{"error": {"message", "type", …}}` on the OpenAI face, problem+json on the admin API.
//! A refused request body is problem+json on both faces, with the face's `error` member added,
//! so that a client of either kind reads it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit::Problem;
use kit::problem::FieldError;
use ollama_api::strict::Refusal;

use crate::admission::Refused;
use crate::relay::RelayError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Ollama,
    OpenAi,
}

#[derive(Debug)]
pub struct FaceError {
    pub face: Face,
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
    /// A body refused for a key an engine could read differently: the answer is problem+json.
    pub refusal: Option<Refusal>,
}

impl FaceError {
    pub fn new(face: Face, status: StatusCode, message: impl Into<String>) -> Self {
        Self { face, status, message: message.into(), retry_after: None, refusal: None }
    }

    /// 400 `ambiguous_field` or `duplicate_field`.
    pub fn body_refused(face: Face, refusal: Refusal) -> Self {
        let message = refusal.to_string();
        Self { refusal: Some(refusal), ..Self::bad_request(face, message) }
    }

    pub fn bad_request(face: Face, message: impl Into<String>) -> Self {
        Self::new(face, StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(face: Face, model: &str) -> Self {
        Self::new(face, StatusCode::NOT_FOUND, format!("model \"{model}\" not found, try pulling it first"))
    }

    pub fn refused(face: Face, refused: Refused) -> Self {
        let status = match refused {
            Refused::UserLimit => StatusCode::TOO_MANY_REQUESTS,
            Refused::QueueFull | Refused::TimedOut => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut e = Self::new(face, status, refused.to_string());
        e.retry_after = Some(refused.retry_after().as_secs().max(1));
        e
    }

    pub fn relay(face: Face, error: RelayError) -> Self {
        match &error {
            RelayError::NoNode(model) => Self::not_found(face, model),
            RelayError::Unavailable(_) => {
                let mut e = Self::new(face, StatusCode::SERVICE_UNAVAILABLE, error.to_string());
                e.retry_after = Some(2);
                e
            }
            RelayError::Timeout => Self::new(face, StatusCode::GATEWAY_TIMEOUT, error.to_string()),
        }
    }

    /// The error as one NDJSON line, for a stream that has already started.
    pub fn line(&self) -> bytes::Bytes {
        ollama_api::ndjson::encode(&ollama_api::types::ErrorResponse::new(self.message.clone()))
            .unwrap_or_else(|_| bytes::Bytes::from_static(b"{\"error\":\"internal error\"}\n"))
    }
}

impl IntoResponse for FaceError {
    fn into_response(self) -> Response {
        if let Some(refusal) = self.refusal {
            return refused_body(self.face, self.status, &refusal, self.message);
        }
        let mut res = match self.face {
            Face::Ollama => (self.status, Json(ollama_api::types::ErrorResponse::new(self.message))).into_response(),
            Face::OpenAi => {
                (self.status, Json(ollama_api::openai::ErrorResponse::new(self.status.as_u16(), self.message)))
                    .into_response()
            }
        };
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

fn refused_body(face: Face, status: StatusCode, refusal: &Refusal, message: String) -> Response {
    let code = refusal.code();
    let mut problem = Problem::new(status, code, message.clone());
    problem.errors = vec![FieldError::new(refusal.key(), code, message.clone())];
    problem.request_id = kit::request_id::current();
    let error = match face {
        Face::Ollama => serde_json::json!(message),
        Face::OpenAi => {
            let mut e = ollama_api::openai::ErrorResponse::new(status.as_u16(), message).error;
            e.param = Some(refusal.key().into());
            e.code = Some(code.to_owned());
            serde_json::json!(e)
        }
    };
    let mut body = serde_json::to_value(&problem).unwrap_or_default();
    body["error"] = error;
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kit::problem::CONTENT_TYPE));
    res
}

/// Errors of the admin API.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("no engine node {0:?}")]
    UnknownNode(String),
    #[error("engine node {node:?} has no model {model:?}")]
    UnknownModel { node: String, model: String },
    #[error("invalid model name: {0}")]
    InvalidModelName(String),
    #[error("engine {node}: {message}")]
    Engine { node: String, message: String },
    /// A node's registry failed it (down, slow, a model it does not have): the node's status and
    /// code.
    #[error("engine {node}: {message}")]
    Registry { node: String, status: StatusCode, code: &'static str, message: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("starting: {0}")]
    Start(String),
}

impl InferenceError {
    pub fn problem(&self) -> Problem {
        match self {
            InferenceError::UnknownNode(_) => Problem::new(StatusCode::NOT_FOUND, "node_not_found", self.to_string()),
            InferenceError::UnknownModel { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "model_not_found", self.to_string())
            }
            InferenceError::InvalidModelName(detail) => {
                let mut p = Problem::bad_request("invalid_model_name", self.to_string());
                p.errors = vec![FieldError::new("model", "invalid_model_name", detail.clone())];
                p
            }
            InferenceError::Engine { .. } => Problem::new(StatusCode::BAD_GATEWAY, "engine_error", self.to_string()),
            InferenceError::Registry { status, code, .. } => Problem::new(*status, code, self.to_string()),
            InferenceError::Database(e) => kit::db::problem(e),
            InferenceError::Start(_) => Problem::internal(),
        }
    }
}

impl IntoResponse for InferenceError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}
