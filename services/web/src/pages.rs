//! The pages: signing in and out, registering, resetting a password, and the signed-in home.

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Outcome, Refusal};
use crate::error::render;
use crate::extract::{Form, Query};
use crate::session::Visitor;

const STYLE: &str = include_str!("../static/app.css");

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    login: &'a str,
    error: Option<String>,
    notice: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    login: String,
    password: String,
}

#[derive(Deserialize)]
pub struct Notice {
    #[serde(default)]
    reset: bool,
}

pub async fn login_page(visitor: Visitor, Query(q): Query<Notice>) -> Response {
    if visitor.identity.is_some() {
        return visitor.respond(Redirect::to("/"));
    }
    let notice = q.reset.then_some("Your password is changed. Sign in with the new one.");
    let page = render(&LoginPage { csrf: &visitor.csrf, login: "", error: None, notice });
    visitor.respond(page)
}

pub async fn login(State(s): State<AppState>, mut visitor: Visitor, Form(form): Form<LoginForm>) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    match s.auth.login(form.login.trim(), &form.password).await {
        Ok(Outcome::Done(tokens)) => {
            visitor.sign_in(&tokens);
            visitor.respond(Redirect::to("/"))
        }
        Ok(Outcome::Refused(refusal)) => {
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::UNAUTHORIZED);
            let error = Some(login_refusal(&refusal));
            let page = render(&LoginPage { csrf: &visitor.csrf, login: form.login.trim(), error, notice: None });
            visitor.respond((status, page))
        }
        Err(e) => visitor.respond(e),
    }
}

fn login_refusal(r: &Refusal) -> String {
    match r.code.as_str() {
        "invalid_credentials" => "That name or password is not right.".to_owned(),
        "account_locked" => "This account is locked. Try again later, or ask an administrator.".to_owned(),
        "login_throttled" => "Too many wrong passwords were tried for this account: wait a few minutes before the \
                              next attempt. Where you are signed in already, you stay signed in."
            .to_owned(),
        "password_reset_required" => "Too many wrong passwords were tried for this account, so it needs a new \
                                      password: its owner was mailed a link to choose one (or ask for a new link \
                                      below). Where you are signed in already, you stay signed in."
            .to_owned(),
        _ if !r.message.is_empty() => r.message.clone(),
        _ => "Signing in did not work.".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    csrf: &'a str,
    username: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    username_error: Option<&'a str>,
    email_error: Option<&'a str>,
    password_error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct RegisterForm {
    csrf: String,
    username: String,
    email: String,
    password: String,
}

pub async fn register_page(visitor: Visitor) -> Response {
    if visitor.identity.is_some() {
        return visitor.respond(Redirect::to("/"));
    }
    let page = RegisterPage {
        csrf: &visitor.csrf,
        username: "",
        email: "",
        error: None,
        username_error: None,
        email_error: None,
        password_error: None,
    };
    let page = render(&page);
    visitor.respond(page)
}

pub async fn register(State(s): State<AppState>, mut visitor: Visitor, Form(form): Form<RegisterForm>) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    let (username, email) = (form.username.trim(), form.email.trim());
    match s.auth.register(username, email, &form.password).await {
        Ok(Outcome::Done(tokens)) => {
            visitor.sign_in(&tokens);
            visitor.respond(Redirect::to("/"))
        }
        Ok(Outcome::Refused(refusal)) => {
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            let page = RegisterPage {
                csrf: &visitor.csrf,
                username,
                email,
                error: refusal.fields.is_empty().then_some(refusal.message.as_str()),
                username_error: refusal.field("username"),
                email_error: refusal.field("email"),
                password_error: refusal.field("password"),
            };
            let page = render(&page);
            visitor.respond((status, page))
        }
        Err(e) => visitor.respond(e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// Ends the session here and at the auth service.
pub async fn logout(State(s): State<AppState>, mut visitor: Visitor, Form(form): Form<CsrfForm>) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    if let Some(refresh) = visitor.refresh_token() {
        s.auth.logout(refresh).await;
    }
    visitor.sign_out();
    visitor.respond(Redirect::to("/login"))
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage<'a> {
    csrf: &'a str,
    sent: bool,
}

#[derive(Deserialize)]
pub struct ForgotForm {
    csrf: String,
    email: String,
}

pub async fn forgot_page(visitor: Visitor) -> Response {
    let page = render(&ForgotPage { csrf: &visitor.csrf, sent: false });
    visitor.respond(page)
}

pub async fn forgot(State(s): State<AppState>, visitor: Visitor, Form(form): Form<ForgotForm>) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    if let Err(e) = s.auth.forgot(form.email.trim()).await {
        return visitor.respond(e);
    }
    let page = render(&ForgotPage { csrf: &visitor.csrf, sent: true });
    visitor.respond(page)
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage<'a> {
    csrf: &'a str,
    token: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct ResetQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct ResetForm {
    csrf: String,
    token: String,
    password: String,
}

pub async fn reset_page(visitor: Visitor, Query(q): Query<ResetQuery>) -> Response {
    let page = render(&ResetPage { csrf: &visitor.csrf, token: &q.token, error: None });
    visitor.respond(page)
}

pub async fn reset(State(s): State<AppState>, visitor: Visitor, Form(form): Form<ResetForm>) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    match s.auth.reset(&form.token, &form.password).await {
        Ok(Outcome::Done(())) => visitor.respond(Redirect::to("/login?reset=true")),
        Ok(Outcome::Refused(refusal)) => {
            let message = refusal.field("new_password").unwrap_or(&refusal.message).to_owned();
            let page = render(&ResetPage { csrf: &visitor.csrf, token: &form.token, error: Some(&message) });
            visitor.respond((StatusCode::UNPROCESSABLE_ENTITY, page))
        }
        Err(e) => visitor.respond(e),
    }
}

/// The start page: the chat for a signed-in visitor, signing in for anyone else.
pub async fn home(visitor: Visitor) -> Response {
    let to = if visitor.identity.is_some() { "/chat" } else { "/login" };
    visitor.respond(Redirect::to(to))
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// A file of the site's own (stylesheet, scripts), cached for an hour.
/// Posting a form for server-sent events: what the chat and admin scripts share.
pub async fn events_script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../static/events.js"))
}

pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}
