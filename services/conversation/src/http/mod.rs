//! The HTTP face of the service: routes, documented once for both axum and OpenAPI. Handlers
//! only translate; the service decides.

mod annotations;
mod conversations;
mod documents;
mod folders;
mod messages;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;
use kit::api::BearerAuth;
use kit::authn::{Authenticator, CurrentUser};
use kit::bus::Bus;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::DocumentsConfig;
use crate::inference::Caller;
use crate::service::ConversationService;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<ConversationService>,
    pub authn: Arc<Authenticator>,
    pub bus: Bus,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.authn.clone()
    }
}

/// The authenticated caller, with what it takes to call the inference service on their behalf.
pub struct Me(pub Caller);

impl Me {
    fn id(&self) -> uuid::Uuid {
        self.0.identity.user_id
    }
}

impl FromRequestParts<AppState> for Me {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let CurrentUser(identity) = CurrentUser::from_request_parts(parts, state).await?;
        let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
        Ok(Me(Caller { identity, authorization }))
    }
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerAuth),
    tags(
        (name = "folders", description = "Folders for conversations"),
        (name = "conversations", description = "Conversations: settings, search, export and import"),
        (name = "messages", description = "Messages, replies as server-sent events, branches"),
        (name = "notes", description = "Notes on replies"),
        (name = "feedback", description = "Ratings of replies"),
        (name = "documents", description = "Documents attached to conversations, and retrieval from them"),
    )
)]
struct ApiDoc;

/// Every route of the service with its OpenAPI description.
pub fn routes(config: &DocumentsConfig) -> OpenApiRouter<AppState> {
    // Uploads may be as large as the configured cap (plus the multipart framing), and no larger.
    let uploads = OpenApiRouter::new()
        .routes(routes!(documents::list, documents::upload))
        .layer(DefaultBodyLimit::max(documents::upload_body_limit(config)));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(folders::list, folders::create))
        .routes(routes!(folders::get, folders::update, folders::delete))
        .routes(routes!(conversations::list, conversations::create))
        .routes(routes!(conversations::import))
        .routes(routes!(conversations::get, conversations::update, conversations::delete))
        .routes(routes!(conversations::export))
        .routes(routes!(messages::list, messages::send))
        .routes(routes!(messages::regenerate))
        .routes(routes!(messages::stop))
        .routes(routes!(messages::resume))
        .routes(routes!(annotations::list_notes, annotations::create_note))
        .routes(routes!(annotations::get_note, annotations::update_note, annotations::delete_note))
        .routes(routes!(annotations::list_feedback, annotations::create_feedback))
        .routes(routes!(annotations::get_feedback, annotations::update_feedback, annotations::delete_feedback))
        .merge(uploads)
        .routes(routes!(documents::search))
        .routes(routes!(documents::get, documents::delete))
        .routes(routes!(documents::process))
        .routes(routes!(documents::download))
}
