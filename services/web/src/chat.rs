//! The chat pages: the user's conversations, a conversation with its messages, sending a
//! message. Without JavaScript a message is sent as a form and the page comes back with the
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
use crate::services::Caller;
use crate::session::Visitor;

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
    pub role: String,
    /// Safe HTML: rendered Markdown for replies, escaped text for the user's messages.
    pub html: String,
    pub status: String,
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
    status: String,
    error: Option<String>,
}

impl From<Message> for Shown {
    fn from(m: Message) -> Self {
        let html = if m.role == "assistant" { markdown::to_html(&m.content) } else { escape(&m.content) };
        Shown { role: m.role, html, status: m.status, error: m.error }
    }
}

/// Text as HTML that shows it as it is (line breaks kept by the stylesheet).
fn escape(text: &str) -> String {
    askama::filters::escape(text, askama::filters::Html).map(|s| s.to_string()).unwrap_or_default()
}

/// The visitor as a caller of the services, if they are signed in.
fn signed_in(visitor: &Visitor) -> Option<Caller<'_>> {
    Some(Caller { identity: visitor.identity.as_ref()?, access: visitor.access.as_deref()? })
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage<'a> {
    csrf: &'a str,
    username: &'a str,
    conversations: Vec<Summary>,
    models: Vec<String>,
    error: Option<String>,
}

/// The user's conversations and a form for a new one, its model picked among those the user
/// may use.
pub async fn list(State(s): State<AppState>, visitor: Visitor) -> Response {
    let Some(caller) = signed_in(&visitor) else {
        return visitor.respond(Redirect::to("/login"));
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
    let page = ChatPage { csrf: &visitor.csrf, username: &caller.identity.username, conversations, models, error };
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
    let Some(caller) = signed_in(&visitor) else {
        return visitor.respond(Redirect::to("/login"));
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
    csrf: &'a str,
    username: &'a str,
    conversation: Summary,
    messages: Vec<Shown>,
}

pub async fn show(State(s): State<AppState>, visitor: Visitor, Path(id): Path<Uuid>) -> Response {
    let Some(caller) = signed_in(&visitor) else {
        return visitor.respond(Redirect::to("/login"));
    };
    let (one, its_messages) = (format!("/api/conversations/{id}"), format!("/api/conversations/{id}/messages"));
    let conversation = s.conversation.json::<Summary>(&caller, Method::GET, &one, None);
    let messages = s.conversation.json::<Vec<Message>>(&caller, Method::GET, &its_messages, None);
    let (conversation, messages) = match tokio::join!(conversation, messages) {
        (Ok(c), Ok(m)) => (c, m),
        (Err(e), _) | (_, Err(e)) => return visitor.respond(e),
    };
    let page = ConversationPage {
        csrf: &visitor.csrf,
        username: &caller.identity.username,
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
}

/// Sends a message. A script asking for `text/event-stream` gets the reply's events as the
/// conversation service sends them; a plain form post waits for the whole reply and comes back
/// to the conversation.
pub async fn send(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Form(form): Form<SendForm>,
) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    let Some(caller) = signed_in(&visitor) else {
        return visitor.respond(Redirect::to("/login"));
    };
    let path = format!("/api/conversations/{id}/messages");
    let streamed =
        headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if streamed {
        let body = json!({"content": form.content});
        let res = match s.conversation.send(&caller, Method::POST, &path, Some(&body), "text/event-stream").await {
            Ok(res) => res,
            Err(e) => return visitor.respond(e),
        };
        // The events pass through as they come; the status and content type are the service's.
        let (parts, body) = res.into_parts();
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = parts.status;
        if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
            out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
        }
        out.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return visitor.respond(out);
    }
    let body = json!({"content": form.content, "stream": false});
    match s.conversation.json::<Value>(&caller, Method::POST, &path, Some(&body)).await {
        Ok(_) => visitor.respond(Redirect::to(&format!("/chat/{id}"))),
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
