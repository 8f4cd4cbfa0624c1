//! The chat pages. Every one has the same sidebar: a search box, the user's folders as a tree and
//! their recent conversations, pinned first. `/chat` lists conversations (all, a folder's, the
//! archived ones, or those a search finds) with a form to start one; `/chat/{id}` is a
//! conversation (`conversation.rs`) with its replies (`reply.rs`), documents (`documents.rs`),
//! notes and feedback (`annotations.rs`). Every change is a plain form that comes back to the
//! page it was made on; `static/chat.js` only streams replies and follows document processing.

mod annotations;
mod conversation;
mod documents;
mod folders;
mod reply;

use askama::Template;
use axum::extract::State;
use axum::http::Method;
use axum::response::{Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::error::render_private;
use crate::extract::{Form, Query};
use crate::services::{Caller, Page};
use crate::session::{Nav, Visitor};

pub use annotations::{delete_note, feedback, note};
pub use conversation::{delete, export, show, update};
pub use documents::{delete_document, document_status, upload};
pub use folders::{create_folder, delete_folder, update_folder};
pub use reply::{branch, regenerate, script, send, stop};

/// A conversation in a list.
#[derive(Deserialize)]
pub struct Summary {
    pub id: Uuid,
    pub title: String,
    pub model: String,
    pub folder_id: Uuid,
    pub pinned: bool,
    pub archived: bool,
}

/// A folder in the sidebar's tree.
pub struct FolderRow {
    pub id: Uuid,
    pub name: String,
    /// How deep it is under the root (its top level is 0).
    pub depth: usize,
}

/// What every chat page shows beside its content.
pub struct Sidebar {
    /// Pre-order: each folder before its subfolders.
    pub folders: Vec<FolderRow>,
    /// The folder a conversation is in when no other is named.
    pub root: Option<Uuid>,
    /// Recent conversations that are not archived, pinned first.
    pub recent: Vec<Summary>,
    /// The search the page shows, the conversation and folder it is about.
    pub q: String,
    pub current: Option<Uuid>,
    pub folder: Option<Uuid>,
}

impl Sidebar {
    /// A folder's name, for the page's heading.
    pub fn folder_name(&self, id: Uuid) -> Option<&str> {
        self.folders.iter().find(|f| f.id == id).map(|f| f.name.as_str())
    }

    /// A folder's name indented by its depth, for a `<select>`.
    pub fn indented(&self, folder: &FolderRow) -> String {
        format!("{}{}", "\u{2014} ".repeat(folder.depth), folder.name)
    }
}

/// Builds the sidebar: the folder tree and the recent conversations, asked for at once.
async fn sidebar(s: &AppState, caller: &Caller<'_>, current: Option<Uuid>, folder: Option<Uuid>, q: &str) -> Sidebar {
    let (folders, recent) = tokio::join!(
        folders::all(s, caller),
        s.conversation.json::<Page<Summary>>(caller, Method::GET, "/api/conversations?limit=30", None)
    );
    let (root, folders) = folders.map(folders::tree).unwrap_or_default();
    let mut recent = recent.map(|p| p.items).unwrap_or_default();
    recent.sort_by_key(|c| !c.pinned);
    Sidebar { folders, root, recent, q: q.to_owned(), current, folder }
}

#[derive(Deserialize)]
struct Model {
    name: String,
}

#[derive(Deserialize)]
struct Models {
    models: Vec<Model>,
}

/// What `/chat` lists.
#[derive(Default, Deserialize, Serialize)]
pub struct ListQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    q: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    folder: Option<Uuid>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    archived: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// `GET /api/conversations`'s query.
#[derive(Serialize)]
struct ApiQuery<'a> {
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    folder_id: Option<Uuid>,
    archived: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage<'a> {
    nav: Nav<'a>,
    sidebar: Sidebar,
    query: ListQuery,
    heading: String,
    conversations: Vec<Summary>,
    /// The query string of the next page, if there is one.
    next: Option<String>,
    models: Vec<String>,
    error: Option<String>,
}

/// The conversations the query names, the sidebar, and a form for a new conversation with its
/// model picked among those the user may use.
pub async fn list(State(s): State<AppState>, visitor: Visitor, Query(query): Query<ListQuery>) -> Response {
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let api = ApiQuery {
        limit: 50,
        q: Some(query.q.trim()).filter(|q| !q.is_empty()),
        folder_id: query.folder,
        archived: query.archived,
        cursor: query.cursor.as_deref(),
    };
    let api = format!("/api/conversations?{}", serde_urlencoded::to_string(&api).unwrap_or_default());
    let listed = s.conversation.json::<Page<Summary>>(&caller, Method::GET, &api, None);
    let models = s.inference.json::<Models>(&caller, Method::GET, "/ollama/api/tags", None);
    let side = sidebar(&s, &caller, None, query.folder, &query.q);
    let (listed, models, sidebar) = tokio::join!(listed, models, side);
    let mut error = None;
    let (conversations, next_cursor) = listed.map(|p| (p.items, p.next_cursor)).unwrap_or_else(|e| {
        error = Some(e.to_string());
        (Vec::new(), None)
    });
    let models = models.map(|m| m.models.into_iter().map(|m| m.name).collect()).unwrap_or_else(|e| {
        error = Some(e.to_string());
        Vec::new()
    });
    let heading = match (&query, query.folder.and_then(|f| sidebar.folder_name(f))) {
        (q, _) if !q.q.trim().is_empty() => format!("Conversations matching \u{201c}{}\u{201d}", q.q.trim()),
        (q, _) if q.archived => "Archived conversations".to_owned(),
        (_, Some(name)) => name.to_owned(),
        _ => "Your conversations".to_owned(),
    };
    let next = next_cursor.map(|cursor| {
        let next =
            ListQuery { cursor: Some(cursor), q: query.q.clone(), folder: query.folder, archived: query.archived };
        serde_urlencoded::to_string(&next).unwrap_or_default()
    });
    let page = ChatPage { nav: visitor.nav(), sidebar, query, heading, conversations, next, models, error };
    let page = render_private(&page);
    visitor.respond(page)
}

#[derive(Deserialize)]
pub struct NewConversation {
    csrf: String,
    model: String,
    #[serde(default)]
    title: String,
    #[serde(default, deserialize_with = "crate::extract::blank_as_none")]
    folder: Option<Uuid>,
}

pub async fn create(State(s): State<AppState>, visitor: Visitor, Form(form): Form<NewConversation>) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let mut body = json!({"model": form.model});
    if !form.title.trim().is_empty() {
        body["title"] = json!(form.title.trim());
    }
    if let Some(folder) = form.folder {
        body["folder_id"] = json!(folder);
    }
    let created = s.conversation.json::<Summary>(&caller, Method::POST, "/api/conversations", Some(&body)).await;
    match created {
        Ok(c) => visitor.respond(Redirect::to(&format!("/chat/{}", c.id))),
        Err(e) => visitor.respond(e),
    }
}

/// A change made by a form: checks its token, calls the conversation service as the visitor,
/// and goes back to `back`.
async fn act(
    s: &AppState,
    visitor: Visitor,
    csrf: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
    back: &str,
) -> Response {
    if let Err(e) = visitor.check_csrf(csrf) {
        return visitor.respond(e);
    }
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    match s.conversation.perform(&caller, method, path, body).await {
        Ok(()) => visitor.respond(Redirect::to(back)),
        Err(e) => visitor.respond(e),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}
