//! `/admin/tags`: the tags models carry (the admin service's `/api/admin/tags…`); a model's tags
//! are set on its page.

use askama::Template;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Done, Fields, Flash};
use crate::AppState;
use crate::error::{WebError, render_private};
use crate::extract::{Form, Path, Query};
use crate::session::{Nav, Visitor};

/// A tag and how many live models carry it.
#[derive(Deserialize)]
pub struct TagCount {
    pub id: Uuid,
    pub name: String,
    pub models: i64,
}

#[derive(Template)]
#[template(path = "admin_tags.html")]
struct TagsPage<'a> {
    nav: Nav<'a>,
    flash: Flash,
    tags: Vec<TagCount>,
}

const TAGS_DONE: &[(&str, &str)] =
    &[("create", "The tag is created."), ("rename", "The tag is renamed."), ("delete", "The tag is deleted.")];

/// Every tag with how many live models carry it.
pub async fn tags(State(s): State<AppState>, visitor: Visitor, Query(q): Query<Done>) -> Response {
    show_tags(&s, visitor, Flash::done(q.done.as_deref(), TAGS_DONE)).await
}

async fn show_tags(s: &AppState, visitor: Visitor, flash: Flash) -> Response {
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let tags = match s.admin.json::<Vec<TagCount>>(&caller, Method::GET, "/api/admin/tags", None).await {
        Ok(tags) => tags,
        Err(e) => return visitor.respond(e),
    };
    let status = flash.status();
    let page = render_private(&TagsPage { nav: visitor.nav(), flash, tags });
    visitor.respond((status, page))
}

pub async fn create_tag(State(s): State<AppState>, visitor: Visitor, Form(form): Form<Fields>) -> Response {
    let body = json!({"name": form.get("name")});
    change_tag(&s, visitor, &form, (Method::POST, "/api/admin/tags".to_owned(), Some(body)), "create").await
}

/// `rename` (to `name`) or `delete` a tag.
pub async fn tag_action(
    State(s): State<AppState>,
    visitor: Visitor,
    Path((id, action)): Path<(Uuid, String)>,
    Form(form): Form<Fields>,
) -> Response {
    let path = format!("/api/admin/tags/{id}");
    match action.as_str() {
        "rename" => {
            let body = json!({"name": form.get("name")});
            change_tag(&s, visitor, &form, (Method::PATCH, path, Some(body)), "rename").await
        }
        "delete" => change_tag(&s, visitor, &form, (Method::DELETE, path, None), "delete").await,
        _ => visitor.respond(WebError::NotFound),
    }
}

/// A change to the tags, then back to their page.
async fn change_tag(
    s: &AppState,
    visitor: Visitor,
    form: &Fields,
    request: (Method, String, Option<Value>),
    done: &str,
) -> Response {
    super::change(s, visitor, form, &s.admin, request, "/admin/tags", done, show_tags).await
}
