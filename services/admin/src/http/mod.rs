//! The HTTP face of the service, documented once for axum and OpenAPI. Every route is the
//! Admin role's: the gateway checks it, and so does [`AdminCaller`] here.

mod audit;
mod models;
mod tags;
mod usage;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;
use kit::api::BearerAuth;
use kit::authn::{Admin, Authenticator};
use kit::upstream::Upstream;
use ollamanet_catalog::Catalog;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::enrich::OnBehalf;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<Catalog>,
    pub store: Store,
    pub authn: Arc<Authenticator>,
    pub inference: Upstream,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.authn.clone()
    }
}

/// An admin, with what it takes to ask the inference service on their behalf.
pub struct AdminCaller(pub OnBehalf);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Admin(identity) = Admin::from_request_parts(parts, state).await?;
        let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
        Ok(AdminCaller(OnBehalf { identity, authorization }))
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(models::get, models::update, models::delete),
    modifiers(&BearerAuth),
    tags(
        (name = "catalog", description = "The model catalog: metadata, access rules, enrichment from engines"),
        (name = "tags", description = "Tags on catalog models"),
        (name = "audit", description = "Every admin action, whichever service did it"),
        (name = "usage", description = "Requests and tokens per user, model and day"),
    )
)]
struct ApiDoc;

/// Every route of the service with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(models::list, models::create))
        .routes(routes!(models::restore))
        .routes(routes!(models::enrich))
        // Described by `ApiDoc`: a name with a namespace (`hf.co/org/model:tag`) spans several
        // segments, which only a catch-all matches.
        .route(
            "/api/admin/models/{*name}",
            axum::routing::get(models::get).patch(models::update).delete(models::delete),
        )
        .routes(routes!(tags::list, tags::create))
        .routes(routes!(tags::rename, tags::delete))
        .routes(routes!(tags::assign, tags::unassign))
        .routes(routes!(audit::list))
        .routes(routes!(usage::list))
}
