//! Every way an auth operation can fail, and the problem (status and stable `code`) each one is.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kit::{FieldError, Problem};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid fields")]
    Validation(Vec<FieldError>),
    #[error("the username is taken")]
    UsernameTaken,
    #[error("the e-mail address is taken")]
    EmailTaken,
    #[error("invalid login or password")]
    InvalidCredentials,
    #[error("the current password is wrong")]
    InvalidCurrentPassword,
    #[error("the account is locked")]
    AccountLocked { retry_after_secs: u64 },
    #[error("the account is inactive")]
    AccountInactive,
    #[error("too many wrong passwords were tried for this account; wait before the next attempt")]
    LoginThrottled { retry_after_secs: u64 },
    #[error(
        "too many wrong passwords were tried for this account: it signs in again once a new password is chosen with \
         the link mailed to its owner (or a new one from \"forgot password\")"
    )]
    PasswordResetRequired,
    #[error("the refresh token is invalid or revoked")]
    InvalidRefreshToken,
    #[error("the refresh token has expired")]
    RefreshTokenExpired,
    #[error("the refresh token was already used")]
    RefreshTokenReused,
    #[error("the reset token is invalid, expired or used")]
    InvalidResetToken,
    #[error("this operation needs an access token, not an API key")]
    AccessTokenRequired,
    #[error("an admin cannot lock, deactivate, delete or purge their own account, or remove their own Admin role")]
    SelfLockout,
    #[error("the user is deleted")]
    UserDeleted,
    #[error("only a deleted user can be purged; delete it first")]
    UserNotDeleted,
    #[error("the user is inactive")]
    UserInactive,
    #[error("a role with this name exists")]
    RoleExists,
    #[error("the role is held by {holders} users")]
    RoleInUse { holders: i64 },
    #[error("the roles Admin and User cannot be deleted")]
    RoleProtected,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database: {0}")]
    Connect(#[from] kit::db::DbError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl AuthError {
    pub(crate) fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        AuthError::Validation(vec![FieldError::new(field, code, message)])
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        AuthError::Internal(e.to_string())
    }

    pub fn into_problem(self) -> Problem {
        let msg = self.to_string();
        match self {
            AuthError::Validation(errors) => Problem::validation(errors),
            AuthError::UsernameTaken => conflict_on("username", "username_taken", msg),
            AuthError::EmailTaken => conflict_on("email", "email_taken", msg),
            AuthError::InvalidCredentials => Problem::unauthorized("invalid_credentials", msg),
            AuthError::InvalidCurrentPassword => forbidden("invalid_current_password", msg),
            AuthError::AccountLocked { retry_after_secs } => {
                forbidden("account_locked", msg).with_retry_after(retry_after_secs)
            }
            AuthError::AccountInactive => forbidden("account_inactive", msg),
            AuthError::LoginThrottled { retry_after_secs } => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "login_throttled", msg).with_retry_after(retry_after_secs)
            }
            AuthError::PasswordResetRequired => forbidden("password_reset_required", msg),
            AuthError::InvalidRefreshToken => Problem::unauthorized("invalid_refresh_token", msg),
            AuthError::RefreshTokenExpired => Problem::unauthorized("refresh_token_expired", msg),
            AuthError::RefreshTokenReused => Problem::unauthorized("refresh_token_reused", msg),
            AuthError::InvalidResetToken => Problem::bad_request("invalid_reset_token", msg),
            AuthError::AccessTokenRequired => forbidden("access_token_required", msg),
            AuthError::SelfLockout => Problem::conflict("self_lockout", msg),
            AuthError::UserDeleted => Problem::conflict("user_deleted", msg),
            AuthError::UserNotDeleted => Problem::conflict("user_not_deleted", msg),
            AuthError::UserInactive => Problem::conflict("user_inactive", msg),
            AuthError::RoleExists => conflict_on("name", "role_exists", msg),
            AuthError::RoleInUse { .. } => Problem::conflict("role_in_use", msg),
            AuthError::RoleProtected => Problem::conflict("role_protected", msg),
            AuthError::NotFound(what) => Problem::not_found(what),
            AuthError::Database(e) => kit::db::problem(&e),
            AuthError::Connect(e) => {
                tracing::error!(error = %e, "database connection failed");
                Problem::unavailable("database_unavailable", "the database is not reachable; retry shortly")
            }
            AuthError::Config(_) | AuthError::Internal(_) => {
                tracing::error!(error = %msg, "auth internal error");
                Problem::internal()
            }
        }
    }
}

/// A 409 that also names the field, so a form can show it where it belongs.
fn conflict_on(field: &str, code: &str, detail: String) -> Problem {
    let mut problem = Problem::conflict(code, detail.clone());
    problem.errors = vec![FieldError::new(field, code, detail)];
    problem
}

fn forbidden(code: &str, detail: String) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, code, detail)
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        self.into_problem().into_response()
    }
}
