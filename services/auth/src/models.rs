//! The request and response bodies of the auth API.

use kit::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::store::{AdminUserRecord, ApiKeyRecord, RoleCountRecord, UserRecord};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–32 characters of `A-Z a-z 0-9 . _ -`, starting with a letter or digit; unique
    /// regardless of case.
    #[schema(example = "alice")]
    pub username: String,
    #[schema(example = "alice@example.org")]
    pub email: String,
    /// At least `password_min_length` (default 10) and at most 256 characters, not a common
    /// password, not containing the username or the e-mail's local part.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// E-mail address or username.
    #[schema(example = "alice")]
    pub login: String,
    pub password: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Omit to use the `ollamanet_refresh` cookie.
    pub refresh_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The session to end; omit to use the `ollamanet_refresh` cookie.
    pub refresh_token: Option<String>,
    /// End every session of the caller and kill their access tokens; needs a bearer access token.
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    pub username: Option<String>,
    pub email: Option<String>,
    /// Required when `email` changes.
    pub current_password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The token from the reset link.
    pub token: String,
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// 1–64 characters, to recognise the key by.
    #[schema(example = "laptop CLI")]
    pub name: String,
    /// 1–3650; omit for a key that does not expire.
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    /// An access token or an API key.
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            roles: u.roles.clone(),
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// EdDSA-signed JWT (`typ: at+jwt`); send as `Authorization: Bearer …`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque (`onr_…`); single use: every refresh returns a new one. Also set as the
    /// `ollamanet_refresh` cookie.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    pub user: UserView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcceptedResponse {
    #[schema(example = "accepted")]
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The key's first characters, to recognise it; never enough to use it.
    #[schema(example = "onk_Xq3v9a2B")]
    pub prefix: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
}

impl From<ApiKeyRecord> for ApiKeyView {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The full key (`onk_…`). Shown this once: only its hash is stored.
    pub key: String,
}

// ---- administration ----

/// `status=` of the user list. Without it the list holds every user that is not deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Active and not locked.
    Active,
    Inactive,
    /// Locked now, by an admin or after failed sign-ins.
    Locked,
    /// Soft-deleted; only this filter shows them.
    Deleted,
}

/// `sort=` of the user list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserSort {
    /// Newest first.
    #[default]
    Created,
    /// A to Z, regardless of case.
    Username,
    /// A to Z.
    Email,
    /// Most recent first; users who never signed in last.
    LastLogin,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Case-insensitive substring of the username or e-mail address.
    pub q: Option<String>,
    /// Only holders of this role (any case).
    pub role: Option<String>,
    #[param(inline)]
    pub status: Option<UserStatus>,
    #[param(inline)]
    pub sort: Option<UserSort>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page, with the same `sort`.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminCreateUserRequest {
    #[schema(example = "bob")]
    pub username: String,
    #[schema(example = "bob@example.org")]
    pub email: String,
    /// Omit to let the user choose one: the account gets a password nobody knows and the user a
    /// mail with a link to set theirs.
    pub password: Option<String>,
    /// Default `["User"]`.
    pub roles: Option<Vec<String>>,
    /// Default true.
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUpdateUserRequest {
    pub username: Option<String>,
    pub email: Option<String>,
}

/// Give exactly one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockRequest {
    /// 1–525600 (a year).
    pub minutes: Option<u32>,
    /// RFC 3339, in the future and within a year.
    pub until: Option<Timestamp>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesRequest {
    /// The user's roles afterwards, exactly (any case).
    #[schema(example = json!(["User"]))]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    /// 2–32 characters of `A-Z a-z 0-9 - _`; unique regardless of case.
    #[schema(example = "Researcher")]
    pub name: String,
}

/// A user as administrators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminUserView {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
    pub active: bool,
    /// Until when the account is locked; null when it is not locked now.
    pub locked_until: Option<Timestamp>,
    /// Set when the user is soft-deleted.
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
    /// Failed sign-ins in a row since the last success.
    pub failed_logins: i32,
}

impl AdminUserView {
    pub fn new(u: AdminUserRecord, now: Timestamp) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            roles: u.roles,
            active: u.is_active,
            locked_until: u.locked_until.filter(|until| *until > now),
            deleted_at: u.deleted_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_login_at: u.last_login_at,
            failed_logins: u.failed_logins,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoleView {
    pub name: String,
    pub created_at: Timestamp,
    /// Users (not deleted) who hold it.
    pub user_count: i64,
}

impl From<RoleCountRecord> for RoleView {
    fn from(r: RoleCountRecord) -> Self {
        Self { name: r.name, created_at: r.created_at, user_count: r.user_count }
    }
}
