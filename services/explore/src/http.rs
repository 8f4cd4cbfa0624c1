//! `/api/explore/*`: anonymous reads; a valid credential adds the models the caller's roles allow.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kit::Problem;
use kit::api::Page;
use kit::authn::{Authenticator, Identity};
use kit::http::{Path, Query};
use ollamanet_catalog::{Catalog, CatalogError, ListQuery, Model, Search, TagCount, Visibility};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::cache::{Answer, Answers};
use crate::error::ExploreError;

#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<Catalog>,
    pub answers: Arc<Answers>,
    /// The models some engine has (`None` until the inference service has said).
    pub installed: Arc<arc_swap::ArcSwapOption<Vec<String>>>,
    pub authn: Arc<Authenticator>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.authn.clone()
    }
}

/// What the caller may see: the identity the gateway attached, or one from a valid bearer
/// credential; anyone else (a bad credential included, as at the gateway) sees public models.
pub struct Viewer(Visibility);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let identity = match parts.extensions.get::<Identity>() {
            Some(identity) => Some(identity.clone()),
            None => state.authn.authenticate_headers(&parts.headers).await.ok().flatten(),
        };
        Ok(Viewer(Visibility::of(identity.as_ref().map_or(&[][..], |i| &i.roles))))
    }
}

impl Viewer {
    /// Part of a cache key: who sees the same answers.
    fn key(&self) -> String {
        match &self.0 {
            Visibility::All { .. } => "admin".to_owned(),
            Visibility::Roles(roles) => roles.join(","),
        }
    }
}

#[derive(OpenApi)]
#[openapi(paths(model), tags((name = "explore", description = "The model catalog, for everyone")))]
struct ApiDoc;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(models))
        // Described by `ApiDoc`: a name with a namespace (`hf.co/org/model:tag`) spans several
        // segments, which only a catch-all matches.
        .route("/api/explore/models/{*name}", axum::routing::get(model))
        .routes(routes!(tags))
        .routes(routes!(tag_models))
}

/// A cached answer as a response: 304 when the client has it already.
fn respond(answer: Answer, headers: &HeaderMap) -> Response {
    let etag = HeaderValue::from_str(&answer.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == answer.etag || tag.trim() == "*");
    // Revalidated every time (the catalog may change at any moment), and per credential.
    let common = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache")),
        (header::VARY, HeaderValue::from_static("authorization")),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], answer.body).into_response()
}

fn json<T: serde::Serialize>(value: &T) -> Result<Bytes, ExploreError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| ExploreError::Internal(e.to_string()))
}

fn list_query(q: &ListQuery) -> Result<ollamanet_catalog::Search, ExploreError> {
    if q.deleted.is_some() {
        return Err(ExploreError::BadRequest("invalid_query", "deleted models are not shown here".into()));
    }
    Ok(q.search()?)
}

impl AppState {
    /// A page of models for `search`, each marked installed or not; with `installed_only`, only
    /// installed ones (none while the inference service has not reported).
    async fn page(&self, viewer: &Viewer, mut search: Search, installed_only: bool) -> Result<Bytes, ExploreError> {
        let installed = self.installed.load_full();
        if installed_only {
            search.installed = Some(installed.as_deref().cloned().unwrap_or_default());
        }
        let (mut items, next_cursor) = self.catalog.models(&viewer.0, &search).await?;
        for m in &mut items {
            mark_installed(m, installed.as_deref());
        }
        json(&Page { items, next_cursor })
    }
}

fn mark_installed(model: &mut Model, installed: Option<&Vec<String>>) {
    model.installed = installed.map(|names| names.binary_search(&model.name).is_ok());
}

/// Models: word search over name, description and tags; filters; three orders; keyset pages.
#[utoipa::path(get, path = "/api/explore/models", tag = "explore", params(ListQuery), responses(
    (status = 200, description = "A page of models (without template, modelfile and license).", body = Page<Model>,
        headers(("ETag" = String))),
    (status = 304, description = "The client's copy (`If-None-Match`) is current."),
    (status = 400, description = "`invalid_cursor`, `invalid_query`.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`invalid_count`).", body = Problem, content_type = "application/problem+json"),
))]
pub async fn models(
    State(s): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ExploreError> {
    let search = list_query(&q)?;
    let installed_only = q.installed.unwrap_or(false);
    let key = format!("models:{}:{installed_only}:{search:?}", viewer.key());
    let answer = s.answers.get_or_compute(&key, async || s.page(&viewer, search, installed_only).await).await?;
    Ok(respond(answer, &headers))
}

/// One model with every field and its tags.
#[utoipa::path(get, path = "/api/explore/models/{name}", tag = "explore",
    params(("name" = String, Path, description = "The model's name; may hold `/`.")), responses(
    (status = 200, description = "The model.", body = Model, headers(("ETag" = String))),
    (status = 304, description = "Unchanged."),
    (status = 404, description = "`not_found`: no such model, deleted, or not for the caller.", body = Problem,
        content_type = "application/problem+json"),
))]
pub async fn model(
    State(s): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ExploreError> {
    let name = ollamanet_catalog::normalize_name(&name).map_err(|_| CatalogError::NotFound("model"))?;
    let key = format!("model:{}:{name}", viewer.key());
    let answer = s
        .answers
        .get_or_compute(&key, async || {
            let mut model = s.catalog.model(&name).await?;
            let visible = model.deleted_at.is_none()
                && match &viewer.0 {
                    Visibility::All { .. } => true,
                    Visibility::Roles(roles) => model.access.allows(roles),
                };
            if !visible {
                return Err(CatalogError::NotFound("model").into());
            }
            mark_installed(&mut model, s.installed.load().as_deref());
            json(&model)
        })
        .await?;
    Ok(respond(answer, &headers))
}

/// Every tag, with how many models the caller can see carry it.
#[utoipa::path(get, path = "/api/explore/tags", tag = "explore", responses(
    (status = 200, description = "Tags by name.", body = Vec<TagCount>, headers(("ETag" = String))),
    (status = 304, description = "Unchanged."),
))]
pub async fn tags(State(s): State<AppState>, viewer: Viewer, headers: HeaderMap) -> Result<Response, ExploreError> {
    let key = format!("tags:{}", viewer.key());
    let answer = s.answers.get_or_compute(&key, async || json(&s.catalog.tags(&viewer.0).await?)).await?;
    Ok(respond(answer, &headers))
}

/// The models carrying a tag, with the same search, filters and orders as the models list.
#[utoipa::path(get, path = "/api/explore/tags/{id}/models", tag = "explore", params(("id" = Uuid, Path), ListQuery),
    responses(
    (status = 200, description = "A page of models.", body = Page<Model>, headers(("ETag" = String))),
    (status = 304, description = "Unchanged."),
    (status = 404, description = "`not_found`: no such tag.", body = Problem, content_type = "application/problem+json"),
))]
pub async fn tag_models(
    State(s): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ExploreError> {
    let mut search = list_query(&q)?;
    search.tag_id = Some(id);
    let installed_only = q.installed.unwrap_or(false);
    let key = format!("tag-models:{}:{installed_only}:{search:?}", viewer.key());
    let answer = s
        .answers
        .get_or_compute(&key, async || {
            s.catalog.tag(id).await?;
            s.page(&viewer, search, installed_only).await
        })
        .await?;
    Ok(respond(answer, &headers))
}
