//! What can go wrong on a page, and the page each is.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The form came without the session's CSRF token (a forged cross-site post, or a stale page).
    #[error("this form has expired; reload the page and try again")]
    Csrf,
    /// A request to change something sent from another origin (a form on another site).
    #[error("this form was sent from another site; open the page on this site and send it from there")]
    CrossOrigin,
    #[error("{0} is not reachable right now; try again shortly")]
    Unavailable(&'static str),
    /// The session could not be renewed now, for a reason that does not end it (status, reason).
    #[error("{1}")]
    SessionRefused(u16, String),
    #[error("this page is for administrators")]
    AdminsOnly,
    #[error("there is nothing here, or it is not yours")]
    NotFound,
    #[error("the form was incomplete; reload the page and try again")]
    BadForm,
    /// A service refused what the page asked, with its reason.
    #[error("{0}")]
    Refused(String),
    #[error("something went wrong on our side")]
    Internal(String),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            WebError::Csrf => (StatusCode::FORBIDDEN, "Form expired"),
            WebError::CrossOrigin => (StatusCode::FORBIDDEN, "Sent from another site"),
            WebError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
            WebError::SessionRefused(status, _) => {
                (StatusCode::from_u16(*status).unwrap_or(StatusCode::FORBIDDEN), "Not now")
            }
            WebError::AdminsOnly => (StatusCode::FORBIDDEN, "Administrators only"),
            WebError::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            WebError::BadForm => (StatusCode::BAD_REQUEST, "Incomplete form"),
            WebError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Not done"),
            WebError::Internal(e) => {
                tracing::error!(error = %e, "page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Error")
            }
        };
        (status, render(&ErrorPage { title, message: self.to_string() })).into_response()
    }
}

/// A page as HTML; a template that fails to render (a bug) is a plain 500.
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A page with the signed-in user's data: never kept by a shared cache.
pub fn render_private(page: &impl Template) -> Response {
    let mut response = render(page);
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}
