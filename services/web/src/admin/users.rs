//! `/admin/users`: finding users, and a user's page with their lock, activation, roles and a
//! password-reset mail (the auth service's `/api/admin/users…` and `/api/admin/roles`).

use askama::Template;
use axum::extract::State;
use axum::http::Method;
use axum::response::{Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Done, Fields, Flash, When, link};
use crate::AppState;
use crate::error::{WebError, render_private};
use crate::extract::{Form, Path, Query};
use crate::services::Page;
use crate::session::{Nav, Visitor};

#[derive(Deserialize)]
struct User {
    id: Uuid,
    username: String,
    email: String,
    roles: Vec<String>,
    active: bool,
    locked_until: Option<When>,
    deleted_at: Option<When>,
    created_at: When,
    last_login_at: Option<When>,
    failed_logins: i32,
}

impl User {
    fn status(&self) -> &'static str {
        if self.deleted_at.is_some() {
            "deleted"
        } else if !self.active {
            "inactive"
        } else if self.locked_until.is_some() {
            "locked"
        } else {
            "active"
        }
    }

    fn holds(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}

#[derive(Deserialize)]
pub struct Role {
    pub name: String,
    pub user_count: i64,
}

#[derive(Deserialize)]
pub struct UserQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage<'a> {
    nav: Nav<'a>,
    q: &'a str,
    status: &'a str,
    users: Vec<User>,
    next: Option<String>,
    error: Option<String>,
}

/// Users found by name or address and status, a page at a time.
pub async fn users(State(s): State<AppState>, visitor: Visitor, Query(query): Query<UserQuery>) -> Response {
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let filters = [("q", query.q.trim()), ("status", query.status.as_str())];
    let mut api = filters.to_vec();
    api.extend([("limit", "50"), ("cursor", query.cursor.as_str())]);
    let (users, next, error) =
        match s.accounts.json::<Page<User>>(&caller, Method::GET, &link("/api/admin/users", &api), None).await {
            Ok(page) => {
                let next = page.next_cursor.map(|c| link("/admin/users", &[filters[0], filters[1], ("cursor", &c)]));
                (page.items, next, None)
            }
            Err(WebError::Refused(reason)) => (Vec::new(), None, Some(reason)),
            Err(e) => return visitor.respond(e),
        };
    let page = UsersPage { nav: visitor.nav(), q: query.q.trim(), status: &query.status, users, next, error };
    let page = render_private(&page);
    visitor.respond(page)
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage<'a> {
    nav: Nav<'a>,
    flash: Flash,
    user: User,
    roles: Vec<Role>,
}

const DONE: &[(&str, &str)] = &[
    ("lock", "The user is locked: signed out everywhere, and sign-ins are refused until the lock ends."),
    ("unlock", "The user is unlocked."),
    ("activate", "The user is active again."),
    ("deactivate", "The user is deactivated: signed out everywhere, and sign-ins are refused."),
    ("roles", "The roles are saved. The user's pages change on their next action."),
    ("password-reset", "A mail with a link to set a new password is on its way to the user."),
];

pub async fn user(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    Query(q): Query<Done>,
) -> Response {
    show(&s, visitor, id, Flash::done(q.done.as_deref(), DONE)).await
}

/// The user's page, with what happened to the last change.
async fn show(s: &AppState, visitor: Visitor, id: Uuid, flash: Flash) -> Response {
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let one = format!("/api/admin/users/{id}");
    let user = s.accounts.json::<User>(&caller, Method::GET, &one, None);
    let roles = s.accounts.json::<Page<Role>>(&caller, Method::GET, "/api/admin/roles?limit=100", None);
    let (user, roles) = match tokio::join!(user, roles) {
        (Ok(user), Ok(roles)) => (user, roles.items),
        (Err(e), _) | (_, Err(e)) => return visitor.respond(e),
    };
    let status = flash.status();
    let page = render_private(&UserPage { nav: visitor.nav(), flash, user, roles });
    visitor.respond((status, page))
}

/// A change to a user: `lock` (for `minutes`), `unlock`, `activate`, `deactivate`, `roles`
/// (the checked `role`s, exactly), `password-reset`.
pub async fn user_action(
    State(s): State<AppState>,
    visitor: Visitor,
    Path((id, action)): Path<(Uuid, String)>,
    Form(form): Form<Fields>,
) -> Response {
    if let Err(e) = visitor.check_csrf(form.get("csrf")) {
        return visitor.respond(e);
    }
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let (method, body) = match action.as_str() {
        "lock" => (Method::POST, Some(json!({"minutes": form.get("minutes").trim().parse::<u32>().unwrap_or(0)}))),
        "roles" => (Method::PUT, Some(json!({"roles": form.all("role")}))),
        "unlock" | "activate" | "deactivate" | "password-reset" => (Method::POST, None),
        _ => return visitor.respond(WebError::NotFound),
    };
    let path = format!("/api/admin/users/{id}/{action}");
    match s.accounts.perform(&caller, method, &path, body.as_ref()).await {
        Ok(()) => visitor.respond(Redirect::to(&format!("/admin/users/{id}?done={action}"))),
        Err(WebError::Refused(reason)) => show(&s, visitor, id, Flash::refused(reason)).await,
        Err(e) => visitor.respond(e),
    }
}
