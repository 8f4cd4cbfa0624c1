//! `/api/notes` and `/api/feedback`.

use axum::extract::State;
use axum::http::StatusCode;
use kit::Problem;
use kit::api::{BodyErrors, CredentialErrors};
use kit::http::{Json, Path, Query};
use uuid::Uuid;

use super::{AppState, Me};
use crate::error::ConversationError;
use crate::models::{AnnotationQuery, CreateFeedback, CreateNote, Feedback, Note, UpdateFeedback, UpdateNote};

/// The caller's notes on one reply (`message_id`) or on a whole conversation (`conversation_id`).
#[utoipa::path(get, path = "/api/notes", tag = "notes", security(("bearer" = [])), params(AnnotationQuery), responses(
    (status = 200, description = "Notes, oldest first.", body = Vec<Note>),
    (status = 400, description = "`invalid_query`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn list_notes(
    State(s): State<AppState>,
    me: Me,
    Query(q): Query<AnnotationQuery>,
) -> Result<Json<Vec<Note>>, ConversationError> {
    Ok(Json(s.service.notes(me.id(), &q).await?))
}

/// Highlight a range of a reply, with a note.
#[utoipa::path(post, path = "/api/notes", tag = "notes", security(("bearer" = [])), request_body = CreateNote, responses(
    (status = 201, description = "Created.", body = Note),
    (status = 404, description = "`not_found`: no such reply of the caller's.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`invalid_range`, `not_a_reply`, `too_long`) or `invalid_body`.",
        body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn create_note(
    State(s): State<AppState>,
    me: Me,
    Json(req): Json<CreateNote>,
) -> Result<(StatusCode, Json<Note>), ConversationError> {
    Ok((StatusCode::CREATED, Json(s.service.create_note(me.id(), req).await?)))
}

#[utoipa::path(get, path = "/api/notes/{id}", tag = "notes", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, description = "The note.", body = Note),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn get_note(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
) -> Result<Json<Note>, ConversationError> {
    Ok(Json(s.service.note(me.id(), id).await?))
}

#[utoipa::path(patch, path = "/api/notes/{id}", tag = "notes", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = UpdateNote, responses(
    (status = 200, description = "The note after the change.", body = Note),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` or `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn update_note(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateNote>,
) -> Result<Json<Note>, ConversationError> {
    Ok(Json(s.service.update_note(me.id(), id, req).await?))
}

#[utoipa::path(delete, path = "/api/notes/{id}", tag = "notes", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204, description = "Deleted."),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn delete_note(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ConversationError> {
    s.service.delete_note(me.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's feedback on one reply (`message_id`) or on a whole conversation (`conversation_id`).
#[utoipa::path(get, path = "/api/feedback", tag = "feedback", security(("bearer" = [])), params(AnnotationQuery), responses(
    (status = 200, description = "Feedback, oldest first.", body = Vec<Feedback>),
    (status = 400, description = "`invalid_query`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn list_feedback(
    State(s): State<AppState>,
    me: Me,
    Query(q): Query<AnnotationQuery>,
) -> Result<Json<Vec<Feedback>>, ConversationError> {
    Ok(Json(s.service.feedback_list(me.id(), &q).await?))
}

/// Rate a reply (one rating per reply; change it with PATCH).
#[utoipa::path(post, path = "/api/feedback", tag = "feedback", security(("bearer" = [])), request_body = CreateFeedback, responses(
    (status = 201, description = "Created.", body = Feedback),
    (status = 404, description = "`not_found`: no such reply of the caller's.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`feedback_exists`.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`not_a_reply`, `too_long`) or `invalid_body`.",
        body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn create_feedback(
    State(s): State<AppState>,
    me: Me,
    Json(req): Json<CreateFeedback>,
) -> Result<(StatusCode, Json<Feedback>), ConversationError> {
    Ok((StatusCode::CREATED, Json(s.service.create_feedback(me.id(), req).await?)))
}

#[utoipa::path(get, path = "/api/feedback/{id}", tag = "feedback", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, description = "The feedback.", body = Feedback),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn get_feedback(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
) -> Result<Json<Feedback>, ConversationError> {
    Ok(Json(s.service.feedback(me.id(), id).await?))
}

#[utoipa::path(patch, path = "/api/feedback/{id}", tag = "feedback", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = UpdateFeedback, responses(
    (status = 200, description = "The feedback after the change.", body = Feedback),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` or `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn update_feedback(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateFeedback>,
) -> Result<Json<Feedback>, ConversationError> {
    Ok(Json(s.service.update_feedback(me.id(), id, req).await?))
}

#[utoipa::path(delete, path = "/api/feedback/{id}", tag = "feedback", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204, description = "Deleted."),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn delete_feedback(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ConversationError> {
    s.service.delete_feedback(me.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
