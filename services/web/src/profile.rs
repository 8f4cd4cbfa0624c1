//! The profile pages: the user's name and e-mail address, their password, and their API keys.
//! Each form posts to its own address and comes back to `/profile` (Post/Redirect/Get); a refused
//! form is shown again with each message next to its field. A new API key's secret is shown on
//! the answer to its form, once, and never kept by any cache.

use askama::Template;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Outcome, Refusal, Renewal, Tokens};
use crate::error::render_private;
use crate::extract::{Form, Path, Query};
use crate::services::Page;
use crate::session::{Nav, Visitor};

#[derive(Deserialize)]
struct Me {
    username: String,
    email: String,
}

/// An API key as the list shows it: never the key itself.
#[derive(Deserialize)]
pub struct Key {
    id: Uuid,
    name: String,
    /// The key's first characters, to recognise it by.
    prefix: String,
    created_at: String,
    last_used_at: Option<String>,
    expires_at: Option<String>,
}

impl Key {
    fn created(&self) -> &str {
        day(&self.created_at)
    }

    fn last_used(&self) -> Option<&str> {
        self.last_used_at.as_deref().map(day)
    }

    fn expires(&self) -> Option<&str> {
        self.expires_at.as_deref().map(day)
    }
}

/// The date of an RFC 3339 time.
fn day(time: &str) -> &str {
    time.get(..10).unwrap_or(time)
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage<'a> {
    nav: Nav<'a>,
    notice: Option<&'static str>,
    username: String,
    email: String,
    keys: Vec<Key>,
    key_name: String,
    /// Why each form was refused, if it was (empty otherwise).
    account: Refusal,
    password: Refusal,
    key: Refusal,
}

/// The form that was refused, with what the user typed in it.
enum Refused {
    Nothing,
    Account { username: String, email: String, refusal: Refusal },
    Password(Refusal),
    Key { name: String, refusal: Refusal },
}

impl Refused {
    fn status(&self) -> StatusCode {
        let refusal = match self {
            Refused::Nothing => return StatusCode::OK,
            Refused::Account { refusal, .. } | Refused::Password(refusal) | Refused::Key { refusal, .. } => refusal,
        };
        StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
    }
}

#[derive(Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
}

pub async fn show(State(s): State<AppState>, visitor: Visitor, Query(q): Query<Done>) -> Response {
    let notice = match q.done.as_str() {
        "account" => Some("Your account is saved."),
        "password" => Some("Your password is changed. Your other sessions are signed out."),
        "revoked" => Some("The key is revoked."),
        _ => None,
    };
    page(&s, visitor, notice, Refused::Nothing).await
}

/// The profile page, with a refused form's messages and what was typed in it.
async fn page(s: &AppState, visitor: Visitor, notice: Option<&'static str>, refused: Refused) -> Response {
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let me = s.accounts.json::<Me>(&caller, Method::GET, "/api/auth/me", None);
    let keys = s.accounts.json::<Page<Key>>(&caller, Method::GET, "/api/auth/keys?limit=100", None);
    let (me, keys) = match tokio::join!(me, keys) {
        (Ok(me), Ok(keys)) => (me, keys.items),
        (Err(e), _) | (_, Err(e)) => return visitor.respond(e),
    };
    let status = refused.status();
    let mut page = ProfilePage {
        nav: visitor.nav(),
        notice,
        username: me.username,
        email: me.email,
        keys,
        key_name: String::new(),
        account: Refusal::default(),
        password: Refusal::default(),
        key: Refusal::default(),
    };
    match refused {
        Refused::Nothing => {}
        Refused::Account { username, email, refusal } => {
            (page.username, page.email, page.account) = (username, email, refusal);
        }
        Refused::Password(refusal) => page.password = refusal,
        Refused::Key { name, refusal } => (page.key_name, page.key) = (name, refusal),
    }
    let page = render_private(&page);
    visitor.respond((status, page))
}

