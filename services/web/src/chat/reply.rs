//! Replies: sending a message, editing one (a new branch), regenerating a reply, switching
//! branches, stopping. Without JavaScript a message is sent as a form and the page comes back
//! with the reply; with it (`static/chat.js`) the reply streams in token by token.

use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{CsrfOnly, act};
use crate::AppState;
use crate::extract::{Form, Path};
use crate::services::{pass_events, wants_events};
use crate::session::Visitor;

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
    if wants_events(headers) {
        return match s.conversation.send(&caller, Method::POST, path, Some(&body), "text/event-stream").await {
            Ok(res) => visitor.respond(pass_events(res)),
            Err(e) => visitor.respond(e),
        };
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
    let back = format!("/chat/{id}");
    act(&s, visitor, &form.csrf, Method::POST, &format!("/api/conversations/{id}/stop"), None, &back).await
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
    let back = format!("/chat/{id}");
    act(&s, visitor, &form.csrf, Method::PATCH, &format!("/api/conversations/{id}"), Some(&body), &back).await
}

pub async fn script() -> Response {
    crate::pages::asset("text/javascript; charset=utf-8", include_str!("../../static/chat.js"))
}
