//! `/api/conversations/{id}/messages…`: sending, replies as server-sent events, stopping and
//! resuming.
//!
//! The events of a reply, each with `id: <reply id>:<bytes delivered>`:
//! `start` (`conversation_id`, `message_id`, `parent_id`, `model`, `context_dropped`), `queued`
//! (`position`) while the request waits for an engine, `delta` (`content`), then `done`
//! (`message_id`, `status` complete or stopped, `usage`, `citations`) or `error` (`message_id`,
//! `code`, `detail`), and `title` (`title`) when the conversation was just named.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use kit::Problem;
use kit::api::{BodyErrors, CredentialErrors};
use kit::http::{Json, Path, Query};
use uuid::Uuid;

use super::{AppState, Me};
use crate::error::ConversationError;
use crate::models::{Exchange, ListMessages, Message, Regenerate, ResumeQuery, SendMessage, Stopped};
use crate::service::{Reply, StreamSlot};

/// Server-sent events, kept alive through idle proxies and never buffered by them.
fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    let mut res = Sse::new(events).keep_alive(KeepAlive::default()).into_response();
    res.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// `events`, holding `slot` until the stream ends or the client goes.
fn held(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
    slot: StreamSlot,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    events.map(move |event| {
        let _held = &slot;
        event
    })
}

/// The reply as events, or (not streamed) as one body once it has ended; either holds `slot`.
async fn answer(
    s: &AppState,
    me: &Me,
    reply: Reply,
    stream: bool,
    slot: StreamSlot,
) -> Result<Response, ConversationError> {
    if stream {
        return Ok(sse(held(reply.generation.follow(0), slot)));
    }
    reply.generation.finished().await;
    drop(slot);
    let record = s.service.reply_record(me.id(), &reply.generation).await?;
    let message = reply.message.map(|m| Message::from_record(m, Vec::new()));
    Ok(Json(Exchange { message, reply: Message::from_record(record, Vec::new()) }).into_response())
}

/// The active branch, root first (or with `view=tree` every message of every branch).
#[utoipa::path(get, path = "/api/conversations/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path), ListMessages), responses(
    (status = 200, description = "Messages, each with its siblings' ids.", body = Vec<Message>),
    (status = 400, description = "`invalid_query` (`view` is `path` or `tree`).", body = Problem,
        content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn list(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
    Query(q): Query<ListMessages>,
) -> Result<Json<Vec<Message>>, ConversationError> {
    let tree = match q.view.as_deref().unwrap_or("path") {
        "path" => false,
        "tree" => true,
        _ => return Err(ConversationError::BadRequest("invalid_query", "view is path or tree".into())),
    };
    Ok(Json(s.service.messages(me.id(), id, tree).await?))
}

/// Send a message; the reply comes as server-sent events (see the module's event list), or
/// with `stream: false` as one body. The reply is generated and saved even if the client goes
/// away; `GET …/stream` follows it again.
#[utoipa::path(post, path = "/api/conversations/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = SendMessage, responses(
    (status = 200, description = "`text/event-stream` of the reply's events, or (`stream: false`) the exchange.",
        body = Exchange),
    (status = 404, description = "`not_found` (the conversation, `parent_id` or `edit_of`).", body = Problem,
        content_type = "application/problem+json"),
    (status = 409, description = "`generation_in_progress`.", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "`too_many_streams`: the user follows as many replies at once as allowed.",
        body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`required`, `too_long`, `not_a_user_message`, `not_a_reply`, \
        `conflict`) or `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn send(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
    Json(req): Json<SendMessage>,
) -> Result<Response, ConversationError> {
    let stream = req.stream.unwrap_or(true);
    let slot = s.service.open_stream(me.id())?;
    let reply = s.service.send(me.id(), me.0.clone(), id, req).await?;
    answer(&s, &me, reply, stream, slot).await
}

/// Generate another reply to the message a reply answers (or to a user message), as a new
/// branch; answered like sending.
#[utoipa::path(post, path = "/api/conversations/{id}/messages/{message_id}/regenerate", tag = "messages",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("message_id" = Uuid, Path)), request_body = Regenerate,
    responses(
    (status = 200, description = "As for sending.", body = Exchange),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`generation_in_progress`.", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "`too_many_streams`: the user follows as many replies at once as allowed.",
        body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn regenerate(
    State(s): State<AppState>,
    me: Me,
    Path((id, message)): Path<(Uuid, Uuid)>,
    Json(req): Json<Regenerate>,
) -> Result<Response, ConversationError> {
    let stream = req.stream.unwrap_or(true);
    let slot = s.service.open_stream(me.id())?;
    let reply = s.service.regenerate(me.id(), me.0.clone(), id, message, req).await?;
    answer(&s, &me, reply, stream, slot).await
}

/// Stop the reply being generated; what it said so far is kept (status `stopped`).
#[utoipa::path(post, path = "/api/conversations/{id}/stop", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "`stopping` tells whether a reply was being generated.", body = Stopped),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "`bus_unavailable`: the reply runs in another instance that cannot be told.",
        body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn stop(State(s): State<AppState>, me: Me, Path(id): Path<Uuid>) -> Result<Json<Stopped>, ConversationError> {
    Ok(Json(s.service.stop(me.id(), &s.bus, id).await?))
}

/// Follow a reply again: with `Last-Event-ID` (or `last_event_id`), the events after it; without,
/// the active reply from its start. Works while it is generated and after it has ended.
#[utoipa::path(get, path = "/api/conversations/{id}/stream", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path), ResumeQuery, ("Last-Event-ID" = Option<String>, Header)), responses(
    (status = 200, description = "`text/event-stream` of the reply's remaining events."),
    (status = 400, description = "`invalid_event_id`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`: no such conversation or reply.", body = Problem,
        content_type = "application/problem+json"),
    (status = 429, description = "`too_many_streams`: the user follows as many replies at once as allowed.",
        body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn resume(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
    Query(q): Query<ResumeQuery>,
    headers: HeaderMap,
) -> Result<Response, ConversationError> {
    let header = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let last = header.or(q.last_event_id.as_deref());
    let slot = s.service.open_stream(me.id())?;
    Ok(sse(held(s.service.resume(me.id(), id, last).await?, slot)))
}
