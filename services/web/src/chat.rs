//! The chat pages: the user's conversations, a conversation with its messages, sending a
//! message, editing one (a new branch), regenerating a reply, switching branches, stopping. Without JavaScript a message is sent as a form and the page comes back with the
//! reply; with it (`static/chat.js`) the reply streams in token by token.

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::error::render_private;
use crate::form::Form;
use crate::markdown;
use crate::session::{Nav, Visitor};

/// A conversation in the list.
#[derive(Deserialize)]
pub struct Summary {
    pub id: Uuid,
    pub title: String,
    pub model: String,
}

#[derive(Deserialize)]
struct Page<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct Model {
    name: String,
}

#[derive(Deserialize)]
struct Models {
    models: Vec<Model>,
}

/// A message as the page shows it.
pub struct Shown {
    pub id: Uuid,
    /// The message's place among its siblings (1-based), how many there are, and the ones
    /// before and after it: the branches a reader can switch to.
    pub position: usize,
    pub branches: usize,
    pub previous: Option<Uuid>,
    pub next: Option<Uuid>,
    /// The raw text of the user's messages, to edit them.
    pub text: String,
    pub role: String,
    /// Safe HTML: rendered Markdown for replies, escaped text for the user's messages.
    pub html: String,
    pub status: String,
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    id: Uuid,
    sibling_ids: Vec<Uuid>,
    role: String,
    content: String,
    status: String,
    error: Option<String>,
}

impl From<Message> for Shown {
    fn from(m: Message) -> Self {
        let html = if m.role == "assistant" { markdown::to_html(&m.content) } else { escape(&m.content) };
        let at = m.sibling_ids.iter().position(|s| *s == m.id).unwrap_or(0);
        let text = if m.role == "user" { m.content } else { String::new() };
        Shown {
            id: m.id,
            position: at + 1,
            branches: m.sibling_ids.len().max(1),
            previous: at.checked_sub(1).and_then(|i| m.sibling_ids.get(i).copied()),
            next: m.sibling_ids.get(at + 1).copied(),
            text,
            role: m.role,
            html,
            status: m.status,
            error: m.error,
        }
    }
}

/// Text as HTML that shows it as it is (line breaks kept by the stylesheet).
fn escape(text: &str) -> String {
    askama::filters::escape(text, askama::filters::Html).map(|s| s.to_string()).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage<'a> {
    nav: Nav<'a>,
    conversations: Vec<Summary>,
    models: Vec<String>,
    error: Option<String>,
}

/// The user's conversations and a form for a new one, its model picked among those the user
/// may use.
pub async fn list(State(s): State<AppState>, visitor: Visitor) -> Response {
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let conversations = s.conversation.json::<Page<Summary>>(&caller, Method::GET, "/api/conversations?limit=50", None);
    let models = s.inference.json::<Models>(&caller, Method::GET, "/ollama/api/tags", None);
    let (conversations, models) = tokio::join!(conversations, models);
    let mut error = None;
    let conversations = conversations.map(|p| p.items).unwrap_or_else(|e| {
        error = Some(e.to_string());
        Vec::new()
    });
    let models = models.map(|m| m.models.into_iter().map(|m| m.name).collect()).unwrap_or_else(|e| {
        error = Some(e.to_string());
        Vec::new()
    });
    let page = ChatPage { nav: visitor.nav(), conversations, models, error };
    let page = render_private(&page);
    visitor.respond(page)
}

#[derive(Deserialize)]
pub struct NewConversation {
    csrf: String,
    model: String,
    #[serde(default)]
    title: String,
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
    let created = s.conversation.json::<Summary>(&caller, Method::POST, "/api/conversations", Some(&body)).await;
    match created {
        Ok(c) => visitor.respond(Redirect::to(&format!("/chat/{}", c.id))),
        Err(e) => visitor.respond(e),
    }
}

#[derive(Template)]
#[template(path = "conversation.html")]
struct ConversationPage<'a> {
    nav: Nav<'a>,
    conversation: Summary,
    messages: Vec<Shown>,
}

