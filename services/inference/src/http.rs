//! The inference service's routes.
//!
//! - `/ollama/api/*`: the Ollama API for the platform's users (API keys or tokens), every model
//!   the fleet has, access rules applied. The gateway exposes it as is.
//! - `/ollama/v1/*`: the OpenAI-compatible API, translated to and from the native API (so usage
//!   is always known, and any Ollama version works behind it). The gateway exposes it as `/v1/*`.
//! - `/api/admin/engines*`: engine administration (Admin): nodes, a node's models, pull, delete.
//!
//! Management endpoints of the engines (`/api/pull`, `/api/delete`, `/api/create`, blobs) are
//! never reachable through the user-facing faces.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bytes::Bytes;
use futures::StreamExt;
use kit::Problem;
use kit::authn::{Admin, Authenticator, CurrentUser, Identity};
use kit::http::{Path, Query};
use ollama_api::ndjson;
use ollama_api::openai::{self, convert};
use ollama_api::strict::{self, BodyError};
use ollama_api::types::{
    ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, EmbeddingsRequest, GenerateRequest, GenerateResponse,
    ListResponse, ModelEntry, PsResponse, ShowRequest,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::engines::{EngineList, NodeModels, PullEvent};
use crate::error::{Face, FaceError, InferenceError};
use crate::fleet::NodeStatus;
use crate::relay::{Relayed, passthrough};
use crate::service::{NativeRequest, Service, node_error};

pub use ollama_api::QUEUE_EVENTS;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub authn: Arc<Authenticator>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(s: &AppState) -> Self {
        s.authn.clone()
    }
}

#[derive(OpenApi)]
#[openapi(tags(
    (name = "ollama", description = "The Ollama API over every engine of the platform"),
    (name = "openai", description = "The OpenAI-compatible API (exposed as /v1)"),
    (name = "engines", description = "Engine administration (Admin)"),
))]
struct ApiDoc;

pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ollama_chat))
        .routes(routes!(ollama_generate))
        .routes(routes!(ollama_embed))
        .routes(routes!(ollama_embeddings))
        .routes(routes!(ollama_tags))
        .routes(routes!(ollama_ps))
        .routes(routes!(ollama_show))
        .routes(routes!(ollama_version))
        .routes(routes!(openai_chat))
        .routes(routes!(openai_completions))
        .routes(routes!(openai_embeddings))
        .routes(routes!(openai_models))
        .routes(routes!(openai_model))
        .routes(routes!(list_engines))
        .routes(routes!(get_engine))
        .routes(routes!(engine_models, delete_engine_model))
        .routes(routes!(pull_engine_model))
        .with_state(state)
        .split_for_parts();
    (router, doc)
}

/// Reads a request body once, refusing keys an engine could read differently from the
/// platform (`ollama_api::strict`): what is relayed is this reading, encoded again.
fn read<T: DeserializeOwned>(face: Face, body: &Bytes) -> Result<T, FaceError> {
    if body.is_empty() {
        return Err(FaceError::bad_request(face, "missing request body"));
    }
    strict::from_slice(body).map_err(|e| match e {
        BodyError::Refused(refusal) => FaceError::body_refused(face, refusal),
        BodyError::Invalid(e) => FaceError::bad_request(face, e.to_string()),
    })
}

/// A generation on the Ollama face: the node's answer is relayed as is.
async fn ollama_generation<R: NativeRequest + DeserializeOwned>(
    s: AppState,
    who: Identity,
    headers: &HeaderMap,
    path: &'static str,
    body: Bytes,
) -> Response {
    let run = async {
        let req: R = read(Face::Ollama, &body)?;
        let streaming = req.streaming();
        let job = s.service.job(Face::Ollama, path, who, req).await?;
        if streaming && headers.get(QUEUE_EVENTS).is_some_and(|v| v == "1" || v == "true") {
            let mut res = Response::new(s.service.generate_with_queue_events(job));
            res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ndjson::CONTENT_TYPE));
            return Ok(res);
        }
        Ok(passthrough(s.service.generate(Face::Ollama, job).await?))
    };
    run.await.unwrap_or_else(|e: FaceError| e.into_response())
}

