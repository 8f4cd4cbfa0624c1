//! A conversation's page: its messages on the branch shown, with each reply's citations, usage,
//! notes and feedback; its documents; and its settings (title, folder, pin, archive), export and
//! deletion.

use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::annotations::{Feedback, Note};
use super::documents::Document;
use super::{CsrfOnly, Sidebar, Summary, act, sidebar};
use crate::AppState;
use crate::error::{WebError, render_private};
use crate::extract::{Form, Path, Query, blank_as_none};
use crate::markdown;
use crate::session::{Nav, Visitor};

#[derive(Deserialize)]
struct Message {
    id: Uuid,
    sibling_ids: Vec<Uuid>,
    role: String,
    content: String,
    status: String,
    error: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    citations: Vec<Citation>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    eval_duration_ns: Option<i64>,
    time_to_first_token_ns: Option<i64>,
}

#[derive(Deserialize)]
pub struct Citation {
    pub number: u32,
    pub document_name: String,
    pub page: Option<i64>,
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
    /// The content's length in characters (a note covers a range of it).
    pub length: usize,
    pub status: String,
    pub error: Option<String>,
    /// For replies: tokens and speed, in words.
    pub usage: Option<String>,
    pub citations: Vec<Citation>,
    pub notes: Vec<Note>,
    pub feedback: Option<Feedback>,
}

impl Shown {
    fn new(m: Message, notes: &mut Vec<Note>, feedback: &mut Vec<Feedback>) -> Self {
        let html = if m.role == "assistant" { markdown::to_html(&m.content) } else { escape(&m.content) };
        let length = m.content.chars().count();
        let at = m.sibling_ids.iter().position(|s| *s == m.id).unwrap_or(0);
        let text = if m.role == "user" { m.content } else { String::new() };
        let (mine, others): (Vec<Note>, Vec<Note>) = notes.drain(..).partition(|n| n.message_id == m.id);
        *notes = others;
        Shown {
            id: m.id,
            position: at + 1,
            branches: m.sibling_ids.len().max(1),
            previous: at.checked_sub(1).and_then(|i| m.sibling_ids.get(i).copied()),
            next: m.sibling_ids.get(at + 1).copied(),
            text,
            role: m.role,
            html,
            length,
            status: m.status,
            error: m.error,
            usage: m.usage.as_ref().and_then(describe),
            citations: m.citations,
            notes: mine,
            feedback: feedback.iter().position(|f| f.message_id == m.id).map(|i| feedback.swap_remove(i)),
        }
    }
}

/// "42 tokens · 31.5 tokens/s · first token after 0.21 s", as far as the engine told.
fn describe(u: &Usage) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(n) = u.completion_tokens {
        parts.push(format!("{n} tokens"));
        if let Some(ns) = u.eval_duration_ns.filter(|ns| *ns > 0) {
            parts.push(format!("{:.1} tokens/s", n as f64 * 1e9 / ns as f64));
        }
    }
    if let Some(n) = u.prompt_tokens {
        parts.push(format!("{n} prompt tokens"));
    }
    if let Some(ns) = u.time_to_first_token_ns {
        parts.push(format!("first token after {:.2} s", ns as f64 / 1e9));
    }
    (!parts.is_empty()).then(|| parts.join(" \u{b7} "))
}

/// Text as HTML that shows it as it is (line breaks kept by the stylesheet).
fn escape(text: &str) -> String {
    askama::filters::escape(text, askama::filters::Html).map(|s| s.to_string()).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "conversation.html")]
struct ConversationPage<'a> {
    nav: Nav<'a>,
    sidebar: Sidebar,
    conversation: Summary,
    messages: Vec<Shown>,
    documents: Vec<Document>,
    /// Whether a document is still being processed (the page's script follows it).
    processing: bool,
}

pub async fn show(State(s): State<AppState>, visitor: Visitor, Path(id): Path<Uuid>) -> Response {
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let c = &s.conversation;
    let (one, messages) = (format!("/api/conversations/{id}"), format!("/api/conversations/{id}/messages"));
    let (notes, feedback) = (format!("/api/notes?conversation_id={id}"), format!("/api/feedback?conversation_id={id}"));
    let (conversation, messages, notes, feedback, documents, sidebar) = tokio::join!(
        c.json::<Summary>(&caller, Method::GET, &one, None),
        c.json::<Vec<Message>>(&caller, Method::GET, &messages, None),
        c.json::<Vec<Note>>(&caller, Method::GET, &notes, None),
        c.json::<Vec<Feedback>>(&caller, Method::GET, &feedback, None),
        super::documents::of(&s, &caller, id),
        sidebar(&s, &caller, Some(id), None, ""),
    );
    let loaded = (|| Ok::<_, WebError>((conversation?, messages?, notes?, feedback?, documents?)))();
    let (conversation, messages, mut notes, mut feedback, documents) = match loaded {
        Ok(all) => all,
        Err(e) => return visitor.respond(e),
    };
    let page = ConversationPage {
        nav: visitor.nav(),
        sidebar: Sidebar { folder: Some(conversation.folder_id), ..sidebar },
        processing: documents.iter().any(Document::in_progress),
        conversation,
        messages: messages.into_iter().map(|m| Shown::new(m, &mut notes, &mut feedback)).collect(),
        documents,
    };
    let page = render_private(&page);
    visitor.respond(page)
}

#[derive(Deserialize)]
pub struct Settings {
    csrf: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default, deserialize_with = "blank_as_none")]
    folder: Option<Uuid>,
    #[serde(default)]
    pinned: Option<bool>,
    #[serde(default)]
    archived: Option<bool>,
    /// `list`: back to the list it was changed from; otherwise back to the conversation.
    #[serde(default)]
    back: Option<String>,
}

/// Renames, moves, pins or archives a conversation: each form sends the fields it changes.
pub async fn update(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    Form(form): Form<Settings>,
) -> Response {
    let mut body = json!({});
    if let Some(title) = form.title.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        body["title"] = json!(title);
    }
    if let Some(folder) = form.folder {
        body["folder_id"] = json!(folder);
    }
    if let Some(pinned) = form.pinned {
        body["pinned"] = json!(pinned);
    }
    if let Some(archived) = form.archived {
        body["archived"] = json!(archived);
    }
    // Only two places to go back to: never an address taken from the form.
    let back = if form.back.as_deref() == Some("list") { "/chat".to_owned() } else { format!("/chat/{id}") };
    act(&s, visitor, &form.csrf, Method::PATCH, &format!("/api/conversations/{id}"), Some(&body), &back).await
}

pub async fn delete(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    act(&s, visitor, &form.csrf, Method::DELETE, &format!("/api/conversations/{id}"), None, "/chat").await
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    format: Option<String>,
}

/// The conversation as a file: JSON (every branch, importable) or Markdown (the branch shown).
pub async fn export(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    Query(q): Query<ExportQuery>,
) -> Response {
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let markdown = q.format.as_deref() == Some("markdown");
    let (format, extension, media) = if markdown {
        ("markdown", "md", "text/markdown; charset=utf-8")
    } else {
        ("json", "json", "application/json")
    };
    let path = format!("/api/conversations/{id}/export?format={format}");
    let res = match s.conversation.send(&caller, Method::GET, &path, None, media).await {
        Ok(res) => res,
        Err(e) => return visitor.respond(e),
    };
    let bytes = match s.conversation.checked(res).await {
        Ok(bytes) => bytes,
        Err(e) => return visitor.respond(e),
    };
    let mut out = Body::from(bytes).into_response();
    let headers = out.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    let disposition = format!("attachment; filename=\"conversation-{id}.{extension}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    visitor.respond(out)
}
