//! `/api/conversations`: the conversations themselves.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit::Problem;
use kit::api::{BodyErrors, CredentialErrors, Page};
use kit::http::{Json, Path, Query};
use uuid::Uuid;

use super::{AppState, Me};
use crate::error::ConversationError;
use crate::models::{
    Conversation, ConversationExport, CreateConversation, ExportQuery, ImportQuery, ListConversations,
    UpdateConversation,
};
use crate::store::Keyset;

/// List the caller's conversations, most recently active first; `q` searches titles and
/// messages (every word must occur).
#[utoipa::path(get, path = "/api/conversations", tag = "conversations", security(("bearer" = [])),
    params(ListConversations), responses(
    (status = 200, description = "A page of conversations.", body = Page<Conversation>),
    (status = 400, description = "`invalid_cursor`, `invalid_query`.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`too_long` on `q`).", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn list(
    State(s): State<AppState>,
    me: Me,
    Query(q): Query<ListConversations>,
) -> Result<Json<Page<Conversation>>, ConversationError> {
    let limit = kit::api::PageQuery { limit: q.limit, cursor: None }.limit();
    let rows = s.service.list_conversations(me.id(), &q, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |c| Keyset { at: c.updated_at, id: c.id }.encode())))
}

/// Start a conversation with a model, in the root folder unless `folder_id` says otherwise.
#[utoipa::path(post, path = "/api/conversations", tag = "conversations", security(("bearer" = [])),
    request_body = CreateConversation, responses(
    (status = 201, description = "Created.", body = Conversation),
    (status = 404, description = "`not_found`: no such folder of the caller's.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`too_many_conversations`: the user's quota.", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` or `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn create(
    State(s): State<AppState>,
    me: Me,
    Json(req): Json<CreateConversation>,
) -> Result<(StatusCode, Json<Conversation>), ConversationError> {
    Ok((StatusCode::CREATED, Json(s.service.create_conversation(me.id(), req).await?)))
}

/// Get a conversation.
#[utoipa::path(get, path = "/api/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "The conversation.", body = Conversation),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn get(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
) -> Result<Json<Conversation>, ConversationError> {
    Ok(Json(s.service.get_conversation(me.id(), id).await?))
}

/// Change a conversation: title, model, system prompt, pin, archive, folder (move), or the
/// branch shown (`active_message_id`).
#[utoipa::path(patch, path = "/api/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateConversation, responses(
    (status = 200, description = "The conversation after the change.", body = Conversation),
    (status = 404, description = "`not_found` (the conversation, folder or message).", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` or `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn update(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateConversation>,
) -> Result<Json<Conversation>, ConversationError> {
    Ok(Json(s.service.update_conversation(me.id(), id, req).await?))
}

/// Delete a conversation and everything in it (a reply being generated is stopped).
#[utoipa::path(delete, path = "/api/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 204, description = "Deleted."),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn delete(State(s): State<AppState>, me: Me, Path(id): Path<Uuid>) -> Result<StatusCode, ConversationError> {
    s.service.delete_conversation(me.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Export a conversation: JSON with every branch (importable), or the active branch as Markdown.
#[utoipa::path(get, path = "/api/conversations/{id}/export", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path), ExportQuery), responses(
    (status = 200, description = "The export, as a download.", body = ConversationExport),
    (status = 400, description = "`invalid_query` (`format` is `json` or `markdown`).", body = Problem,
        content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn export(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ConversationError> {
    let attachment = |ext: &str| format!("attachment; filename=\"conversation-{id}.{ext}\"");
    match q.format.as_deref().unwrap_or("json") {
        "json" => {
            let export = s.service.export(me.id(), id).await?;
            Ok(([(header::CONTENT_DISPOSITION, attachment("json"))], Json(export)).into_response())
        }
        "markdown" | "md" => {
            let (_, markdown) = s.service.export_markdown(me.id(), id).await?;
            let headers = [
                (header::CONTENT_TYPE, "text/markdown; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, attachment("md")),
            ];
            Ok((headers, markdown).into_response())
        }
        _ => Err(ConversationError::BadRequest("invalid_query", "format is json or markdown".into())),
    }
}

/// Import a conversation from an export (JSON): a new conversation with the same branches.
#[utoipa::path(post, path = "/api/conversations/import", tag = "conversations", security(("bearer" = [])),
    params(ImportQuery), request_body = ConversationExport, responses(
    (status = 201, description = "Imported.", body = Conversation),
    (status = 404, description = "`not_found`: no such folder of the caller's.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`too_many_conversations`: the user's quota.", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`unsupported` format, `unknown_parent`, `duplicate`, \
        `too_many`) or `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn import(
    State(s): State<AppState>,
    me: Me,
    Query(q): Query<ImportQuery>,
    Json(export): Json<ConversationExport>,
) -> Result<(StatusCode, Json<Conversation>), ConversationError> {
    Ok((StatusCode::CREATED, Json(s.service.import(me.id(), q.folder_id, export).await?)))
}