#[derive(Deserialize)]
pub struct AccountForm {
    csrf: String,
    username: String,
    email: String,
    /// Needed only when the e-mail address changes.
    #[serde(default)]
    current_password: String,
}

/// Renames the user or changes their e-mail address.
pub async fn update(State(s): State<AppState>, mut visitor: Visitor, Form(form): Form<AccountForm>) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let (username, email) = (form.username.trim(), form.email.trim());
    let mut body = json!({"username": username, "email": email});
    if !form.current_password.is_empty() {
        body["current_password"] = json!(form.current_password);
    }
    match s.accounts.submit::<Me>(&caller, Method::PATCH, "/api/auth/me", Some(&body)).await {
        Ok(Outcome::Done(_)) => {
            // The header shows the name the access token holds: renew the tokens now rather
            // than show the old name until they expire.
            if let Some(refresh) = visitor.refresh_token()
                && let Renewal::Renewed(tokens) = s.auth.refresh(refresh).await
            {
                visitor.renew(&tokens);
            }
            visitor.respond(Redirect::to("/profile?done=account"))
        }
        Ok(Outcome::Refused(refusal)) => {
            let refusal = refusal.at_field("invalid_current_password", "current_password");
            let refused = Refused::Account { username: username.to_owned(), email: email.to_owned(), refusal };
            page(&s, visitor, None, refused).await
        }
        Err(e) => visitor.respond(e),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
}

/// Changes the password. The auth service ends every other session and access token of the
/// user and answers with new tokens for this one, so this browser stays signed in.
pub async fn change_password(
    State(s): State<AppState>,
    mut visitor: Visitor,
    Form(form): Form<PasswordForm>,
) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let body = json!({"current_password": form.current_password, "new_password": form.new_password});
    match s.accounts.submit::<Tokens>(&caller, Method::POST, "/api/auth/password/change", Some(&body)).await {
        Ok(Outcome::Done(tokens)) => {
            visitor.sign_in(&tokens);
            visitor.respond(Redirect::to("/profile?done=password"))
        }
        Ok(Outcome::Refused(refusal)) => {
            let refusal = refusal.at_field("invalid_current_password", "current_password");
            page(&s, visitor, None, Refused::Password(refusal)).await
        }
        Err(e) => visitor.respond(e),
    }
}

#[derive(Deserialize)]
pub struct KeyForm {
    csrf: String,
    name: String,
    /// Empty for a key that does not expire.
    #[serde(default)]
    expires_in_days: String,
}

#[derive(Deserialize)]
struct CreatedKey {
    name: String,
    key: String,
}

#[derive(Template)]
#[template(path = "profile_key.html")]
struct KeyPage<'a> {
    nav: Nav<'a>,
    name: String,
    key: String,
}

/// Creates an API key and shows its secret, this once.
pub async fn create_key(State(s): State<AppState>, visitor: Visitor, Form(form): Form<KeyForm>) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let name = form.name.trim().to_owned();
    let days = form.expires_in_days.trim();
    let mut body = json!({"name": name});
    if !days.is_empty() {
        // Not a number: sent as it is, for the auth service to say what is wrong with it.
        body["expires_in_days"] = days.parse::<u32>().map_or_else(|_| json!(days), |d| json!(d));
    }
    match s.accounts.submit::<CreatedKey>(&caller, Method::POST, "/api/auth/keys", Some(&body)).await {
        Ok(Outcome::Done(created)) => {
            let page = render_private(&KeyPage { nav: visitor.nav(), name: created.name, key: created.key });
            visitor.respond((StatusCode::CREATED, page))
        }
        Ok(Outcome::Refused(refusal)) => page(&s, visitor, None, Refused::Key { name, refusal }).await,
        Err(e) => visitor.respond(e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// Revokes one of the user's keys; another user's key is not found.
pub async fn revoke_key(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    match s.accounts.json::<()>(&caller, Method::DELETE, &format!("/api/auth/keys/{id}"), None).await {
        Ok(()) => visitor.respond(Redirect::to("/profile?done=revoked")),
        Err(e) => visitor.respond(e),
    }
}