/// Chat (`POST /api/chat` of Ollama). Send `x-ollamanet-queue-events: 1` to get
/// `{"queue_position": n}` lines while waiting for a free engine.
#[utoipa::path(post, path = "/ollama/api/chat", tag = "ollama", request_body = Object,
    responses((status = 200, description = "NDJSON chunks, or one object with `stream: false`")))]
async fn ollama_chat(
    State(s): State<AppState>,
    CurrentUser(who): CurrentUser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ollama_generation::<ChatRequest>(s, who, &headers, "/api/chat", body).await
}

/// Completion from a prompt (`POST /api/generate` of Ollama).
#[utoipa::path(post, path = "/ollama/api/generate", tag = "ollama", request_body = Object,
    responses((status = 200, description = "NDJSON chunks, or one object with `stream: false`")))]
async fn ollama_generate(
    State(s): State<AppState>,
    CurrentUser(who): CurrentUser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ollama_generation::<GenerateRequest>(s, who, &headers, "/api/generate", body).await
}

async fn ollama_relay<R: NativeRequest + DeserializeOwned>(
    s: AppState,
    who: Identity,
    path: &'static str,
    body: Bytes,
) -> Response {
    let run = async {
        let req: R = read(Face::Ollama, &body)?;
        let job = s.service.job(Face::Ollama, path, who, req).await?;
        Ok(passthrough(s.service.relay(Face::Ollama, job, None).await?))
    };
    run.await.unwrap_or_else(|e: FaceError| e.into_response())
}

/// Embeddings (`POST /api/embed` of Ollama).
#[utoipa::path(post, path = "/ollama/api/embed", tag = "ollama", request_body = Object,
    responses((status = 200, description = "`{model, embeddings, …}`")))]
async fn ollama_embed(State(s): State<AppState>, CurrentUser(who): CurrentUser, body: Bytes) -> Response {
    ollama_relay::<EmbedRequest>(s, who, "/api/embed", body).await
}

/// Legacy single embedding (`POST /api/embeddings` of Ollama).
#[utoipa::path(post, path = "/ollama/api/embeddings", tag = "ollama", request_body = Object,
    responses((status = 200, description = "`{embedding}`")))]
async fn ollama_embeddings(State(s): State<AppState>, CurrentUser(who): CurrentUser, body: Bytes) -> Response {
    ollama_relay::<EmbeddingsRequest>(s, who, "/api/embeddings", body).await
}

/// Model details (`POST /api/show` of Ollama), from a node that has the model.
#[utoipa::path(post, path = "/ollama/api/show", tag = "ollama", request_body = Object,
    responses((status = 200, description = "As Ollama's `/api/show`")))]
