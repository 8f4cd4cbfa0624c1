//! What the auth service does, independent of HTTP.

use std::sync::Arc;
use std::time::Duration;

use kit::Timestamp;
use kit::api::{Page, PageQuery};
use kit::authn::{API_KEY_PREFIX, CredentialKind, Identity, Introspection};
use kit::cache::Cache;
use kit::tokens::Jwks;
use uuid::Uuid;

use crate::config::{AuthConfig, FirstAdmin};
use crate::error::AuthError;
use crate::mail::Mailer;
use crate::models::*;
use crate::password::Hasher;
use crate::policy::{self, Checks};
use crate::secrets::{self, REFRESH_TOKEN_PREFIX, RESET_TOKEN_PREFIX};
use crate::signing::Signer;
use crate::store::{NewApiKey, NewResetToken, NewSession, NewUserRecord, SessionRecord, Store, UserRecord};

mod admin;

const API_KEY_NAME_MAX: usize = 64;
const API_KEY_MAX_DAYS: u32 = 3650;
/// Characters of an API key kept in clear to recognise it: the prefix and 8 of its 43 random
/// characters (48 of 256 bits, useless for guessing the rest).
const API_KEY_SHOWN: usize = API_KEY_PREFIX.len() + 8;
/// A key's `last_used_at` is written at most this often, so a busy key does not write per request.
const API_KEY_TOUCH_INTERVAL: time::Duration = time::Duration::minutes(1);

/// A user to create outside the API (the `ollamanet users create` command, `first_admin`).
/// Not `Debug`: it holds a password.
#[derive(Clone)]
pub struct NewUser {
    pub email: String,
    pub username: String,
    pub password: String,
    /// Admin and User roles instead of User alone.
    pub admin: bool,
}

/// A fresh password-reset token: `token` goes only into the mail, `hash` into the database.
struct ResetToken {
    token: String,
    hash: String,
    created_at: Timestamp,
    expires_at: Timestamp,
}

impl ResetToken {
    fn record(&self) -> NewResetToken<'_> {
        NewResetToken { token_hash: &self.hash, expires_at: self.expires_at }
    }
}

#[derive(Clone, Copy)]
enum ResetMail {
    /// The user asked for it.
    Forgotten,
    ByAdmin,
    /// The account was created without a password.
    NewAccount,
    /// So many wrong passwords were tried that the password alone no longer signs in.
    TooManyFailures,
}

pub struct AuthService {
    store: Store,
    hasher: Hasher,
    signer: Signer,
    mailer: Arc<dyn Mailer>,
    cache: Cache,
    config: AuthConfig,
}

