//! `/api/folders`.

use axum::extract::State;
use axum::http::StatusCode;
use kit::Problem;
use kit::api::{BodyErrors, CredentialErrors, Page, PageQuery};
use kit::http::{Json, Path, Query};
use uuid::Uuid;

use super::{AppState, Me};
use crate::error::ConversationError;
use crate::models::{CreateFolder, DeleteFolderQuery, Folder, UpdateFolder};

/// List the caller's folders (the root included), oldest first.
#[utoipa::path(get, path = "/api/folders", tag = "folders", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, description = "A page of folders; `parent_id` null marks the root.", body = Page<Folder>),
    (status = 400, description = "`invalid_cursor`, `invalid_query`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn list(
    State(s): State<AppState>,
    me: Me,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Folder>>, ConversationError> {
    let limit = page.limit();
    let rows = s.service.folders(me.id(), page.cursor.as_deref(), limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |f| f.id.to_string())))
}

/// Create a folder (under the root unless `parent_id` says otherwise).
#[utoipa::path(post, path = "/api/folders", tag = "folders", security(("bearer" = [])), request_body = CreateFolder, responses(
    (status = 201, description = "Created.", body = Folder),
    (status = 404, description = "`not_found`: no such parent folder of the caller's.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`folder_name_taken`.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`required`, `too_long`, `invalid_characters`) or `invalid_body`.",
        body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn create(
    State(s): State<AppState>,
    me: Me,
    Json(req): Json<CreateFolder>,
) -> Result<(StatusCode, Json<Folder>), ConversationError> {
    Ok((StatusCode::CREATED, Json(s.service.create_folder(me.id(), req).await?)))
}

/// Get a folder.
#[utoipa::path(get, path = "/api/folders/{id}", tag = "folders", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "The folder.", body = Folder),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn get(State(s): State<AppState>, me: Me, Path(id): Path<Uuid>) -> Result<Json<Folder>, ConversationError> {
    Ok(Json(s.service.folder(me.id(), id).await?))
}

/// Rename a folder or move it under another (not under itself or a descendant). The root stays.
#[utoipa::path(patch, path = "/api/folders/{id}", tag = "folders", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateFolder, responses(
    (status = 200, description = "The folder after the change.", body = Folder),
    (status = 404, description = "`not_found` (the folder or the new parent).", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`folder_name_taken`, `folder_cycle`, `root_folder`.", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` or `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn update(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateFolder>,
) -> Result<Json<Folder>, ConversationError> {
    Ok(Json(s.service.update_folder(me.id(), id, req).await?))
}

/// Delete a folder: an empty one, or with `recursive=true` everything inside it too.
#[utoipa::path(delete, path = "/api/folders/{id}", tag = "folders", security(("bearer" = [])),
    params(("id" = Uuid, Path), DeleteFolderQuery), responses(
    (status = 204, description = "Deleted."),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`folder_not_empty`, `root_folder`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn delete(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
    Query(q): Query<DeleteFolderQuery>,
) -> Result<StatusCode, ConversationError> {
    s.service.delete_folder(me.id(), id, q.recursive.unwrap_or(false)).await?;
    Ok(StatusCode::NO_CONTENT)
}
