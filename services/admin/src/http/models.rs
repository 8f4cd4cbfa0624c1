//! `/api/admin/models`: the catalog.

use axum::extract::State;
use axum::http::StatusCode;
use kit::Problem;
use kit::api::{BodyErrors, CredentialErrors, Page};
use kit::http::{Json, Path, Query};
use ollamanet_catalog::{Access, ListQuery, Model, ModelChange, ModelFields, Visibility};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{AdminCaller, AppState};
use crate::error::AdminError;

/// A new catalog entry.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    /// `[namespace/]model[:tag]`; stored lower-case, with `:latest` when no tag is given.
    pub name: String,
    #[serde(flatten)]
    pub fields: ModelFields,
    /// Public unless said otherwise.
    #[serde(default)]
    pub access: Option<Access>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelName {
    pub name: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete for good (only a model deleted before); otherwise it can be restored.
    pub purge: Option<bool>,
}

/// The canonical form of a name from the path or a body.
fn canonical(name: &str) -> Result<String, AdminError> {
    // A name that cannot be a model's names none.
    ollamanet_catalog::normalize_name(name).map_err(|_| ollamanet_catalog::CatalogError::NotFound("model").into())
}

/// Every catalog model (deleted ones with `deleted=true`), searched and filtered like explore.
#[utoipa::path(get, path = "/api/admin/models", tag = "catalog", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, description = "A page of models.", body = Page<Model>),
    (status = 400, description = "`invalid_cursor`, `invalid_query`.", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "`forbidden`: not an admin.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn list(
    State(s): State<AppState>,
    _: AdminCaller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<Model>>, AdminError> {
    if q.installed.is_some() {
        return Err(AdminError::BadRequest("invalid_query", "`installed` is explore's filter".into()));
    }
    let visibility = Visibility::All { deleted: q.deleted.unwrap_or(false) };
    let (items, next_cursor) = s.catalog.models(&visibility, &q.search()?).await?;
    Ok(Json(Page { items, next_cursor }))
}

/// Add a model to the catalog.
#[utoipa::path(post, path = "/api/admin/models", tag = "catalog", security(("bearer" = [])), request_body = CreateModel, responses(
    (status = 201, description = "Created.", body = Model),
    (status = 409, description = "`model_exists`.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`invalid_name`, `too_long`, `invalid_url`, `invalid_item`, …).",
        body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn create(
    State(s): State<AppState>,
    AdminCaller(who): AdminCaller,
    Json(req): Json<CreateModel>,
) -> Result<(StatusCode, Json<Model>), AdminError> {
    let model = s.catalog.create_model(&who.identity, &req.name, req.fields, req.access.unwrap_or_default()).await?;
    Ok((StatusCode::CREATED, Json(model)))
}

/// One model, deleted or not, with every field.
#[utoipa::path(get, path = "/api/admin/models/{name}", tag = "catalog", security(("bearer" = [])),
    params(("name" = String, Path, description = "The model's name; may hold `/`.")), responses(
    (status = 200, description = "The model.", body = Model),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn get(
    State(s): State<AppState>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> Result<Json<Model>, AdminError> {
    Ok(Json(s.catalog.model(&canonical(&name)?).await?))
}

/// Change some fields of a model (and its access rule); `null` clears a field.
#[utoipa::path(patch, path = "/api/admin/models/{name}", tag = "catalog", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = ModelChange, responses(
    (status = 200, description = "The model after the change.", body = Model),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`model_deleted`: restore it first.", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn update(
    State(s): State<AppState>,
    AdminCaller(who): AdminCaller,
    Path(name): Path<String>,
    Json(change): Json<ModelChange>,
) -> Result<Json<Model>, AdminError> {
    Ok(Json(s.catalog.update_model(&who.identity, &canonical(&name)?, change).await?))
}

/// Delete a model: it leaves explore and can no longer be used, until restored; with
/// `purge=true`, a deleted model is removed for good.
#[utoipa::path(delete, path = "/api/admin/models/{name}", tag = "catalog", security(("bearer" = [])),
    params(("name" = String, Path), DeleteQuery), responses(
    (status = 204, description = "Deleted."),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`model_deleted` (deleting twice), `model_not_deleted` (purging a live model).",
        body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn delete(
    State(s): State<AppState>,
    AdminCaller(who): AdminCaller,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, AdminError> {
    let name = canonical(&name)?;
    if q.purge.unwrap_or(false) {
        s.catalog.purge_model(&who.identity, &name).await?;
    } else {
        s.catalog.delete_model(&who.identity, &name).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Bring back a deleted model.
#[utoipa::path(post, path = "/api/admin/models/restore", tag = "catalog", security(("bearer" = [])), request_body = ModelName, responses(
    (status = 200, description = "The model, live again.", body = Model),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`model_not_deleted`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn restore(
    State(s): State<AppState>,
    AdminCaller(who): AdminCaller,
    Json(req): Json<ModelName>,
) -> Result<Json<Model>, AdminError> {
    Ok(Json(s.catalog.restore_model(&who.identity, &canonical(&req.name)?).await?))
}

/// Fill a model's fields from what the engines report (`/api/show`): format, family, parameter
/// size and count, quantization, architecture, file type, context length, license, template,
/// modelfile, capabilities. Fields the engines do not know are left as they were.
#[utoipa::path(post, path = "/api/admin/models/enrich", tag = "catalog", security(("bearer" = [])), request_body = ModelName, responses(
    (status = 200, description = "The model after the change.", body = Model),
    (status = 404, description = "`not_found` (not in the catalog), `model_not_found` (no engine has it).",
        body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`model_deleted`.", body = Problem, content_type = "application/problem+json"),
    (status = 502, description = "`inference_failed`.", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "`inference_unavailable`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
pub async fn enrich(
    State(s): State<AppState>,
    AdminCaller(who): AdminCaller,
    Json(req): Json<ModelName>,
) -> Result<Json<Model>, AdminError> {
    let name = canonical(&req.name)?;
    s.catalog.model(&name).await?;
    let change = crate::enrich::from_engine(&s.inference, &who, &name).await?;
    Ok(Json(s.catalog.update_model(&who.identity, &name, change).await?))
}
