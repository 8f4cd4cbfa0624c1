//! The HTTP face of the service: routes, documented once for both axum and OpenAPI.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use kit::Problem;
use kit::api::{BearerAuth, BodyErrors, CredentialErrors, Page, PageQuery};
use kit::authn::{Authenticator, CurrentUser, Introspection};
use kit::http::{Json, OptionalJson, Path, Query};
use kit::tokens::Jwks;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::AuthError;
use crate::models::*;
use crate::service::AuthService;

mod admin;

pub const REFRESH_COOKIE: &str = "ollamanet_refresh";
/// The refresh cookie goes only to the auth endpoints, never to the rest of the API.
const REFRESH_COOKIE_PATH: &str = "/api/auth";
/// Bodies of the endpoints that take an optional body are small; refuse anything bigger unread.

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<AuthService>,
    pub authn: Arc<Authenticator>,
    pub secure_cookie: bool,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.authn.clone()
    }
}

fn refresh_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{REFRESH_COOKIE}={value}; HttpOnly; SameSite=Strict; Path={REFRESH_COOKIE_PATH}; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&cookie).expect("refresh tokens are cookie-safe base64url")
}

/// The refresh token from the body, or else from the cookie.
fn refresh_token<'a>(body: Option<&'a str>, headers: &'a HeaderMap) -> Option<&'a str> {
    body.or_else(|| kit::http::cookie(headers, REFRESH_COOKIE))
}

/// Token responses set the refresh cookie and must never be cached (RFC 6749 §5.1).
fn token_reply(status: StatusCode, tokens: TokenResponse, secure: bool) -> Response {
    let cookie = refresh_cookie(&tokens.refresh_token, tokens.refresh_expires_in, secure);
    let no_store = HeaderValue::from_static("no-store");
    (status, [(header::SET_COOKIE, cookie), (header::CACHE_CONTROL, no_store)], Json(tokens)).into_response()
}

// ---- accounts ----

/// Create an account and log in.
#[utoipa::path(post, path = "/api/auth/register", tag = "account", request_body = RegisterRequest, responses(
    (status = 201, description = "Registered and logged in; also sets the `ollamanet_refresh` cookie.", body = TokenResponse),
    (status = 409, description = "`username_taken`, `email_taken`.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` with field codes `invalid_length`, `invalid_format`, \
        `invalid_email`, `password_too_short`, `password_too_long`, `password_too_common`, \
        `password_contains_identity`; or `invalid_body` (`unknown_field`, `required`, `invalid_type`).",
        body = Problem, content_type = "application/problem+json"),
    BodyErrors,
))]
async fn register(State(s): State<AppState>, Json(req): Json<RegisterRequest>) -> Result<Response, AuthError> {
    Ok(token_reply(StatusCode::CREATED, s.service.register(req).await?, s.secure_cookie))
}

/// Log in with e-mail address or username.
#[utoipa::path(post, path = "/api/auth/login", tag = "account", request_body = LoginRequest, responses(
    (status = 200, description = "Logged in; also sets the `ollamanet_refresh` cookie.", body = TokenResponse),
    (status = 401, description = "`invalid_credentials`: unknown user or wrong password.", body = Problem,
        content_type = "application/problem+json"),
    (status = 403, description = "`account_locked` (by an admin, with `Retry-After`), `account_inactive`, or \
        `password_reset_required` (too many failures in a row: the owner was mailed a reset link).",
        body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`invalid_body`.", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "`login_throttled` (with `Retry-After`): after repeated failures each attempt \
        waits, whatever the password.", body = Problem, content_type = "application/problem+json"),
    BodyErrors,
))]
async fn login(State(s): State<AppState>, Json(req): Json<LoginRequest>) -> Result<Response, AuthError> {
    Ok(token_reply(StatusCode::OK, s.service.login(req).await?, s.secure_cookie))
}

/// Get the caller's account.
#[utoipa::path(get, path = "/api/auth/me", tag = "account", security(("bearer" = [])), responses(
    (status = 200, description = "The caller's account.", body = UserView),
    CredentialErrors,
))]
async fn get_me(State(s): State<AppState>, CurrentUser(me): CurrentUser) -> Result<Json<UserView>, AuthError> {
    Ok(Json(s.service.me(&me).await?))
}