async fn ollama_show(State(s): State<AppState>, CurrentUser(who): CurrentUser, body: Bytes) -> Response {
    let req: ShowRequest = match read(Face::Ollama, &body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = s.service.check_model(Face::Ollama, &who, &req.model).await {
        return e.into_response();
    }
    let Some(node) = s.service.fleet.candidates(&req.model).into_iter().next() else {
        return FaceError::not_found(Face::Ollama, &req.model).into_response();
    };
    match node.client.show(&req).await {
        Ok(show) => Json(show).into_response(),
        Err(e) => {
            FaceError::new(Face::Ollama, e.status().unwrap_or(StatusCode::BAD_GATEWAY), e.to_string()).into_response()
        }
    }
}

/// The models the caller may use.
async fn visible(s: &AppState, who: &Identity) -> Vec<ModelEntry> {
    let mut out = Vec::new();
    for (_, (entry, _)) in s.service.fleet.models() {
        if s.service.access.allowed(who, &entry.name).await {
            out.push(entry);
        }
    }
    out
}

/// Models on the platform's engines (`GET /api/tags` of Ollama) the caller may use.
#[utoipa::path(get, path = "/ollama/api/tags", tag = "ollama", responses((status = 200, description = "`{models: […]}`")))]
async fn ollama_tags(State(s): State<AppState>, CurrentUser(who): CurrentUser) -> Json<ListResponse> {
    Json(ListResponse { models: visible(&s, &who).await })
}

/// Models loaded in memory on the platform's engines (`GET /api/ps` of Ollama).
#[utoipa::path(get, path = "/ollama/api/ps", tag = "ollama", responses((status = 200, description = "`{models: […]}`")))]
async fn ollama_ps(State(s): State<AppState>, CurrentUser(who): CurrentUser) -> Json<PsResponse> {
    let mut models = Vec::new();
    for node in s.service.fleet.nodes().iter().filter(|n| n.is_healthy()) {
        for m in node.loaded() {
            if s.service.access.allowed(&who, &m.name).await {
                models.push(m);
            }
        }
    }
    Json(PsResponse { models })
}

/// The Ollama API version the platform serves (`GET /api/version`), as its engines report it.
#[utoipa::path(get, path = "/ollama/api/version", tag = "ollama", responses((status = 200, description = "`{version}`")))]
async fn ollama_version(State(s): State<AppState>, CurrentUser(_): CurrentUser) -> Response {
    for node in s.service.fleet.nodes().iter().filter(|n| n.is_healthy()) {
        if let Ok(v) = node.client.version().await {
            return Json(v).into_response();
        }
    }
    FaceError::new(Face::Ollama, StatusCode::SERVICE_UNAVAILABLE, "no inference engine is available").into_response()
}

// ---- OpenAI face ----

/// Relays a native request built from an OpenAI one; a non-200 answer becomes an OpenAI error.
async fn openai_relay(
    s: &AppState,
    who: Identity,
    path: &'static str,
    native: impl NativeRequest,
    generation: bool,
) -> Result<Relayed, FaceError> {
    let job = s.service.job(Face::OpenAi, path, who, native).await?;
    let relayed = if generation {
        s.service.generate(Face::OpenAi, job).await?
    } else {
        s.service.relay(Face::OpenAi, job, None).await?
    };
    if relayed.status != StatusCode::OK {
        return Err(node_error(Face::OpenAi, relayed).await);
    }
    Ok(relayed)
}

/// Reads a whole (non-streamed) native answer.
async fn native_json<T: serde::de::DeserializeOwned>(relayed: Relayed) -> Result<T, FaceError> {
    use http_body_util::BodyExt;
    let bytes = relayed
        .body
        .into_body()
        .collect()
        .await
        .map_err(|e| FaceError::new(Face::OpenAi, StatusCode::BAD_GATEWAY, e.to_string()))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| FaceError::new(Face::OpenAi, StatusCode::BAD_GATEWAY, e.to_string()))
}

/// Chat completions, OpenAI-compatible (exposed as `POST /v1/chat/completions`).
#[utoipa::path(post, path = "/ollama/v1/chat/completions", tag = "openai", request_body = Object,
    responses((status = 200, description = "`chat.completion`, or server-sent `chat.completion.chunk`s")))]
async fn openai_chat(State(s): State<AppState>, CurrentUser(who): CurrentUser, body: Bytes) -> Response {
    let run = async {
        let req: openai::ChatCompletionRequest = read(Face::OpenAi, &body)?;
        let (streaming, usage) = (req.stream, req.stream_options.as_ref().is_some_and(|o| o.include_usage));
        let mut native = convert::chat_request(req).map_err(|e| FaceError::bad_request(Face::OpenAi, e.to_string()))?;
        native.stream = Some(streaming);
        let relayed = openai_relay(&s, who, "/api/chat", native, true).await?;
        let id = convert::new_id("chatcmpl");
        if streaming {
            let mut chunks = convert::ChatStream::new(id, convert::unix_now(), usage);
            return Ok(openai::sse_response::<ChatResponse, _, _, _>(relayed.body.into_stream(), move |r| {
                chunks.convert(r)
            }));
        }
        let answer: ChatResponse = native_json(relayed).await?;
        Ok(Json(convert::chat_completion(&id, answer)).into_response())
    };
    run.await.unwrap_or_else(|e: FaceError| e.into_response())
}

/// Completions, OpenAI-compatible (exposed as `POST /v1/completions`).
#[utoipa::path(post, path = "/ollama/v1/completions", tag = "openai", request_body = Object,
    responses((status = 200, description = "`text_completion`, or server-sent ones")))]