pub async fn show(State(s): State<AppState>, visitor: Visitor, Path(id): Path<Uuid>) -> Response {
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let (one, its_messages) = (format!("/api/conversations/{id}"), format!("/api/conversations/{id}/messages"));
    let conversation = s.conversation.json::<Summary>(&caller, Method::GET, &one, None);
    let messages = s.conversation.json::<Vec<Message>>(&caller, Method::GET, &its_messages, None);
    let (conversation, messages) = match tokio::join!(conversation, messages) {
        (Ok(c), Ok(m)) => (c, m),
        (Err(e), _) | (_, Err(e)) => return visitor.respond(e),
    };
    let page = ConversationPage {
        nav: visitor.nav(),
        conversation,
        messages: messages.into_iter().map(Shown::from).collect(),
    };
    let page = render_private(&page);
    visitor.respond(page)
}

#[derive(Deserialize)]
pub struct SendForm {
    csrf: String,
    content: String,
    /// Editing this message of the user's: the new one becomes its sibling (a branch).
    #[serde(default)]
    edit_of: Option<Uuid>,
}

/// Sends a message (or an edited one, as a new branch).
pub async fn send(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Form(form): Form<SendForm>,
) -> Response {
    let mut body = json!({"content": form.content});
    if let Some(edited) = form.edit_of {
        body["edit_of"] = json!(edited);
    }
    reply(&s, visitor, &form.csrf, id, &format!("/api/conversations/{id}/messages"), body, &headers).await
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// A new reply to the message a reply answered, in a branch of its own.
pub async fn regenerate(
    State(s): State<AppState>,
    visitor: Visitor,
    Path((id, message)): Path<(Uuid, Uuid)>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let path = format!("/api/conversations/{id}/messages/{message}/regenerate");
    reply(&s, visitor, &form.csrf, id, &path, json!({}), &headers).await
}

/// Starts a reply at `path` with `body`. A script asking for `text/event-stream` gets the reply's
/// events as the conversation service sends them; a plain form post waits for the whole reply
/// and comes back to the conversation.
async fn reply(
    s: &AppState,
    visitor: Visitor,
    csrf: &str,
    conversation: Uuid,
    path: &str,
    mut body: Value,
    headers: &HeaderMap,
) -> Response {
    if let Err(e) = visitor.check_csrf(csrf) {
        return visitor.respond(e);
    }
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let streamed =
        headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if streamed {
        let res = match s.conversation.send(&caller, Method::POST, path, Some(&body), "text/event-stream").await {
            Ok(res) => res,
            Err(e) => return visitor.respond(e),
        };
        // The events pass through as they come; the status and content type are the service's.
        let (parts, events) = res.into_parts();
        let mut out = Response::new(Body::new(events));
        *out.status_mut() = parts.status;
        if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
            out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
        }
        out.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return visitor.respond(out);
    }
    body["stream"] = json!(false);
    match s.conversation.json::<Value>(&caller, Method::POST, path, Some(&body)).await {
        Ok(_) => visitor.respond(Redirect::to(&format!("/chat/{conversation}"))),
        Err(e) => visitor.respond(e),
    }
}

/// Stops the reply being written; what was written so far is kept.
pub async fn stop(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    act(&s, visitor, &form.csrf, id, Method::POST, &format!("/api/conversations/{id}/stop"), None).await
}

#[derive(Deserialize)]
pub struct BranchForm {
    csrf: String,
    message: Uuid,
}

/// Shows the branch that holds `message` (one of a message's siblings).
pub async fn branch(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    Form(form): Form<BranchForm>,
) -> Response {
    let body = json!({"active_message_id": form.message});
    act(&s, visitor, &form.csrf, id, Method::PATCH, &format!("/api/conversations/{id}"), Some(&body)).await
}

/// A change to a conversation, then back to it.
async fn act(
    s: &AppState,
    visitor: Visitor,
    csrf: &str,
    conversation: Uuid,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Response {
    if let Err(e) = visitor.check_csrf(csrf) {
        return visitor.respond(e);
    }
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    match s.conversation.json::<Value>(&caller, method, path, body).await {
        Ok(_) => visitor.respond(Redirect::to(&format!("/chat/{conversation}"))),
        Err(e) => visitor.respond(e),
    }
}

pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../static/chat.js"),
    )
        .into_response()
}
