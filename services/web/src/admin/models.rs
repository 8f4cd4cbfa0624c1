//! `/admin/models`: the model catalog (the admin service's `/api/admin/models…`). A model's page
//! edits its fields and its access rule, deletes and restores it, fills its details from the
//! engines, and puts tags on it (`/api/admin/tags/{id}/models`).
//! Model names hold `:` and `/`, so a model's address is `/admin/models/{*name}` and its forms
//! say what to do in an `action` field.

use askama::Template;
use axum::extract::State;
use axum::http::Method;
use axum::response::{Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::tags::TagCount;
use super::{Done, Fields, Flash, When, encode, link};
use crate::AppState;
use crate::error::{WebError, render_private};
use crate::extract::{Form, Path, Query};
use crate::services::{Caller, Page};
use crate::session::{Nav, Visitor};

#[derive(Deserialize)]
struct Access {
    public: bool,
    roles: Vec<String>,
}

impl Access {
    fn allows(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}

#[derive(Deserialize)]
struct Tag {
    id: Uuid,
    name: String,
}

#[derive(Deserialize)]
struct Model {
    name: String,
    description: Option<String>,
    version: Option<String>,
    family: Option<String>,
    parameter_size: Option<String>,
    quantization_level: Option<String>,
    context_length: Option<i64>,
    license: Option<String>,
    reference_link: Option<String>,
    image_url: Option<String>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    capabilities: Vec<String>,
    access: Access,
    tags: Vec<Tag>,
    requests: i64,
    updated_at: When,
    deleted_at: Option<When>,
}

impl Model {
    /// Who may use the model, in words.
    fn audience(&self) -> String {
        match (self.access.public, self.access.roles.is_empty()) {
            (true, _) => "everyone".to_owned(),
            (false, true) => "admins only".to_owned(),
            (false, false) => format!("roles: {}", self.access.roles.join(", ")),
        }
    }

    fn tag_names(&self) -> String {
        self.tags.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Deserialize)]
struct Installed {
    installed: Option<bool>,
}

#[derive(Deserialize)]
struct Role {
    name: String,
}

#[derive(Deserialize)]
pub struct CatalogQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    deleted: String,
    #[serde(default)]
    cursor: String,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_models.html")]
struct CatalogPage<'a> {
    nav: Nav<'a>,
    flash: Flash,
    q: &'a str,
    deleted: bool,
    models: Vec<Model>,
    next: Option<String>,
    /// What the form for a new model had, when it was refused.
    new_name: &'a str,
    new_description: &'a str,
}

const CATALOG_DONE: &[(&str, &str)] = &[("purge", "The model is removed from the catalog for good.")];

/// The catalog, searched, deleted models with it on request, and a form for a new model.
pub async fn catalog(State(s): State<AppState>, visitor: Visitor, Query(q): Query<CatalogQuery>) -> Response {
    let flash = Flash::done(q.done.as_deref(), CATALOG_DONE);
    show_catalog(&s, visitor, &q, flash, ("", "")).await
}

async fn show_catalog(
    s: &AppState,
    visitor: Visitor,
    q: &CatalogQuery,
    mut flash: Flash,
    (new_name, new_description): (&str, &str),
) -> Response {
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let deleted = if q.deleted.is_empty() { "" } else { "true" };
    let filters = [("q", q.q.trim()), ("deleted", deleted)];
    let mut api = filters.to_vec();
    api.extend([("limit", "50"), ("cursor", q.cursor.as_str())]);
    let (models, next) =
        match s.admin.json::<Page<Model>>(&caller, Method::GET, &link("/api/admin/models", &api), None).await {
            Ok(page) => {
                let next = page.next_cursor.map(|c| link("/admin/models", &[filters[0], filters[1], ("cursor", &c)]));
                (page.items, next)
            }
            Err(WebError::Refused(reason)) => {
                flash.error.get_or_insert(reason);
                (Vec::new(), None)
            }
            Err(e) => return visitor.respond(e),
        };
    let status = flash.status();
    let page = CatalogPage {
        nav: visitor.nav(),
        flash,
        q: q.q.trim(),
        deleted: !deleted.is_empty(),
        models,
        next,
        new_name,
        new_description,
    };
    let page = render_private(&page);
    visitor.respond((status, page))
}

/// A new catalog entry; its page comes next.
pub async fn create_model(State(s): State<AppState>, visitor: Visitor, Form(form): Form<Fields>) -> Response {
    if let Err(e) = visitor.check_csrf(form.get("csrf")) {
        return visitor.respond(e);
    }
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let (name, description) = (form.get("name").trim(), form.get("description").trim());
    let mut body = json!({"name": name, "access": {"public": form.checked("public"), "roles": []}});
    if !description.is_empty() {
        body["description"] = json!(description);
    }
    #[derive(Deserialize)]
    struct Created {
        name: String,
    }
    match s.admin.json::<Created>(&caller, Method::POST, "/api/admin/models", Some(&body)).await {
        Ok(model) => visitor.respond(Redirect::to(&format!("/admin/models/{}?done=create", model.name))),
        Err(WebError::Refused(reason)) => {
            let q = CatalogQuery { q: String::new(), deleted: String::new(), cursor: String::new(), done: None };
            show_catalog(&s, visitor, &q, Flash::refused(reason), (name, description)).await
        }
        Err(e) => visitor.respond(e),
    }
}

#[derive(Template)]
#[template(path = "admin_model.html")]
struct ModelPage<'a> {
    nav: Nav<'a>,
    flash: Flash,
    model: Model,
    /// Whether some engine has the model, when explore says.
    installed: Option<bool>,
    /// The roles to choose from: the platform's, and any the rule names that no longer exist.
    roles: Vec<String>,
    /// Tags the model does not carry yet.
    other_tags: Vec<TagCount>,
}