async fn openai_completions(State(s): State<AppState>, CurrentUser(who): CurrentUser, body: Bytes) -> Response {
    let run = async {
        let req: openai::CompletionRequest = read(Face::OpenAi, &body)?;
        let (streaming, usage) = (req.stream, req.stream_options.as_ref().is_some_and(|o| o.include_usage));
        let mut native = convert::completion_request(req);
        native.stream = Some(streaming);
        let relayed = openai_relay(&s, who, "/api/generate", native, true).await?;
        let id = convert::new_id("cmpl");
        if streaming {
            let mut chunks = convert::CompletionStream::new(id, convert::unix_now(), usage);
            return Ok(openai::sse_response::<GenerateResponse, _, _, _>(relayed.body.into_stream(), move |r| {
                chunks.convert(r)
            }));
        }
        let answer: GenerateResponse = native_json(relayed).await?;
        Ok(Json(convert::completion(&id, answer)).into_response())
    };
    run.await.unwrap_or_else(|e: FaceError| e.into_response())
}

/// Embeddings, OpenAI-compatible (exposed as `POST /v1/embeddings`).
#[utoipa::path(post, path = "/ollama/v1/embeddings", tag = "openai", request_body = Object,
    responses((status = 200, description = "An embedding `list`")))]
async fn openai_embeddings(State(s): State<AppState>, CurrentUser(who): CurrentUser, body: Bytes) -> Response {
    let run = async {
        let req: openai::EmbeddingRequest = read(Face::OpenAi, &body)?;
        let (model, format) = (req.model.clone(), req.encoding_format.unwrap_or_default());
        let native = convert::embed_request(req).map_err(|e| FaceError::bad_request(Face::OpenAi, e.to_string()))?;
        let relayed = openai_relay(&s, who, "/api/embed", native, false).await?;
        let answer: EmbedResponse = native_json(relayed).await?;
        Ok(Json(convert::embedding_list(&model, answer, format)).into_response())
    };
    run.await.unwrap_or_else(|e: FaceError| e.into_response())
}

/// The models the caller may use, OpenAI-compatible (exposed as `GET /v1/models`).
#[utoipa::path(get, path = "/ollama/v1/models", tag = "openai", responses((status = 200, description = "A model `list`")))]
async fn openai_models(State(s): State<AppState>, CurrentUser(who): CurrentUser) -> Json<openai::ModelList> {
    Json(convert::model_list(&ListResponse { models: visible(&s, &who).await }))
}

/// One model, OpenAI-compatible (exposed as `GET /v1/models/{model}`).
#[utoipa::path(get, path = "/ollama/v1/models/{model}", tag = "openai", params(("model" = String, Path)),
    responses((status = 200, description = "A `model`")))]
async fn openai_model(State(s): State<AppState>, CurrentUser(who): CurrentUser, Path(model): Path<String>) -> Response {
    if let Err(e) = s.service.check_model(Face::OpenAi, &who, &model).await {
        return e.into_response();
    }
    let Some(node) = s.service.fleet.candidates(&model).into_iter().next() else {
        return FaceError::not_found(Face::OpenAi, &model).into_response();
    };
    match node.client.show(&ShowRequest { model: model.clone(), ..Default::default() }).await {
        Ok(show) => Json(convert::model(&model, &show)).into_response(),
        Err(e) => {
            FaceError::new(Face::OpenAi, e.status().unwrap_or(StatusCode::BAD_GATEWAY), e.to_string()).into_response()
        }
    }
}

// ---- engine administration ----

/// Every engine node with its state, and the platform's admission queue.
#[utoipa::path(get, path = "/api/admin/engines", tag = "engines", security(("bearer" = [])),
    responses((status = 200, body = EngineList),
    (status = 403, description = "`forbidden`: not an Admin", body = Problem, content_type = "application/problem+json"), kit::api::CredentialErrors))]
async fn list_engines(State(s): State<AppState>, _: Admin) -> Json<EngineList> {
    Json(s.service.engines.list())
}

/// One node's state.
#[utoipa::path(get, path = "/api/admin/engines/{node}", tag = "engines", security(("bearer" = [])),
    params(("node" = String, Path, description = "`local` or the node's `host:port`")),
    responses((status = 200, body = NodeStatus),
    (status = 404, description = "`node_not_found`", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "`forbidden`: not an Admin", body = Problem, content_type = "application/problem+json"), kit::api::CredentialErrors))]
async fn get_engine(
    State(s): State<AppState>,
    _: Admin,
    Path(node): Path<String>,
) -> Result<Json<NodeStatus>, InferenceError> {
    Ok(Json(s.service.engines.status(&node)?))
}

