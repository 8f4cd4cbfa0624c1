//! The web application: server-rendered pages (askama) for the platform's users, with a session
//! in HttpOnly cookies and CSRF-protected forms (see `session.rs`). It calls the other services
//! as the signed-in user, like any client. See `docs/web.md`.

mod admin;
mod auth;
mod chat;
mod config;
mod error;
mod explore;
mod extract;
mod markdown;
mod pages;
mod profile;
mod services;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{get, post};
use kit::authn::Authenticator;
use kit::http::Readiness;
use kit::service::{ServiceContext, ServiceHandle};
use kit::upstream::Upstream;

pub use config::WebConfig;

pub const NAME: &str = "web";

/// The largest upload form the pages take: the conversation service's default document limit
/// (20 MiB) and room for the form's other fields.
const UPLOAD_LIMIT: usize = 21 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    authn: Arc<Authenticator>,
    auth: auth::AuthClient,
    /// The auth service's API as the signed-in user calls it: their profile and API keys, and
    /// the administration of users and roles.
    accounts: services::Service,
    admin: services::Service,
    conversation: services::Service,
    explore: services::Service,
    inference: services::Service,
    secure_cookies: bool,
}

pub struct Web {
    pub handle: ServiceHandle,
}

/// The services the pages call besides auth, when the deployment has them.
pub struct Upstreams {
    pub auth: Upstream,
    pub admin: Option<Upstream>,
    pub conversation: Option<Upstream>,
    pub explore: Option<Upstream>,
    pub inference: Option<Upstream>,
}

/// Starts the service.
pub fn start(ctx: &ServiceContext, config: &WebConfig, upstreams: Upstreams) -> Web {
    let state = AppState {
        authn: ctx.authn.clone(),
        accounts: services::Service { upstream: Some(upstreams.auth.clone()), what: "the account service" },
        auth: auth::AuthClient(upstreams.auth),
        admin: services::Service { upstream: upstreams.admin, what: "the administration service" },
        conversation: services::Service { upstream: upstreams.conversation, what: "the conversation service" },
        explore: services::Service { upstream: upstreams.explore, what: "the model catalog" },
        inference: services::Service { upstream: upstreams.inference, what: "the model service" },
        secure_cookies: config.secure_cookies,
    };
    let router = Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/register", get(pages::register_page).post(pages::register))
        .route("/logout", post(pages::logout))
        .route("/forgot", get(pages::forgot_page).post(pages::forgot))
        .route(kit::api::RESET_PASSWORD_PAGE, get(pages::reset_page).post(pages::reset))
        .route("/chat", get(chat::list).post(chat::create))
        .route("/chat/folders", post(chat::create_folder))
        .route("/chat/folders/{id}", post(chat::update_folder))
        .route("/chat/folders/{id}/delete", post(chat::delete_folder))
        .route("/chat/{id}", get(chat::show).post(chat::update))
        .route("/chat/{id}/delete", post(chat::delete))
        .route("/chat/{id}/export", get(chat::export))
        .route(
            "/chat/{id}/documents",
            get(chat::document_status).post(chat::upload).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
        .route("/chat/{id}/documents/{document}/delete", post(chat::delete_document))
        .route("/chat/{id}/messages", post(chat::send))
        .route("/chat/{id}/messages/{message}/regenerate", post(chat::regenerate))
        .route("/chat/{id}/messages/{message}/feedback", post(chat::feedback))
        .route("/chat/{id}/messages/{message}/notes", post(chat::note))
        .route("/chat/{id}/notes/{note}/delete", post(chat::delete_note))
        .route("/chat/{id}/stop", post(chat::stop))
        .route("/chat/{id}/branch", post(chat::branch))
        // The administration pages (admins only).
        .route("/admin", get(admin::overview))
        .route("/admin/users", get(admin::users))
        .route("/admin/users/{id}", get(admin::user))
        .route("/admin/users/{id}/{action}", post(admin::user_action))
        .route("/admin/roles", get(admin::roles).post(admin::create_role))
        .route("/admin/roles/{name}/delete", post(admin::delete_role))
        .route("/admin/models", get(admin::catalog).post(admin::create_model))
        .route("/admin/models/{*name}", get(admin::model).post(admin::model_action))
        .route("/admin/tags", get(admin::tags).post(admin::create_tag))
        .route("/admin/tags/{id}/{action}", post(admin::tag_action))
        .route("/admin/engines", get(admin::engines))
        .route("/admin/engines/{node}", get(admin::engine))
        .route("/admin/engines/{node}/pull", post(admin::pull))
        .route("/admin/engines/{node}/delete", post(admin::delete_model))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/usage", get(admin::usage))
        .route("/static/admin.js", get(admin::script))
        // The profile (signed-in users) and the model catalog (anyone).
        .route("/profile", get(profile::show))
        .route("/profile/account", post(profile::update))
        .route("/profile/password", post(profile::change_password))
        .route("/profile/keys", post(profile::create_key))
        .route("/profile/keys/{id}/revoke", post(profile::revoke_key))
        .route("/explore", get(explore::catalog))
        .route("/explore/{*name}", get(explore::model))
        .route("/static/app.css", get(pages::style))
        .route("/static/chat.js", get(chat::script))
        .route("/static/events.js", get(pages::events_script))
        .with_state(state)
        .layer(axum::middleware::from_fn(session::refuse_cross_origin))
        .layer(axum::middleware::map_response(security_headers));
    let router = kit::http::service_layers(router, NAME);
    // Pages are not an API: the service adds nothing to the OpenAPI document.
    let openapi = utoipa::openapi::OpenApiBuilder::new().build();
    Web { handle: ServiceHandle { name: NAME, router, readiness: Readiness::default(), openapi } }
}

/// What every page tells the browser: run only this site's scripts and styles, load images only
/// from this site (a reply cannot make the browser send anything elsewhere), never be framed, do
/// not guess content types, keep the address to this site.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
               connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    response
}
