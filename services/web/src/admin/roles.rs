//! `/admin/roles`: the roles users can hold (the auth service's `/api/admin/roles…`); a user's
//! roles are set on their page. `Admin` and `User` stay, and a role someone holds cannot go.

use askama::Template;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::users::Role;
use super::{Done, Fields, Flash};
use crate::AppState;
use crate::error::render_private;
use crate::extract::{Form, Path, Query};
use crate::services::Page;
use crate::session::{Nav, Visitor};

#[derive(Template)]
#[template(path = "admin_roles.html")]
struct RolesPage<'a> {
    nav: Nav<'a>,
    flash: Flash,
    roles: Vec<Role>,
}

const ROLES_DONE: &[(&str, &str)] = &[("create", "The role is created."), ("delete", "The role is deleted.")];

pub async fn roles(State(s): State<AppState>, visitor: Visitor, Query(q): Query<Done>) -> Response {
    show_roles(&s, visitor, Flash::done(q.done.as_deref(), ROLES_DONE)).await
}

async fn show_roles(s: &AppState, visitor: Visitor, flash: Flash) -> Response {
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let roles = match s.accounts.json::<Page<Role>>(&caller, Method::GET, "/api/admin/roles?limit=100", None).await {
        Ok(page) => page.items,
        Err(e) => return visitor.respond(e),
    };
    let status = flash.status();
    let page = render_private(&RolesPage { nav: visitor.nav(), flash, roles });
    visitor.respond((status, page))
}

pub async fn create_role(State(s): State<AppState>, visitor: Visitor, Form(form): Form<Fields>) -> Response {
    let body = json!({"name": form.get("name").trim()});
    change_role(&s, visitor, &form, (Method::POST, "/api/admin/roles".to_owned(), Some(body)), "create").await
}

pub async fn delete_role(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let path = format!("/api/admin/roles/{}", super::encode(&name));
    change_role(&s, visitor, &form, (Method::DELETE, path, None), "delete").await
}

/// A change to the roles, then back to their page.
async fn change_role(
    s: &AppState,
    visitor: Visitor,
    form: &Fields,
    request: (Method, String, Option<Value>),
    done: &str,
) -> Response {
    super::change(s, visitor, form, &s.accounts, request, "/admin/roles", done, show_roles).await
}