/// The models installed on a node (its `/api/tags`, asked now), each with its memory use when
/// loaded (its `/api/ps`).
#[utoipa::path(get, path = "/api/admin/engines/{node}/models", tag = "engines", security(("bearer" = [])),
    params(("node" = String, Path)),
    responses((status = 200, body = NodeModels),
    (status = 404, description = "`node_not_found`", body = Problem, content_type = "application/problem+json"),
    (status = 502, description = "`engine_error`: the node failed or did not answer", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "`forbidden`: not an Admin", body = Problem, content_type = "application/problem+json"), kit::api::CredentialErrors))]
async fn engine_models(
    State(s): State<AppState>,
    _: Admin,
    Path(node): Path<String>,
) -> Result<Json<NodeModels>, InferenceError> {
    Ok(Json(s.service.engines.models(&node).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ModelQuery {
    /// The model's name (`[host/][namespace/]model[:tag]`); in the query because it may hold `/`.
    pub model: String,
}

/// Deletes a model from a node. Audited (`engine.delete_model`).
#[utoipa::path(delete, path = "/api/admin/engines/{node}/models", tag = "engines", security(("bearer" = [])),
    params(("node" = String, Path), ModelQuery),
    responses((status = 204, description = "Deleted"),
    (status = 400, description = "`invalid_model_name`, `invalid_query`", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`node_not_found`, `model_not_found`", body = Problem, content_type = "application/problem+json"),
    (status = 502, description = "`engine_error`: the node failed or did not answer", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "`forbidden`: not an Admin", body = Problem, content_type = "application/problem+json"), kit::api::CredentialErrors))]
async fn delete_engine_model(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(node): Path<String>,
    Query(q): Query<ModelQuery>,
) -> Result<StatusCode, InferenceError> {
    s.service.engines.delete(&admin, &node, &q.model).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullModel {
    /// `[host/][namespace/]model[:tag]`.
    pub model: String,
    /// Allow plain HTTP and unverified TLS to the registry.
    #[serde(default)]
    pub insecure: bool,
}

/// Pulls a model onto a node, its progress as server-sent events: `progress` (Ollama's
/// `status`, `digest`, `total`, `completed`), then `done` (`node`, `model`, `status`) or
/// `error` (a problem: `pull_failed`, `pull_stalled`). The pull goes on if the client leaves;
/// asking again for the same model on the same node follows the running pull. Audited
/// (`engine.pull`) when the node accepts it.
#[utoipa::path(post, path = "/api/admin/engines/{node}/pull", tag = "engines", security(("bearer" = [])),
    params(("node" = String, Path)), request_body = PullModel,
    responses((status = 200, description = "`text/event-stream`: `progress`… then `done` or `error`"),
    (status = 400, description = "`invalid_model_name`", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`node_not_found`; `model_not_found`: the registry does not have the model (an OllamaNet engine says so before it starts)", body = Problem, content_type = "application/problem+json"),
    (status = 502, description = "`engine_error`: the node failed or did not answer; the node's registry failed it (OllamaNet engines): `registry_unavailable` (unreachable, DNS, TLS, a 5xx), `registry_error` (an unusable answer), `registry_redirect_refused`", body = Problem, content_type = "application/problem+json"),
    (status = 504, description = "`registry_timeout`: the node's registry did not answer in time", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "`forbidden`: not an Admin", body = Problem, content_type = "application/problem+json"), kit::api::CredentialErrors, kit::api::BodyErrors))]
async fn pull_engine_model(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(node): Path<String>,
    kit::http::Json(req): kit::http::Json<PullModel>,
) -> Result<Response, InferenceError> {
    let pull = s.service.engines.pull(&admin, &node, &req.model, req.insecure).await?;
    let events = pull.follow().map(|e| {
        let event = match e {
            PullEvent::Progress(p) => Event::default().event("progress").json_data(p),
            PullEvent::Done(d) => Event::default().event("done").json_data(d),
            PullEvent::Failed(p) => Event::default().event("error").json_data(p),
        };
        Ok::<_, std::convert::Infallible>(event.unwrap_or_else(|_| Event::default().event("error").data("{}")))
    });
    let mut res = Sse::new(events).keep_alive(KeepAlive::default()).into_response();
    // Proxies must pass progress on as it comes, not when the pull is over.
    res.headers_mut().insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    Ok(res)
}
