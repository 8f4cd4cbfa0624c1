//! The OpenAI-compatible face, served as Ollama serves it: each request is converted to the
//! native one, run through the engine's own Ollama handlers, and the answer converted back — with
//! `ollama-api`'s conversions, the same the inference service uses, so both faces of the platform
//! agree field for field.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ollama_api::openai::{self, ChatCompletionRequest, CompletionRequest, EmbeddingRequest, convert};
use ollama_api::types::{ChatResponse, EmbedResponse, GenerateResponse, ListResponse, ShowRequest, ShowResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::Failure;
use crate::http::{self, AppState};

/// A failure in OpenAI's shape.
struct OpenAiError(Failure);

impl From<Failure> for OpenAiError {
    fn from(f: Failure) -> Self {
        Self(f)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(openai::ErrorResponse::new(self.0.status, self.0.message))).into_response()
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

/// The native request as the body a native handler reads.
fn native_body(native: &impl Serialize) -> Result<Body> {
    serde_json::to_vec(native).map(Body::from).map_err(|e| Failure::internal(e.to_string()).into())
}

/// A native handler's answer, or its `{"error": …}` as a failure with the same status.
async fn native_answer(answer: std::result::Result<Response, Failure>) -> Result<Response> {
    let res = answer?;
    if res.status() == StatusCode::OK {
        return Ok(res);
    }
    let status = res.status().as_u16();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap_or_default();
    let message = serde_json::from_slice::<ollama_api::types::ErrorResponse>(&body)
        .map_or_else(|_| String::from_utf8_lossy(&body).into_owned(), |e| e.error);
    Err(Failure::new(status, message).into())
}

/// A whole native answer, decoded.
async fn native_json<T: DeserializeOwned>(res: Response) -> Result<T> {
    let body = axum::body::to_bytes(res.into_body(), 64 << 20).await.map_err(|e| Failure::internal(e.to_string()))?;
    serde_json::from_slice(&body).map_err(|e| Failure::internal(e.to_string()).into())
}

async fn chat_completions(State(state): State<AppState>, raw: Body) -> Result<Response> {
    let req: ChatCompletionRequest = http::body(raw).await?;
    if req.messages.is_empty() {
        // Natively, no messages would load the model; here it is a mistake.
        return Err(Failure::bad_request("[] is too short - 'messages'").into());
    }
    let (streaming, usage) = (req.stream, req.stream_options.as_ref().is_some_and(|o| o.include_usage));
    let mut native = convert::chat_request(req).map_err(|e| Failure::bad_request(e.to_string()))?;
    native.stream = Some(streaming);
    let res = native_answer(http::chat(State(state), native_body(&native)?).await).await?;
    let id = convert::new_id("chatcmpl");
    if streaming {
        let mut chunks = convert::ChatStream::new(id, convert::unix_now(), usage);
        return Ok(openai::sse_response::<ChatResponse, _, _, _>(res.into_body().into_data_stream(), move |r| {
            chunks.convert(r)
        }));
    }
    let answer: ChatResponse = native_json(res).await?;
    Ok(axum::Json(convert::chat_completion(&id, answer)).into_response())
}

async fn completions(State(state): State<AppState>, raw: Body) -> Result<Response> {
    let req: CompletionRequest = http::body(raw).await?;
    let (streaming, usage) = (req.stream, req.stream_options.as_ref().is_some_and(|o| o.include_usage));
    let mut native = convert::completion_request(req);
    native.stream = Some(streaming);
    let res = native_answer(http::generate(State(state), native_body(&native)?).await).await?;
    let id = convert::new_id("cmpl");
    if streaming {
        let mut chunks = convert::CompletionStream::new(id, convert::unix_now(), usage);
        return Ok(openai::sse_response::<GenerateResponse, _, _, _>(res.into_body().into_data_stream(), move |r| {
            chunks.convert(r)
        }));
    }
    let answer: GenerateResponse = native_json(res).await?;
    Ok(axum::Json(convert::completion(&id, answer)).into_response())
}

async fn embeddings(State(state): State<AppState>, raw: Body) -> Result<Response> {
    let req: EmbeddingRequest = http::body(raw).await?;
    let (model, format) = (req.model.clone(), req.encoding_format.unwrap_or_default());
    let native = convert::embed_request(req).map_err(|e| Failure::bad_request(e.to_string()))?;
    let res = native_answer(http::embed(State(state), native_body(&native)?).await).await?;
    let answer: EmbedResponse = native_json(res).await?;
    Ok(axum::Json(convert::embedding_list(&model, answer, format)).into_response())
}

async fn models(State(state): State<AppState>) -> Result<Response> {
    let list: ListResponse = native_json(native_answer(http::tags(State(state)).await).await?).await?;
    Ok(axum::Json(convert::model_list(&list)).into_response())
}

async fn model(State(state): State<AppState>, Path(model): Path<String>) -> Result<Response> {
    let show = ShowRequest { model: model.clone(), ..ShowRequest::default() };
    let res = native_answer(http::show(State(state), native_body(&show)?).await).await?;
    let show: ShowResponse = native_json(res).await?;
    Ok(axum::Json(convert::model(&model, &show)).into_response())
}