/// Change the caller's username or e-mail address. Roles cannot be set here.
#[utoipa::path(patch, path = "/api/auth/me", tag = "account", security(("bearer" = [])),
    request_body = UpdateProfileRequest, responses(
    (status = 200, description = "The account after the change.", body = UserView),
    (status = 403, description = "`invalid_current_password`, `account_locked`, `password_reset_required`.",
        body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "`login_throttled` (with `Retry-After`).", body = Problem,
        content_type = "application/problem+json"),
    (status = 409, description = "`username_taken`, `email_taken`.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`invalid_length`, `invalid_format`, `invalid_email`, \
        `required` for `current_password`) or `invalid_body` (`unknown_field` for e.g. `roles`).",
        body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
async fn update_me(
    State(s): State<AppState>,
    CurrentUser(me): CurrentUser,
    Json(req): Json<UpdateProfileRequest>,
) -> Result<Json<UserView>, AuthError> {
    Ok(Json(s.service.update_profile(&me, req).await?))
}

// ---- sessions ----

/// Exchange a refresh token (body, or the cookie) for a new access token and refresh token.
///
/// Each refresh token works once. Presenting a used one again within `refresh_grace` (several
/// requests of one client refreshing at once) answers the token it was exchanged for; later, it
/// revokes every token of its login session, including the newest. Failed sign-ins never stop a
/// refresh; an admin's lock or deactivation does.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "session", request_body(content = Option<RefreshRequest>,
    description = "Optional: without a body the `ollamanet_refresh` cookie is used."), responses(
    (status = 200, description = "New tokens; also sets the cookie.", body = TokenResponse),
    (status = 401, description = "`invalid_refresh_token` (unknown or revoked), `refresh_token_expired`, \
        `refresh_token_reused` (the session is now revoked).", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "`account_locked`, `account_inactive`.", body = Problem,
        content_type = "application/problem+json"),
    BodyErrors,
))]
async fn refresh(
    State(s): State<AppState>,
    headers: HeaderMap,
    OptionalJson(req): OptionalJson<RefreshRequest>,
) -> Result<Response, AuthError> {
    let body_token = req.and_then(|r| r.refresh_token);
    let tokens = s.service.refresh(refresh_token(body_token.as_deref(), &headers)).await?;
    Ok(token_reply(StatusCode::OK, tokens, s.secure_cookie))
}

/// End a session (the refresh token's), or with `all` every session of the caller.
#[utoipa::path(post, path = "/api/auth/logout", tag = "session", request_body(content = Option<LogoutRequest>,
    description = "Optional: without a body the `ollamanet_refresh` cookie names the session."), responses(
    (status = 204, description = "Logged out; the cookie is cleared."),
    (status = 401, description = "`all` without a valid bearer access token.", body = Problem,
        content_type = "application/problem+json"),
    (status = 403, description = "`access_token_required`: `all` with an API key.", body = Problem,
        content_type = "application/problem+json"),
    BodyErrors,
))]
async fn logout(
    State(s): State<AppState>,
    mut parts: Parts,
    OptionalJson(req): OptionalJson<LogoutRequest>,
) -> Result<Response, Response> {
    let req = req.unwrap_or_default();
    if req.all {
        let CurrentUser(me) = CurrentUser::from_request_parts(&mut parts, &s).await?;
        s.service.logout_all(&me).await.map_err(IntoResponse::into_response)?;
    }
    let token = refresh_token(req.refresh_token.as_deref(), &parts.headers);
    s.service.logout(token).await.map_err(IntoResponse::into_response)?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, refresh_cookie("", 0, s.secure_cookie))]).into_response())
}

// ---- passwords ----

