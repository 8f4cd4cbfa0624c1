//! All SQL of the auth service, written once for Postgres and SQLite.
//!
//! Every change that other services must hear about enqueues its event in the same transaction
//! (the outbox); callers wake the relay after the commit.

use kit::Timestamp;
use kit::bus::Event;
use kit::db::{BeginWrite, Db};
use kit::outbox::Outbox;
use kit::with_db;
use serde::Serialize;
use sqlx::{Postgres, Sqlite, Transaction};
use uuid::Uuid;

use crate::error::AuthError;

mod admin;

pub use admin::{AdminUserRecord, ListUsers, NEVER, RoleCountRecord, SortKey, UserChange};

const SOURCE: &str = "auth";

/// Selects the user columns of [`UserRecord`]; the argument is the `WHERE` clause.
macro_rules! select_user {
    ($where:literal) => {
        concat!(
            "SELECT id, username, email, password_hash, token_version, is_active, locked_until, locked_by_admin, \
             failed_logins, deleted_at, created_at, last_login_at FROM users WHERE ",
            $where
        )
    };
}

const USER_ROLES: &str = "SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role";

/// Not `Debug`: it holds the password hash, which has no business in a log.
#[derive(sqlx::FromRow)]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub token_version: i64,
    pub is_active: bool,
    pub locked_until: Option<Timestamp>,
    /// The lock was set by an admin (not by failed sign-ins).
    pub locked_by_admin: bool,
    /// Failed password attempts in a row.
    pub failed_logins: i32,
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
    #[sqlx(skip)]
    pub roles: Vec<String>,
}

pub struct NewUserRecord<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub roles: &'a [&'a str],
    pub is_active: bool,
    pub now: Timestamp,
    /// A password-reset token to store with the account (an admin created it without a password).
    pub reset: Option<NewResetToken<'a>>,
    /// The audit record of the admin who created it.
    pub audit: Option<Event>,
}

pub struct NewResetToken<'a> {
    pub token_hash: &'a str,
    pub expires_at: Timestamp,
}

/// A refresh token to store; families group the tokens that rotation derived from one login.
pub struct NewSession {
    pub token_hash: String,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, sqlx::FromRow)]
pub struct SessionRecord {
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// Once used: the token it was exchanged for, sealed with this one (`secrets::seal`).
    pub successor_seal: Option<Vec<u8>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
}

pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
}

#[derive(Serialize)]
struct UserRegistered<'a> {
    user_id: Uuid,
    username: &'a str,
    email: &'a str,
}

#[derive(Serialize)]
struct UserUpdated {
    user_id: Uuid,
    token_version: i64,
}

fn user_updated(user_id: Uuid, token_version: i64) -> Event {
    Event::new("user.updated", SOURCE, UserUpdated { user_id, token_version })
}

/// Statements that several write transactions share.
trait AuthTx {
    /// Sets a new password and ends everything issued under the old one: access tokens (token
    /// version), refresh tokens, and any lockout. Returns the new token version.
    async fn replace_password(&mut self, user_id: Uuid, hash: &str, now: Timestamp) -> sqlx::Result<i64>;
    async fn bump_token_version(&mut self, user_id: Uuid, now: Timestamp) -> sqlx::Result<i64>;
    async fn revoke_sessions(&mut self, user_id: Uuid, now: Timestamp) -> sqlx::Result<()>;
    async fn insert_session(&mut self, session: &NewSession) -> sqlx::Result<()>;
    async fn insert_reset_token(
        &mut self,
        user_id: Uuid,
        token: &NewResetToken<'_>,
        now: Timestamp,
    ) -> sqlx::Result<()>;
    async fn roles(&mut self, user_id: Uuid) -> sqlx::Result<Vec<String>>;
}