const MODEL_DONE: &[(&str, &str)] = &[
    ("create", "The model is in the catalog."),
    ("save", "The changes are saved."),
    ("delete", "The model is deleted: it has left explore and cannot be used until restored."),
    ("restore", "The model is back."),
    ("enrich", "The details the engines report are filled in."),
    ("tag", "The tag is on the model."),
    ("untag", "The tag is off the model."),
];

pub async fn model(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    show_model(&s, visitor, &name, Flash::done(q.done.as_deref(), MODEL_DONE)).await
}

async fn show_model(s: &AppState, visitor: Visitor, name: &str, flash: Flash) -> Response {
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let (one, explore) =
        (format!("/api/admin/models/{}", encode(name)), format!("/api/explore/models/{}", encode(name)));
    let model = s.admin.json::<Model>(&caller, Method::GET, &one, None);
    let roles = s.accounts.json::<Page<Role>>(&caller, Method::GET, "/api/admin/roles?limit=100", None);
    let tags = s.admin.json::<Vec<TagCount>>(&caller, Method::GET, "/api/admin/tags", None);
    // Whether an engine has the model is explore's to say (from the engines' reports); it knows
    // nothing of deleted models, and the page does without it.
    let explored = s.explore.json::<Installed>(&caller, Method::GET, &explore, None);
    let (model, roles, tags, explored) = match tokio::join!(model, roles, tags, explored) {
        (Ok(m), Ok(r), Ok(t), explored) => (m, r.items, t, explored),
        (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) => return visitor.respond(e),
    };
    let installed = explored.ok().and_then(|e| e.installed);
    let mut roles: Vec<String> = roles.into_iter().map(|r| r.name).collect();
    for gone in &model.access.roles {
        if !roles.iter().any(|r| r.eq_ignore_ascii_case(gone)) {
            roles.push(gone.clone());
        }
    }
    let other_tags = tags.into_iter().filter(|t| !model.tags.iter().any(|on| on.id == t.id)).collect();
    let status = flash.status();
    let page = render_private(&ModelPage { nav: visitor.nav(), flash, model, installed, roles, other_tags });
    visitor.respond((status, page))
}

/// A change to a model, as its form's `action` says: `save` (the fields and the access rule),
/// `delete`, `restore`, `purge` (a deleted model, for good), `enrich` (from the engines), `tag`
/// and `untag` (the `tag` field's).
pub async fn model_action(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    if let Err(e) = visitor.check_csrf(form.get("csrf")) {
        return visitor.respond(e);
    }
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let action = form.get("action");
    let done = change_model(&s, &caller, &name, action, &form).await;
    match done {
        Ok(()) if action == "purge" => visitor.respond(Redirect::to("/admin/models?done=purge")),
        Ok(()) => visitor.respond(Redirect::to(&format!("/admin/models/{name}?done={action}"))),
        Err(WebError::Refused(reason)) => show_model(&s, visitor, &name, Flash::refused(reason)).await,
        Err(e) => visitor.respond(e),
    }
}

async fn change_model(
    s: &AppState,
    caller: &Caller<'_>,
    name: &str,
    action: &str,
    form: &Fields,
) -> Result<(), WebError> {
    let one = format!("/api/admin/models/{}", encode(name));
    let tag = || Uuid::parse_str(form.get("tag")).map_err(|_| WebError::Refused("Choose a tag.".into()));
    let (method, path, body) = match action {
        "save" => (Method::PATCH, one, Some(model_change(form)?)),
        "delete" => (Method::DELETE, one, None),
        "purge" => (Method::DELETE, format!("{one}?purge=true"), None),
        "restore" => (Method::POST, "/api/admin/models/restore".to_owned(), Some(json!({"name": name}))),
        "enrich" => (Method::POST, "/api/admin/models/enrich".to_owned(), Some(json!({"name": name}))),
        "tag" => (Method::POST, format!("/api/admin/tags/{}/models", tag()?), Some(json!({"model": name}))),
        "untag" => (Method::DELETE, format!("/api/admin/tags/{}/models?model={}", tag()?, encode(name)), None),
        _ => return Err(WebError::BadForm),
    };
    match s.admin.perform(caller, method, &path, body.as_ref()).await {
        // The model is in the catalog (its page was shown), so for enrichment "not found" is the engines'.
        Err(WebError::NotFound) if action == "enrich" => {
            Err(WebError::Refused("No engine has this model: pull it onto an engine first.".into()))
        }
        done => done,
    }
}

/// The edit form as the API's change: every field it shows, an empty one cleared.
fn model_change(form: &Fields) -> Result<Value, WebError> {
    let text = |name: &str| match form.get(name).trim() {
        "" => Value::Null,
        value => json!(value),
    };
    let list =
        |name: &str| -> Vec<&str> { form.get(name).split(',').map(str::trim).filter(|i| !i.is_empty()).collect() };
    let context_length = match form.get("context_length").trim() {
        "" => Value::Null,
        n => json!(n.parse::<i64>().map_err(|_| WebError::Refused("Context length is a number of tokens.".into()))?),
    };
    Ok(json!({
        "description": text("description"),
        "version": text("version"),
        "family": text("family"),
        "parameter_size": text("parameter_size"),
        "quantization_level": text("quantization_level"),
        "context_length": context_length,
        "license": text("license"),
        "reference_link": text("reference_link"),
        "image_url": text("image_url"),
        "languages": list("languages"),
        "capabilities": list("capabilities"),
        "access": {"public": form.checked("public"), "roles": form.all("role")},
    }))
}
