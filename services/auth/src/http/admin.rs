//! `/api/admin/users` and `/api/admin/roles`: the gateway lets only admins through, and every
//! handler checks the role again (`Admin`), so a request that reaches the service some other way
//! gets no further.

use axum::extract::State;
use axum::http::StatusCode;
use kit::Problem;
use kit::api::{BodyErrors, CredentialErrors, Page, PageQuery};
use kit::authn::Admin;
use kit::http::{Json, Path, Query};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use crate::error::AuthError;
use crate::models::*;

// ---- users ----

/// List users (Admin): search, filter, sort, keyset pages.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin users", security(("bearer" = [])),
    params(UserListQuery), responses(
    (status = 200, description = "A page of users in the order of `sort`.", body = Page<AdminUserView>),
    (status = 400, description = "`invalid_query`: an unknown parameter, status or sort, or a limit that is not \
        a number.", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "`forbidden`: the caller is not an Admin.", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`invalid_cursor`, `invalid_length` on `q`).", body = Problem,
        content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn list_users(
    State(s): State<AppState>,
    _: Admin,
    Query(query): Query<UserListQuery>,
) -> Result<Json<Page<AdminUserView>>, AuthError> {
    Ok(Json(s.service.admin_list_users(query).await?))
}

/// Create a user (Admin) with the rules of registration. Without `password` the user gets a mail
/// to choose one.
#[utoipa::path(post, path = "/api/admin/users", tag = "admin users", security(("bearer" = [])),
    request_body = AdminCreateUserRequest, responses(
    (status = 201, description = "Created.", body = AdminUserView),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`username_taken`, `email_taken`.", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (the codes of registration; `unknown_role` on `roles`) or \
        `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
async fn create_user(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Json(req): Json<AdminCreateUserRequest>,
) -> Result<(StatusCode, Json<AdminUserView>), AuthError> {
    Ok((StatusCode::CREATED, Json(s.service.admin_create_user(&admin, req).await?)))
}

/// A user's details (Admin), deleted users included.
#[utoipa::path(get, path = "/api/admin/users/{id}", tag = "admin users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")), responses(
    (status = 200, description = "The user.", body = AdminUserView),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn get_user(State(s): State<AppState>, _: Admin, Path(id): Path<Uuid>) -> Result<Json<AdminUserView>, AuthError> {
    Ok(Json(s.service.admin_user(id).await?))
}

/// Change a user's username or e-mail address (Admin). A new address ends the user's access
/// tokens.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")), request_body = AdminUpdateUserRequest, responses(
    (status = 200, description = "The user afterwards.", body = AdminUserView),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`username_taken`, `email_taken` (with the field), `user_deleted`.", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` or `invalid_body` (`unknown_field`).", body = Problem,
        content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
async fn update_user(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
    Json(req): Json<AdminUpdateUserRequest>,
) -> Result<Json<AdminUserView>, AuthError> {
    Ok(Json(s.service.admin_update_user(&admin, id, req).await?))
}

/// Soft-delete a user (Admin): they can no longer sign in and every credential of theirs stops
/// working. Idempotent.
#[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")), responses(
    (status = 204, description = "Deleted (or already)."),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`self_lockout`: admins cannot delete themselves.", body = Problem,
        content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn delete_user(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AuthError> {
    s.service.admin_delete_user(&admin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a soft-deleted user for good (Admin); `user.deleted` tells the other services to
/// remove the user's data.
#[utoipa::path(post, path = "/api/admin/users/{id}/purge", tag = "admin users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")), responses(
    (status = 204, description = "Purged."),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`user_not_deleted` (delete first), `self_lockout`.", body = Problem,
        content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn purge_user(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AuthError> {
    s.service.admin_purge_user(&admin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lock a user (Admin) for `minutes` or until `until`: sign-ins are refused and every credential
/// of theirs, API keys included, stops working until then or until unlocked.
#[utoipa::path(post, path = "/api/admin/users/{id}/lock", tag = "admin users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")), request_body = LockRequest, responses(
    (status = 200, description = "The user afterwards.", body = AdminUserView),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`self_lockout`, `user_deleted`.", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`out_of_range` on `minutes` or `until`, `required`) or \
        `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
async fn lock_user(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
    Json(req): Json<LockRequest>,
) -> Result<Json<AdminUserView>, AuthError> {
    Ok(Json(s.service.admin_lock_user(&admin, id, req).await?))
}

/// Lift a lock, an admin's or one after failed sign-ins, and clear the failure count (Admin).
#[utoipa::path(post, path = "/api/admin/users/{id}/unlock", tag = "admin users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")), responses(
    (status = 200, description = "The user afterwards.", body = AdminUserView),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`user_deleted`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn unlock_user(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
) -> Result<Json<AdminUserView>, AuthError> {
    Ok(Json(s.service.admin_unlock_user(&admin, id).await?))
}

/// Let a deactivated user sign in again (Admin).
#[utoipa::path(post, path = "/api/admin/users/{id}/activate", tag = "admin users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")), responses(
    (status = 200, description = "The user afterwards.", body = AdminUserView),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`user_deleted`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn activate_user(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
) -> Result<Json<AdminUserView>, AuthError> {
    Ok(Json(s.service.admin_set_active(&admin, id, true).await?))
}

/// Deactivate a user (Admin): sign-ins are refused and every credential stops working until
/// activated again.
#[utoipa::path(post, path = "/api/admin/users/{id}/deactivate", tag = "admin users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")), responses(
    (status = 200, description = "The user afterwards.", body = AdminUserView),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`self_lockout`, `user_deleted`.", body = Problem,
        content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn deactivate_user(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
) -> Result<Json<AdminUserView>, AuthError> {
    Ok(Json(s.service.admin_set_active(&admin, id, false).await?))
}

/// Set a user's exact roles (Admin). The user's access tokens die; their sessions refresh into
/// tokens with the new roles.
#[utoipa::path(put, path = "/api/admin/users/{id}/roles", tag = "admin users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")), request_body = SetRolesRequest, responses(
    (status = 200, description = "The user afterwards.", body = AdminUserView),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`self_lockout` (an admin removing their own Admin role), `user_deleted`.",
        body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`unknown_role`, `out_of_range` on `roles`) or \
        `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
async fn set_roles(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
    Json(req): Json<SetRolesRequest>,
) -> Result<Json<AdminUserView>, AuthError> {
    Ok(Json(s.service.admin_set_roles(&admin, id, req).await?))
}

/// Mail the user a password-reset link (Admin). The link goes only to the user.
#[utoipa::path(post, path = "/api/admin/users/{id}/password-reset", tag = "admin users",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "The user")), responses(
    (status = 202, description = "The mail is on its way.", body = AcceptedResponse),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`user_deleted`, `user_inactive` (a reset link would not work).", body = Problem,
        content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn password_reset(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<AcceptedResponse>), AuthError> {
    s.service.admin_password_reset(&admin, id).await?;
    Ok((StatusCode::ACCEPTED, Json(AcceptedResponse { status: "accepted".into() })))
}

// ---- roles ----

/// List the roles with how many users hold each (Admin).
#[utoipa::path(get, path = "/api/admin/roles", tag = "admin roles", security(("bearer" = [])), params(PageQuery),
    responses(
    (status = 200, description = "A page of roles, by name.", body = Page<RoleView>),
    (status = 400, description = "`invalid_query`.", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn list_roles(
    State(s): State<AppState>,
    _: Admin,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<RoleView>>, AuthError> {
    Ok(Json(s.service.admin_roles(&page).await?))
}

/// Create a role (Admin).
#[utoipa::path(post, path = "/api/admin/roles", tag = "admin roles", security(("bearer" = [])),
    request_body = CreateRoleRequest, responses(
    (status = 201, description = "Created.", body = RoleView),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`role_exists`: a role of that name in any case.", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`invalid_length`, `invalid_format` on `name`) or \
        `invalid_body`.", body = Problem, content_type = "application/problem+json"),
    BodyErrors, CredentialErrors,
))]
async fn create_role(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Json(req): Json<CreateRoleRequest>,
) -> Result<(StatusCode, Json<RoleView>), AuthError> {
    Ok((StatusCode::CREATED, Json(s.service.admin_create_role(&admin, req).await?)))
}

/// Delete a role no user holds (Admin). `Admin` and `User` stay.
#[utoipa::path(delete, path = "/api/admin/roles/{name}", tag = "admin roles", security(("bearer" = [])),
    params(("name" = String, Path, description = "The role (any case)")), responses(
    (status = 204, description = "Deleted."),
    (status = 403, description = "`forbidden`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`role_in_use` (some users hold it), `role_protected` (`Admin`, `User`).",
        body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
async fn delete_role(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, AuthError> {
    s.service.admin_delete_role(&admin, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(purge_user))
        .routes(routes!(lock_user))
        .routes(routes!(unlock_user))
        .routes(routes!(activate_user))
        .routes(routes!(deactivate_user))
        .routes(routes!(set_roles))
        .routes(routes!(password_reset))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(delete_role))
}