macro_rules! impl_auth_tx {
    ($db:ty) => {
        impl AuthTx for Transaction<'_, $db> {
            async fn replace_password(&mut self, user_id: Uuid, hash: &str, now: Timestamp) -> sqlx::Result<i64> {
                // An admin's lock stays: a reset link must not let a locked user back in.
                sqlx::query(
                    "UPDATE users SET password_hash = $2, failed_logins = 0, \
                     locked_until = CASE WHEN locked_by_admin THEN locked_until ELSE NULL END WHERE id = $1",
                )
                .bind(user_id)
                .bind(hash)
                .execute(&mut **self)
                .await?;
                self.revoke_sessions(user_id, now).await?;
                self.bump_token_version(user_id, now).await
            }

            async fn bump_token_version(&mut self, user_id: Uuid, now: Timestamp) -> sqlx::Result<i64> {
                sqlx::query_scalar(
                    "UPDATE users SET token_version = token_version + 1, updated_at = $2 WHERE id = $1 \
                     RETURNING token_version",
                )
                .bind(user_id)
                .bind(now)
                .fetch_one(&mut **self)
                .await
            }

            async fn revoke_sessions(&mut self, user_id: Uuid, now: Timestamp) -> sqlx::Result<()> {
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn insert_session(&mut self, s: &NewSession) -> sqlx::Result<()> {
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&s.token_hash)
                .bind(s.family_id)
                .bind(s.user_id)
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(&mut **self)
                .await
                .map(drop)
            }

            async fn insert_reset_token(
                &mut self,
                user_id: Uuid,
                token: &NewResetToken<'_>,
                now: Timestamp,
            ) -> sqlx::Result<()> {
                sqlx::query(
                    "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(token.token_hash)
                .bind(user_id)
                .bind(now)
                .bind(token.expires_at)
                .execute(&mut **self)
                .await
                .map(drop)
            }

            async fn roles(&mut self, user_id: Uuid) -> sqlx::Result<Vec<String>> {
                sqlx::query_scalar(USER_ROLES).bind(user_id).fetch_all(&mut **self).await
            }
        }
    };
}
impl_auth_tx!(Postgres);
impl_auth_tx!(Sqlite);

/// Maps a unique-constraint violation on `users` to the field that collided.
fn user_conflict(e: sqlx::Error) -> AuthError {
    match kit::db::unique_violation(&e) {
        Some(c) if c.contains("email") => AuthError::EmailTaken,
        Some(c) if c.contains("username") => AuthError::UsernameTaken,
        _ => AuthError::Database(e),
    }
}

/// A role that was deleted between its lookup and its assignment.
fn role_gone(e: sqlx::Error) -> AuthError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            AuthError::field("roles", "unknown_role", "a role was deleted meanwhile")
        }
        _ => AuthError::Database(e),
    }
}

#[derive(Clone)]
pub struct Store {
    db: Db,
    outbox: Outbox,
}

