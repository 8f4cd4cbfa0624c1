//! `/api/admin/tags`.

use axum::extract::State;
use axum::http::StatusCode;
use kit::Problem;
use kit::api::{BodyErrors, CredentialErrors};
use kit::http::{Json, Path, Query};
use ollamanet_catalog::{Tag, TagCount, Visibility};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{AdminCaller, AppState};
use crate::error::AdminError;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagName {
    /// 1–40 characters, unique whatever the case.
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagModel {
    pub model: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TagModelQuery {
    pub model: String,
}

/// Every tag, with how many live models carry it.
#[utoipa::path(get, path = "/api/admin/tags", tag = "tags", security(("bearer" = [])), responses(
    (status = 200, description = "Every tag by name.", body = Vec<TagCount>),
    CredentialErrors,
))]
pub async fn list(State(s): State<AppState>, _: AdminCaller) -> Result<Json<Vec<TagCount>>, AdminError> {
    Ok(Json(s.catalog.tags(&Visibility::All { deleted: false }).await?))
}

#[utoipa::path(post, path = "/api/admin/tags", tag = "tags", security(("bearer" = [])), request_body = TagName, responses(
    (status = 201, description = "Created.", body = Tag),
    (status = 409, description = "`tag_exists`.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`required`, `too_long`, `invalid_characters`).", body = Problem,
        content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn create(
    State(s): State<AppState>,
    AdminCaller(who): AdminCaller,
    Json(req): Json<TagName>,
) -> Result<(StatusCode, Json<Tag>), AdminError> {
    Ok((StatusCode::CREATED, Json(s.catalog.create_tag(&who.identity, &req.name).await?)))
}

#[utoipa::path(patch, path = "/api/admin/tags/{id}", tag = "tags", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = TagName, responses(
    (status = 200, description = "Renamed.", body = Tag),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`tag_exists`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn rename(
    State(s): State<AppState>,
    AdminCaller(who): AdminCaller,
    Path(id): Path<Uuid>,
    Json(req): Json<TagName>,
) -> Result<Json<Tag>, AdminError> {
    Ok(Json(s.catalog.rename_tag(&who.identity, id, &req.name).await?))
}

/// Delete a tag; it comes off every model.
#[utoipa::path(delete, path = "/api/admin/tags/{id}", tag = "tags", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 204, description = "Deleted."),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn delete(
    State(s): State<AppState>,
    AdminCaller(who): AdminCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AdminError> {
    s.catalog.delete_tag(&who.identity, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Put the tag on a model (idempotent).
#[utoipa::path(post, path = "/api/admin/tags/{id}/models", tag = "tags", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = TagModel, responses(
    (status = 204, description = "The model carries the tag."),
    (status = 404, description = "`not_found`: no such tag or model.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn assign(
    State(s): State<AppState>,
    AdminCaller(who): AdminCaller,
    Path(id): Path<Uuid>,
    Json(req): Json<TagModel>,
) -> Result<StatusCode, AdminError> {
    s.catalog.assign_tag(&who.identity, id, &req.model).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take the tag off a model (idempotent).
#[utoipa::path(delete, path = "/api/admin/tags/{id}/models", tag = "tags", security(("bearer" = [])),
    params(("id" = Uuid, Path), TagModelQuery), responses(
    (status = 204, description = "The model does not carry the tag."),
    (status = 404, description = "`not_found`: no such tag or model.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn unassign(
    State(s): State<AppState>,
    AdminCaller(who): AdminCaller,
    Path(id): Path<Uuid>,
    Query(q): Query<TagModelQuery>,
) -> Result<StatusCode, AdminError> {
    s.catalog.unassign_tag(&who.identity, id, &q.model).await?;
    Ok(StatusCode::NO_CONTENT)
}