fn span(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// Most refresh tokens a grace-window answer follows to reach the newest of its session.
const GRACE_HOPS: usize = 4;
/// Most times a password attempt is re-counted because a concurrent attempt counted first.
const CLAIM_TRIES: usize = 8;

/// Seconds until `until`, rounded up, for `Retry-After`.
fn seconds_until(until: Timestamp, now: Timestamp) -> u64 {
    u64::try_from((until - now).whole_seconds() + 1).unwrap_or(1)
}

/// The admin's lock running on the account, if any.
fn admin_lock(user: &UserRecord, now: Timestamp) -> Option<Timestamp> {
    user.locked_until.filter(|until| user.locked_by_admin && *until > now)
}

/// Whether the account may be used now: not locked by an admin, not deactivated. Failed
/// sign-ins do not count here: they slow down and finally stop new sign-ins with the password
/// (see `check_password`), but if they ended sessions or refreshes, anyone who knows a username
/// could sign its owner out by guessing wrong passwords.
fn check_usable(user: &UserRecord, now: Timestamp) -> Result<(), AuthError> {
    if let Some(until) = admin_lock(user, now) {
        return Err(AuthError::AccountLocked { retry_after_secs: seconds_until(until, now) });
    }
    if !user.is_active {
        return Err(AuthError::AccountInactive);
    }
    Ok(())
}

/// Whether existing credentials keep working (for introspection): as `check_usable`, and the
/// account not deleted.
fn credentials_honoured(user: &UserRecord, now: Timestamp) -> bool {
    user.deleted_at.is_none() && check_usable(user, now).is_ok()
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn require_access_token(identity: &Identity) -> Result<(), AuthError> {
    match identity.credential {
        CredentialKind::AccessToken => Ok(()),
        CredentialKind::ApiKey => Err(AuthError::AccessTokenRequired),
    }
}

impl AuthService {
    pub fn new(store: Store, signer: Signer, mailer: Arc<dyn Mailer>, cache: Cache, config: AuthConfig) -> Self {
        Self { hasher: Hasher::new(config.hash_concurrency), store, signer, mailer, cache, config }
    }

    // ---- accounts ----

    pub async fn register(&self, req: RegisterRequest) -> Result<TokenResponse, AuthError> {
        let now = Timestamp::now();
        let id = Uuid::now_v7();
        let (refresh_token, session) = self.new_session(id, Uuid::now_v7(), now);
        self.add_user(id, &req.username, &req.email, &req.password, &[kit::authn::USER_ROLE], Some(&session)).await?;
        let user = self.user(id).await?;
        self.token_response(&user, refresh_token, now)
    }

    pub async fn create_user(&self, user: NewUser) -> Result<Uuid, AuthError> {
        let roles: &[&str] =
            if user.admin { &[kit::authn::ADMIN_ROLE, kit::authn::USER_ROLE] } else { &[kit::authn::USER_ROLE] };
        let id = Uuid::now_v7();
        self.add_user(id, &user.username, &user.email, &user.password, roles, None).await?;
        Ok(id)
    }

    /// Creates the configured first admin unless a user already has that e-mail address.
    pub async fn ensure_first_admin(&self, admin: &FirstAdmin) -> Result<(), AuthError> {
        if self.store.user_by_email(&normalize_email(&admin.email)).await?.is_some() {
            return Ok(());
        }
        let new = NewUser {
            email: admin.email.clone(),
            username: admin.username.clone(),
            password: admin.password.clone(),
            admin: true,
        };
        match self.create_user(new).await {
            Ok(id) => {
                tracing::info!(user_id = %id, username = %admin.username, "created the first admin");
                Ok(())
            }
            // Another instance starting at the same time created it.
            Err(AuthError::EmailTaken) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Validates, hashes and stores a new active account (with its first session, if given).
    async fn add_user(
        &self,
        id: Uuid,
        username: &str,
        email: &str,
        password: &str,
        roles: &[&str],
        session: Option<&NewSession>,
    ) -> Result<(), AuthError> {
        let email = normalize_email(email);
        Checks::default()
            .check("username", policy::username(username))
            .check("email", policy::email(&email))
            .check("password", policy::password(password, self.config.password_min_length, username, &email))
            .finish()?;
        let password_hash = self.hasher.hash(password).await?;
        let now = session.map_or_else(Timestamp::now, |s| s.created_at);
        let new = NewUserRecord {
            id,
            username,
            email: &email,
            password_hash: &password_hash,
            roles,
            is_active: true,
            now,
            reset: None,
            audit: None,
        };
        self.store.create_user(&new, session).await?;
        self.store.wake_outbox();
        Ok(())
    }

    pub async fn login(&self, req: LoginRequest) -> Result<TokenResponse, AuthError> {
        let login = req.login.trim();
        let user = if login.contains('@') {
            self.store.user_by_email(&normalize_email(login)).await?
        } else {
            self.store.user_by_username(login).await?
        };
        let Some(mut user) = user.filter(|u| u.deleted_at.is_none()) else {
            self.hasher.verify_dummy(&req.password).await?;
            return Err(AuthError::InvalidCredentials);
        };
        let now = Timestamp::now();
        self.check_password(&user, &req.password, AuthError::InvalidCredentials).await?;
        check_usable(&user, now)?;
        let (refresh_token, session) = self.new_session(user.id, Uuid::now_v7(), now);
        self.store.record_login(&session).await?;
        user.last_login_at = Some(now);
        self.token_response(&user, refresh_token, now)
    }

    /// Verifies a password within the account's attempt budget. An admin's lock, a running
    /// wait or a required reset refuse without looking at the password. Otherwise the attempt is
    /// counted as a failure first (see `Store::claim_attempt`); from `lockout_threshold`
    /// failures in a row on, each failure makes the next attempt wait, twice as long each time
    /// up to `lockout_duration`, and at `reset_required_after` the owner is mailed a reset link
    /// and the password alone no longer signs in. The right password clears the count; a
    /// mismatch fails with `mismatch`. Sessions, refreshes and API keys are never touched.
    async fn check_password(&self, user: &UserRecord, password: &str, mismatch: AuthError) -> Result<(), AuthError> {
        let failures = self.claim_attempt(user).await?;
        if self.hasher.verify(password, &user.password_hash).await? {
            self.store.clear_failures(user.id).await?;
            return Ok(());
        }
        if failures == self.config.reset_required_after {
            tracing::warn!(user_id = %user.id, failures, "password sign-in stopped until a reset; the owner is mailed a link");
            if user.is_active {
                self.mail_reset_link(user, ResetMail::TooManyFailures).await?;
            }
        } else if failures >= self.config.lockout_threshold {
            tracing::info!(user_id = %user.id, failures, "failed password attempts in a row; the next one waits");
        }
        Err(mismatch)
    }

    /// Counts one attempt at `user`'s password, or refuses it; returns the failures in a row
    /// the attempt makes if it fails.
    async fn claim_attempt(&self, user: &UserRecord) -> Result<u32, AuthError> {
        let mut seen = (user.failed_logins, user.locked_until, user.locked_by_admin);
        for _ in 0..CLAIM_TRIES {
            let now = Timestamp::now();
            let (failures, locked_until, locked_by_admin) = seen;
            let failures = u32::try_from(failures).unwrap_or(0);
            let running = locked_until.filter(|until| *until > now);
            if let Some(until) = running.filter(|_| locked_by_admin) {
                return Err(AuthError::AccountLocked { retry_after_secs: seconds_until(until, now) });
            }
            if failures >= self.config.reset_required_after {
                return Err(AuthError::PasswordResetRequired);
            }
            if let Some(until) = running {
                return Err(AuthError::LoginThrottled { retry_after_secs: seconds_until(until, now) });
            }
            let next = failures + 1;
            let wait_until = (next >= self.config.lockout_threshold).then(|| now + self.wait_after(next));
            let seen_failures = i32::try_from(failures).unwrap_or(i32::MAX);
            if self.store.claim_attempt(user.id, seen_failures, now, wait_until).await? {
                return Ok(next);
            }
            // Another attempt counted first: judge this one by the account as it is now.
            let current = self.store.user(user.id).await?.ok_or(AuthError::InvalidCredentials)?;
            seen = (current.failed_logins, current.locked_until, current.locked_by_admin);
        }
        Err(AuthError::LoginThrottled { retry_after_secs: 1 })
    }

    /// How long the next attempt waits after `failures` failures in a row (at least the
    /// threshold): the first wait, doubled for each failure since, at most `lockout_duration`.
    fn wait_after(&self, failures: u32) -> time::Duration {
        let doublings = failures.saturating_sub(self.config.lockout_threshold).min(30);
        let wait = self.config.lockout_first_wait.saturating_mul(1 << doublings);
        span(wait.min(self.config.lockout_duration))
    }

    pub async fn me(&self, identity: &Identity) -> Result<UserView, AuthError> {
        Ok(UserView::from(&self.user(identity.user_id).await?))
    }

    pub async fn update_profile(&self, identity: &Identity, req: UpdateProfileRequest) -> Result<UserView, AuthError> {
        let user = self.user(identity.user_id).await?;
        let username = req.username.filter(|u| *u != user.username);
        let email = req.email.map(|e| normalize_email(&e)).filter(|e| *e != user.email);
        let mut checks = Checks::default();
        if let Some(u) = &username {
            checks.check("username", policy::username(u));
        }
        if let Some(e) = &email {
            checks.check("email", policy::email(e));
            if req.current_password.is_none() {
                checks.check("current_password", Err(("required", "is required to change the e-mail address".into())));
            }
        }
        checks.finish()?;
        if username.is_none() && email.is_none() {
            return Ok(UserView::from(&user));
        }
        if let (Some(_), Some(password)) = (&email, &req.current_password) {
            self.check_password(&user, password, AuthError::InvalidCurrentPassword).await?;
        }
        self.store.update_profile(user.id, username.as_deref(), email.as_deref(), Timestamp::now()).await?;
        self.store.wake_outbox();
        Ok(UserView::from(&self.user(user.id).await?))
    }

    /// A live (not deleted) user.
    async fn user(&self, id: Uuid) -> Result<UserRecord, AuthError> {
        self.store.user(id).await?.filter(|u| u.deleted_at.is_none()).ok_or(AuthError::NotFound("user"))
    }

    // ---- sessions ----

    fn new_session(&self, user_id: Uuid, family_id: Uuid, now: Timestamp) -> (String, NewSession) {
        let token = secrets::generate(REFRESH_TOKEN_PREFIX);
        let session = NewSession {
            token_hash: secrets::digest(&token),
            family_id,
            user_id,
            created_at: now,
            expires_at: now + span(self.config.refresh_token_ttl),
        };
        (token, session)
    }

    fn token_response(
        &self,
        user: &UserRecord,
        refresh_token: String,
        now: Timestamp,
    ) -> Result<TokenResponse, AuthError> {
        Ok(TokenResponse {
            access_token: self.signer.issue(user, now)?,
            token_type: "Bearer".into(),
            expires_in: self.signer.ttl().as_secs(),
            refresh_token,
            refresh_expires_in: self.config.refresh_token_ttl.as_secs(),
            user: UserView::from(user),
        })
    }

    /// Exchanges a refresh token for a new pair. A token is good once: presenting it again
    /// means it was copied, so its whole family (the thief's and the owner's tokens) dies —
    /// unless it comes within `refresh_grace` of its use, as when several requests of one
    /// browser refresh at once: then the answer is the token it was exchanged for.
    pub async fn refresh(&self, refresh_token: Option<&str>) -> Result<TokenResponse, AuthError> {
        let presented = refresh_token.ok_or(AuthError::InvalidRefreshToken)?;
        let hash = secrets::digest(presented);
        let now = Timestamp::now();
        let current = self.store.session(&hash).await?.ok_or(AuthError::InvalidRefreshToken)?;
        if current.used_at.is_some() {
            return self.successor(presented, current, now).await;
        }
        if current.revoked_at.is_some() {
            return Err(AuthError::InvalidRefreshToken);
        }
        if current.expires_at <= now {
            return Err(AuthError::RefreshTokenExpired);
        }
        let user = self.user(current.user_id).await.map_err(|_| AuthError::InvalidRefreshToken)?;
        check_usable(&user, now)?;
        let (refresh_token, next) = self.new_session(user.id, current.family_id, now);
        let seal = secrets::seal(presented, &refresh_token).ok_or_else(|| AuthError::internal("unsealable token"))?;
        if !self.store.rotate_session(&hash, &seal, &next).await? {
            // A concurrent request rotated the same token first.
            let current = self.store.session(&hash).await?.ok_or(AuthError::InvalidRefreshToken)?;
            return self.successor(presented, current, now).await;
        }
        self.token_response(&user, refresh_token, now)
    }

    /// The answer to a used refresh token: within the grace window, the newest token of its
    /// session (following the seals from token to successor); otherwise, or when that session
    /// has ended, the family is revoked as stolen. (A used token is reported as reused even once
    /// its family is revoked, so that every replay gets the same answer.)
    async fn successor(
        &self,
        presented: &str,
        mut record: SessionRecord,
        now: Timestamp,
    ) -> Result<TokenResponse, AuthError> {
        let family_id = record.family_id;
        let grace = span(self.config.refresh_grace);
        let mut presented = presented.to_owned();
        for _ in 0..GRACE_HOPS {
            let (Some(used_at), Some(seal)) = (record.used_at, record.successor_seal.as_deref()) else { break };
            if record.revoked_at.is_some() || now - used_at > grace {
                break;
            }
            let Some(next) = secrets::unseal(&presented, seal) else { break };
            let Some(next_record) = self.store.session(&secrets::digest(&next)).await? else { break };
            if next_record.used_at.is_none() {
                if next_record.revoked_at.is_some() || next_record.expires_at <= now {
                    break;
                }
                let user = self.user(next_record.user_id).await.map_err(|_| AuthError::InvalidRefreshToken)?;
                check_usable(&user, now)?;
                return self.token_response(&user, next, now);
            }
            (presented, record) = (next, next_record);
        }
        self.reused(family_id, now).await
    }

    async fn reused<T>(&self, family_id: Uuid, now: Timestamp) -> Result<T, AuthError> {
        self.store.revoke_family(family_id, now).await?;
        tracing::warn!(%family_id, "refresh token reused; its family is revoked");
        Err(AuthError::RefreshTokenReused)
    }

    /// Ends the session of `refresh_token` (unknown tokens are ignored: the caller wants it gone).
    pub async fn logout(&self, refresh_token: Option<&str>) -> Result<(), AuthError> {
        let Some(token) = refresh_token else { return Ok(()) };
        if let Some(session) = self.store.session(&secrets::digest(token)).await? {
            self.store.revoke_family(session.family_id, Timestamp::now()).await?;
        }
        Ok(())
    }

    /// Ends every session of the caller and kills their access tokens.
    pub async fn logout_all(&self, identity: &Identity) -> Result<(), AuthError> {
        require_access_token(identity)?;
        self.store.end_all_sessions(identity.user_id, Timestamp::now()).await?;
        self.access_changed(identity.user_id).await;
        Ok(())
    }

    /// Makes a change to a user's access effective everywhere at once: authenticators re-read
    /// the user's token version on their next request, and the `user.updated` event goes out.
    async fn access_changed(&self, user_id: Uuid) {
        self.cache.delete(&kit::authn::cache_key_user(user_id)).await;
        self.store.wake_outbox();
    }

    // ---- passwords ----

    pub async fn change_password(
        &self,
        identity: &Identity,
        req: ChangePasswordRequest,
    ) -> Result<TokenResponse, AuthError> {
        require_access_token(identity)?;
        let user = self.user(identity.user_id).await?;
        let now = Timestamp::now();
        self.check_password(&user, &req.current_password, AuthError::InvalidCurrentPassword).await?;
        let hash = self.new_password_hash(&user, &req.new_password).await?;
        let (refresh_token, session) = self.new_session(user.id, Uuid::now_v7(), now);
        self.store.change_password(&hash, &session).await?;
        self.access_changed(user.id).await;
        self.token_response(&self.user(user.id).await?, refresh_token, now)
    }

    async fn new_password_hash(&self, user: &UserRecord, password: &str) -> Result<String, AuthError> {
        Checks::default()
            .check(
                "new_password",
                policy::password(password, self.config.password_min_length, &user.username, &user.email),
            )
            .finish()?;
        self.hasher.hash(password).await
    }

    /// Mails a reset link when the address belongs to an active account. The caller learns
    /// nothing either way: the answer is the same and the mail goes out in the background.
    pub async fn forgot_password(&self, req: ForgotPasswordRequest) -> Result<(), AuthError> {
        let email = normalize_email(&req.email);
        Checks::default().check("email", policy::email(&email)).finish()?;
        let Some(user) = self.store.user_by_email(&email).await? else { return Ok(()) };
        if user.deleted_at.is_some() || !user.is_active {
            return Ok(());
        }
        self.mail_reset_link(&user, ResetMail::Forgotten).await
    }

    /// Stores a new reset token for `user` and mails them the link.
    async fn mail_reset_link(&self, user: &UserRecord, why: ResetMail) -> Result<(), AuthError> {
        let reset = self.new_reset_token(Timestamp::now());
        self.store.create_reset_token(user.id, &reset.hash, reset.created_at, reset.expires_at).await?;
        self.send_reset_mail(user.id, &user.username, &user.email, why, &reset.token);
        Ok(())
    }

    fn new_reset_token(&self, now: Timestamp) -> ResetToken {
        let token = secrets::generate(RESET_TOKEN_PREFIX);
        ResetToken {
            hash: secrets::digest(&token),
            token,
            created_at: now,
            expires_at: now + span(self.config.reset_token_ttl),
        }
    }

    /// Mails the reset link in the background, so that the answer does not wait for (or reveal)
    /// the mail server.
    fn send_reset_mail(&self, user_id: Uuid, username: &str, to: &str, why: ResetMail, token: &str) {
        let (base, page) = (self.config.public_url.trim_end_matches('/'), kit::api::RESET_PASSWORD_PAGE);
        let link = format!("{base}{page}?token={token}");
        let minutes = self.config.reset_token_ttl.as_secs().div_ceil(60);
        let (subject, reason, otherwise) = match why {
            ResetMail::Forgotten => (
                "Reset your OllamaNet password",
                "Someone asked to reset the password of your OllamaNet account. To choose a new password",
                "If it was not you, ignore this mail: your password stays as it is.",
            ),
            ResetMail::ByAdmin => (
                "Reset your OllamaNet password",
                "An administrator asked you to choose a new password for your OllamaNet account. To choose it",
                "Your current password keeps working until you set a new one.",
            ),
            ResetMail::NewAccount => (
                "Your OllamaNet account",
                "An administrator created an OllamaNet account for you. To choose your password",
                "If the link has expired, ask for a new one with \"forgot password\".",
            ),
            ResetMail::TooManyFailures => (
                "Choose a new OllamaNet password",
                "Wrong passwords were tried many times in a row to sign in to your OllamaNet account, so the \
                 password alone no longer signs in to it; where you are signed in already, you stay signed in. \
                 To sign in again, choose a new password",
                "If the link has expired, ask for a new one with \"forgot password\".",
            ),
        };
        let body = format!(
            "Hello {username},\n\n{reason}, open this link within {minutes} minutes:\n\n{link}\n\n{otherwise}\n"
        );
        let (mailer, to) = (self.mailer.clone(), to.to_owned());
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&to, subject, &body).await {
                tracing::warn!(%user_id, error = %e, "password-reset mail not sent");
            }
        });
    }

    pub async fn reset_password(&self, req: ResetPasswordRequest) -> Result<(), AuthError> {
        let hash = secrets::digest(&req.token);
        let now = Timestamp::now();
        let user_id = self.store.reset_token_user(&hash, now).await?.ok_or(AuthError::InvalidResetToken)?;
        let user = self.user(user_id).await.map_err(|_| AuthError::InvalidResetToken)?;
        if !user.is_active {
            return Err(AuthError::InvalidResetToken);
        }
        let password_hash = self.new_password_hash(&user, &req.new_password).await?;
        if !self.store.reset_password(&hash, user.id, &password_hash, now).await? {
            return Err(AuthError::InvalidResetToken);
        }
        self.access_changed(user.id).await;
        Ok(())
    }

    // ---- API keys ----

    pub async fn api_keys(&self, identity: &Identity, query: &PageQuery) -> Result<Page<ApiKeyView>, AuthError> {
        require_access_token(identity)?;
        let limit = query.limit();
        let after = match query.cursor.as_deref().map(Uuid::parse_str) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => return Err(AuthError::field("cursor", "invalid_cursor", "is not a cursor of this list")),
        };
        let rows = self.store.api_keys(identity.user_id, after, limit + 1).await?;
        Ok(Page::from_rows(rows, limit, |k| k.id.to_string()))
    }

    pub async fn create_api_key(
        &self,
        identity: &Identity,
        req: CreateApiKeyRequest,
    ) -> Result<CreatedApiKey, AuthError> {
        require_access_token(identity)?;
        let name = req.name.trim();
        let mut checks = Checks::default();
        let name_len = name.chars().count();
        if name_len == 0 || name_len > API_KEY_NAME_MAX || name.chars().any(char::is_control) {
            checks.check(
                "name",
                Err(("invalid_length", format!("must be 1 to {API_KEY_NAME_MAX} printable characters"))),
            );
        }
        if req.expires_in_days.is_some_and(|d| !(1..=API_KEY_MAX_DAYS).contains(&d)) {
            checks.check("expires_in_days", Err(("out_of_range", format!("must be 1 to {API_KEY_MAX_DAYS}"))));
        }
        checks.finish()?;
        let key = secrets::generate(API_KEY_PREFIX);
        let now = Timestamp::now();
        let new = NewApiKey {
            id: Uuid::now_v7(),
            user_id: identity.user_id,
            name,
            prefix: &key[..API_KEY_SHOWN],
            key_hash: &kit::authn::api_key_hash(&key),
            created_at: now,
            expires_at: req.expires_in_days.map(|d| now + time::Duration::days(i64::from(d))),
        };
        self.store.create_api_key(&new).await?;
        let view = ApiKeyView {
            id: new.id,
            name: name.to_owned(),
            prefix: new.prefix.to_owned(),
            created_at: now,
            last_used_at: None,
            expires_at: new.expires_at,
        };
        Ok(CreatedApiKey { view, key })
    }

    pub async fn revoke_api_key(&self, identity: &Identity, id: Uuid) -> Result<(), AuthError> {
        require_access_token(identity)?;
        let hash = self.store.delete_api_key(identity.user_id, id).await?.ok_or(AuthError::NotFound("API key"))?;
        // Authenticators cache a key's identity; without this it would keep working for a while.
        self.cache.delete(&kit::authn::cache_key_api_key(&hash)).await;
        Ok(())
    }

    // ---- tokens ----

    pub fn jwks(&self) -> Jwks {
        self.signer.jwks().clone()
    }

    /// What a credential stands for now, or `None` when it is not genuine (forged, expired,
    /// revoked or unknown). A genuine access token introspects even when its token version is
    /// stale: the caller compares versions.
    pub async fn introspect(&self, credential: &str) -> Result<Option<Introspection>, AuthError> {
        let now = Timestamp::now();
        let (user_id, credential_kind) = if credential.starts_with(API_KEY_PREFIX) {
            let Some(key) = self.store.api_key_by_hash(&kit::authn::api_key_hash(credential)).await? else {
                return Ok(None);
            };
            if key.expires_at.is_some_and(|at| at <= now) {
                return Ok(None);
            }
            self.store.touch_api_key(key.id, now, now - API_KEY_TOUCH_INTERVAL).await?;
            (key.user_id, CredentialKind::ApiKey)
        } else {
            match self.signer.verify(credential) {
                Ok(claims) => (claims.sub, CredentialKind::AccessToken),
                Err(_) => return Ok(None),
            }
        };
        let Some(user) = self.store.user(user_id).await? else { return Ok(None) };
        Ok(Some(Introspection {
            active: credentials_honoured(&user, now),
            identity: Identity {
                user_id: user.id,
                email: user.email,
                username: user.username,
                roles: user.roles,
                token_version: user.token_version,
                credential: credential_kind,
            },
        }))
    }
}