impl Store {
    pub fn new(db: Db, outbox: Outbox) -> Self {
        Self { db, outbox }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Lets the relay publish what the last commit enqueued without waiting for its next poll.
    pub fn wake_outbox(&self) {
        self.outbox.wake();
    }

    // ---- users ----

    /// Inserts a user with roles, and optionally the first session, announcing `user.registered`.
    pub async fn create_user(&self, u: &NewUserRecord<'_>, session: Option<&NewSession>) -> Result<(), AuthError> {
        let event = Event::new(
            "user.registered",
            SOURCE,
            UserRegistered { user_id: u.id, username: u.username, email: u.email },
        );
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO users (id, username, email, password_hash, is_active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(u.id)
            .bind(u.username)
            .bind(u.email)
            .bind(u.password_hash)
            .bind(u.is_active)
            .bind(u.now)
            .execute(&mut *tx)
            .await
            .map_err(user_conflict)?;
            for role in u.roles {
                sqlx::query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)")
                    .bind(u.id)
                    .bind(*role)
                    .execute(&mut *tx)
                    .await
                    .map_err(role_gone)?;
            }
            if let Some(s) = session {
                tx.insert_session(s).await?;
            }
            if let Some(reset) = &u.reset {
                tx.insert_reset_token(u.id, reset, u.now).await?;
            }
            self.outbox.enqueue(&mut tx, &event).await?;
            if let Some(audit) = &u.audit {
                self.outbox.enqueue(&mut tx, audit).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<UserRecord>, AuthError> {
        self.load_user(UserKey::Id(id)).await
    }

    /// `email` must already be lowercased, as stored.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, AuthError> {
        self.load_user(UserKey::Email(email)).await
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, AuthError> {
        self.load_user(UserKey::Username(username)).await
    }

    async fn load_user(&self, key: UserKey<'_>) -> Result<Option<UserRecord>, AuthError> {
        let sql = match key {
            UserKey::Id(_) => select_user!("id = $1"),
            UserKey::Email(_) => select_user!("email = $1"),
            UserKey::Username(_) => select_user!("lower(username) = lower($1)"),
        };
        let user = with_db!(&self.db, |pool| {
            let query = sqlx::query_as::<_, UserRecord>(sql);
            let query = match key {
                UserKey::Id(id) => query.bind(id),
                UserKey::Email(s) | UserKey::Username(s) => query.bind(s),
            };
            match query.fetch_optional(pool).await? {
                Some(mut user) => {
                    user.roles = sqlx::query_scalar(USER_ROLES).bind(user.id).fetch_all(pool).await?;
                    Some(user)
                }
                None => None,
            }
        });
        Ok(user)
    }

    /// Counts an attempt at the user's password as a failure before the password is checked, so
    /// that guesses sent in parallel cannot outrun the budget: `seen_failures` (as last read)
    /// becomes one more, and `wait_until` (when given) is when the next attempt may come. False
    /// when another attempt counted first, or a wait (an admin's lock included) is running.
    pub async fn claim_attempt(
        &self,
        user_id: Uuid,
        seen_failures: i32,
        now: Timestamp,
        wait_until: Option<Timestamp>,
    ) -> Result<bool, AuthError> {
        let claimed = with_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE users SET failed_logins = failed_logins + 1, locked_until = $4, locked_by_admin = FALSE \
                 WHERE id = $1 AND failed_logins = $2 AND (locked_until IS NULL OR locked_until <= $3)",
            )
            .bind(user_id)
            .bind(seen_failures)
            .bind(now)
            .bind(wait_until)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(claimed == 1)
    }

    /// The right password was given: the failures in a row and their wait are over (an admin's
    /// lock stays).
    pub async fn clear_failures(&self, user_id: Uuid) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE users SET failed_logins = 0, \
                 locked_until = CASE WHEN locked_by_admin THEN locked_until ELSE NULL END WHERE id = $1",
            )
            .bind(user_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Records the sign-in and opens a new session family.
    pub async fn record_login(&self, session: &NewSession) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1")
                .bind(session.user_id)
                .bind(session.created_at)
                .execute(&mut *tx)
                .await?;
            tx.insert_session(session).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Changes username and/or e-mail (`None` keeps the current value).
    pub async fn update_profile(
        &self,
        user_id: Uuid,
        username: Option<&str>,
        email: Option<&str>,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let token_version: i64 = sqlx::query_scalar(
                "UPDATE users SET username = COALESCE($2, username), email = COALESCE($3, email), updated_at = $4 \
                 WHERE id = $1 RETURNING token_version",
            )
            .bind(user_id)
            .bind(username)
            .bind(email)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(user_conflict)?;
            self.outbox.enqueue(&mut tx, &user_updated(user_id, token_version)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- sessions (refresh tokens) ----

    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, AuthError> {
        let session = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT family_id, user_id, expires_at, used_at, revoked_at, successor_seal FROM refresh_tokens \
                 WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        });
        Ok(session)
    }

    /// Marks `old_hash` used (keeping its successor, sealed) and stores the successor,
    /// atomically: of several concurrent rotations of one token exactly one returns true.
    pub async fn rotate_session(&self, old_hash: &str, seal: &[u8], next: &NewSession) -> Result<bool, AuthError> {
        let rotated = with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let claimed = sqlx::query(
                "UPDATE refresh_tokens SET used_at = $2, successor_seal = $3 \
                 WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2",
            )
            .bind(old_hash)
            .bind(next.created_at)
            .bind(seal)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 1 {
                tx.insert_session(next).await?;
                tx.commit().await?;
            }
            claimed == 1
        });
        Ok(rotated)
    }