/// Change the caller's password. Every other session and access token dies; the answer carries
/// fresh tokens for this client.
#[utoipa::path(post, path = "/api/auth/password/change", tag = "password", security(("bearer" = [])),
    request_body = ChangePasswordRequest, responses(
    (status = 200, description = "New tokens; also sets the cookie.", body = TokenResponse),
    (status = 403, description = "`invalid_current_password`, `account_locked`, `password_reset_required`, \
        `access_token_required`.", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "`login_throttled` (with `Retry-After`).", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (password codes as for registration, on `new_password`) \
        or `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
async fn change_password(
    State(s): State<AppState>,
    CurrentUser(me): CurrentUser,
    Json(req): Json<ChangePasswordRequest>,
) -> Result<Response, AuthError> {
    Ok(token_reply(StatusCode::OK, s.service.change_password(&me, req).await?, s.secure_cookie))
}

/// Ask for a password-reset link by e-mail. The answer is the same whether or not the address
/// belongs to an account.
#[utoipa::path(post, path = "/api/auth/password/forgot", tag = "password", request_body = ForgotPasswordRequest,
    responses(
    (status = 202, description = "Always the same answer.", body = AcceptedResponse),
    (status = 422, description = "`validation_failed` (`invalid_email`) or `invalid_body`.", body = Problem,
        content_type = "application/problem+json"),
    BodyErrors,
))]
async fn forgot_password(
    State(s): State<AppState>,
    Json(req): Json<ForgotPasswordRequest>,
) -> Result<(StatusCode, Json<AcceptedResponse>), AuthError> {
    s.service.forgot_password(req).await?;
    Ok((StatusCode::ACCEPTED, Json(AcceptedResponse { status: "accepted".into() })))
}

/// Set a new password with the token from a reset link. Ends every session and lifts a lockout.
#[utoipa::path(post, path = "/api/auth/password/reset", tag = "password", request_body = ResetPasswordRequest,
    responses(
    (status = 204, description = "The password is changed; log in with it."),
    (status = 400, description = "`invalid_reset_token`: unknown, expired or already used; or `malformed_json`.",
        body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (password codes on `new_password`) or `invalid_body`.",
        body = Problem, content_type = "application/problem+json"),
    BodyErrors,
))]
async fn reset_password(
    State(s): State<AppState>,
    Json(req): Json<ResetPasswordRequest>,
) -> Result<StatusCode, AuthError> {
    s.service.reset_password(req).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- API keys ----

/// List the caller's API keys (never the keys themselves).
#[utoipa::path(get, path = "/api/auth/keys", tag = "api keys", security(("bearer" = [])), params(PageQuery),
    responses(
    (status = 200, description = "A page of the caller's keys, oldest first.", body = Page<ApiKeyView>),
    (status = 400, description = "`invalid_query`.", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "`access_token_required`: keys are managed with an access token.",
        body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`invalid_cursor`).", body = Problem,
        content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn list_keys(
    State(s): State<AppState>,
    CurrentUser(me): CurrentUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<ApiKeyView>>, AuthError> {
    Ok(Json(s.service.api_keys(&me, &page).await?))
}

/// Create a personal API key. The answer shows the key once; only its hash is kept.
#[utoipa::path(post, path = "/api/auth/keys", tag = "api keys", security(("bearer" = [])),
    request_body = CreateApiKeyRequest, responses(
    (status = 201, description = "Created; `key` is shown this once.", body = CreatedApiKey),
    (status = 403, description = "`access_token_required`: keys are managed with an access token.",
        body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`invalid_length` on `name`, `out_of_range` on \
        `expires_in_days`) or `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
async fn create_key(
    State(s): State<AppState>,
    CurrentUser(me): CurrentUser,
    Json(req): Json<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>), AuthError> {
    Ok((StatusCode::CREATED, Json(s.service.create_api_key(&me, req).await?)))
}

/// Revoke one of the caller's API keys; it stops working at once.
#[utoipa::path(delete, path = "/api/auth/keys/{id}", tag = "api keys", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The key's id")), responses(
    (status = 204, description = "Revoked."),
    (status = 403, description = "`access_token_required`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`: the caller has no such key.", body = Problem,
        content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn delete_key(
    State(s): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AuthError> {
    s.service.revoke_api_key(&me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- tokens ----

/// The public keys that verify access tokens (RFC 7517; Ed25519 keys per RFC 8037).
#[utoipa::path(get, path = "/api/auth/.well-known/jwks.json", tag = "tokens", responses((status = 200, description = "Every signing key.", body = Jwks)))]
async fn jwks(State(s): State<AppState>) -> Json<Jwks> {
    Json(s.service.jwks())
}

/// What an access token or API key stands for now (internal; services call it through
/// `kit::authn::RemoteIdentitySource`). The token version is not checked: the caller compares.
#[utoipa::path(post, path = "/api/auth/introspect", tag = "tokens", request_body = IntrospectRequest, responses(
    (status = 200, description = "The credential is genuine; `active` is false for inactive, deleted or admin-locked \
        accounts.", body = Introspection),
    (status = 401, description = "`invalid_token`: forged, expired, unknown or revoked.", body = Problem,
        content_type = "application/problem+json"),
    (status = 503, description = "`database_unavailable`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors,
))]
async fn introspect(
    State(s): State<AppState>,
    Json(req): Json<IntrospectRequest>,
) -> Result<Json<Introspection>, Response> {
    match s.service.introspect(&req.token).await {
        Ok(Some(intro)) => Ok(Json(intro)),
        Ok(None) => Err(Problem::unauthorized("invalid_token", "the token is not valid").into_response()),
        Err(e) => Err(e.into_response()),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "OllamaNet auth", description = "Accounts, sessions, access tokens and API keys."),
    components(schemas(Problem, kit::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "account", description = "Registration, login and profile"),
        (name = "session", description = "Refresh tokens and logout"),
        (name = "password", description = "Password change and reset"),
        (name = "admin users", description = "User administration (Admin)"),
        (name = "admin roles", description = "Role administration (Admin)"),
        (name = "api keys", description = "Personal API keys"),
        (name = "tokens", description = "Public keys and introspection"),
    )
)]
struct ApiDoc;

/// Every route of the service with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(get_me, update_me))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(delete_key))
        .routes(routes!(jwks))
        .routes(routes!(introspect));
    admin::routes(router)
}