    pub async fn revoke_family(&self, family_id: Uuid, now: Timestamp) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
                .bind(family_id)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Revokes every refresh token of the user and kills their access tokens; returns the new
    /// token version.
    pub async fn end_all_sessions(&self, user_id: Uuid, now: Timestamp) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            tx.revoke_sessions(user_id, now).await?;
            let version = tx.bump_token_version(user_id, now).await?;
            self.outbox.enqueue(&mut tx, &user_updated(user_id, version)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- passwords ----

    /// Sets a new password, ending every existing session, and opens `session` under it.
    pub async fn change_password(&self, hash: &str, session: &NewSession) -> Result<(), AuthError> {
        let user_id = session.user_id;
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let version = tx.replace_password(user_id, hash, session.created_at).await?;
            tx.insert_session(session).await?;
            self.outbox.enqueue(&mut tx, &user_updated(user_id, version)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn create_reset_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The user a reset token belongs to, while it is unused and unexpired.
    pub async fn reset_token_user(&self, token_hash: &str, now: Timestamp) -> Result<Option<Uuid>, AuthError> {
        let user = with_db!(&self.db, |pool| {
            sqlx::query_scalar(
                "SELECT user_id FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(user)
    }

    /// Consumes the reset token (and every other outstanding one of the user) and sets the
    /// password. False when the token was used or expired in the meantime.
    pub async fn reset_password(
        &self,
        token_hash: &str,
        user_id: Uuid,
        hash: &str,
        now: Timestamp,
    ) -> Result<bool, AuthError> {
        let done = with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let claimed = sqlx::query(
                "UPDATE password_resets SET used_at = $3 \
                 WHERE token_hash = $1 AND user_id = $2 AND used_at IS NULL AND expires_at > $3",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 1 {
                sqlx::query("UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let version = tx.replace_password(user_id, hash, now).await?;
                self.outbox.enqueue(&mut tx, &user_updated(user_id, version)).await?;
                tx.commit().await?;
            }
            claimed == 1
        });
        Ok(done)
    }

    // ---- API keys ----

    pub async fn create_api_key(&self, k: &NewApiKey<'_>) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(k.id)
            .bind(k.user_id)
            .bind(k.name)
            .bind(k.prefix)
            .bind(k.key_hash)
            .bind(k.created_at)
            .bind(k.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn api_keys(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<ApiKeyRecord>, AuthError> {
        let keys = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT id, user_id, name, prefix, created_at, last_used_at, expires_at FROM api_keys \
                 WHERE user_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
            )
            .bind(user_id)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(keys)
    }

    /// Deletes one of the user's keys; returns its hash, or `None` when the user has no such key.
    pub async fn delete_api_key(&self, user_id: Uuid, id: Uuid) -> Result<Option<String>, AuthError> {
        let hash = with_db!(&self.db, |pool| {
            sqlx::query_scalar("DELETE FROM api_keys WHERE id = $1 AND user_id = $2 RETURNING key_hash")
                .bind(id)
                .bind(user_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(hash)
    }

    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, AuthError> {
        let key = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT id, user_id, name, prefix, created_at, last_used_at, expires_at FROM api_keys \
                 WHERE key_hash = $1",
            )
            .bind(key_hash)
            .fetch_optional(pool)
            .await?
        });
        Ok(key)
    }

    /// Records a use of the key unless one was recorded after `unless_since` (bounds the writes
    /// a busy key causes).
    pub async fn touch_api_key(&self, id: Uuid, now: Timestamp, unless_since: Timestamp) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(id)
            .bind(now)
            .bind(unless_since)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    // ---- signing keys ----

    /// Every signing key, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, AuthError> {
        let keys = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT kid, private_key, public_key FROM signing_keys ORDER BY generation DESC")
                .fetch_all(pool)
                .await?
        });
        Ok(keys)
    }

    /// Inserts a key as generation `generation` unless another instance got there first.
    pub async fn insert_signing_key(
        &self,
        generation: i32,
        key: &SigningKeyRecord,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO signing_keys (kid, generation, private_key, public_key, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&key.kid)
            .bind(generation)
            .bind(&key.private_key)
            .bind(&key.public_key)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum UserKey<'a> {
    Id(Uuid),
    Email(&'a str),
    Username(&'a str),
}
