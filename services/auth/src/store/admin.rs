//! The SQL of user and role administration. Every change is made in one transaction with the
//! events it causes: `user.updated` (so every process forgets the user's cached state), the admin's
//! audit record, and for a purge `user.deleted`.

use kit::Timestamp;
use kit::bus::Event;
use kit::db::{Backend, BeginWrite};
use kit::with_db;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Postgres, Sqlite, Transaction};
use uuid::Uuid;

use super::{AuthTx, SOURCE, Store, user_conflict, user_updated};
use crate::error::AuthError;
use crate::models::{UserSort, UserStatus};

const COLUMNS: &str = "id, username, email, token_version, is_active, locked_until, locked_by_admin, failed_logins, \
                       deleted_at, created_at, updated_at, last_login_at";

/// A user as administrators see it: everything but the password hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminUserRecord {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub token_version: i64,
    pub is_active: bool,
    pub locked_until: Option<Timestamp>,
    pub locked_by_admin: bool,
    pub failed_logins: i32,
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
    #[sqlx(skip)]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleCountRecord {
    pub name: String,
    pub created_at: Timestamp,
    /// Holders that are not deleted.
    pub user_count: i64,
}

/// A change an admin makes to a user.
pub enum UserChange<'a> {
    /// `None` keeps the current value.
    Profile {
        username: Option<&'a str>,
        email: Option<&'a str>,
    },
    Lock(Timestamp),
    /// Lifts any lock, an admin's or one after failed sign-ins, and clears the failure count.
    Unlock,
    Active(bool),
    SoftDelete,
    /// The exact set of roles, named case-insensitively.
    Roles(&'a [String]),
}

impl UserChange<'_> {
    /// Whether the change withdraws access, so that live sessions must end too.
    fn ends_sessions(&self) -> bool {
        matches!(self, UserChange::Lock(_) | UserChange::Active(false) | UserChange::SoftDelete)
    }

    /// Whether access tokens issued before the change must die: it withdraws access or changes
    /// what the tokens claim (roles, e-mail).
    fn kills_tokens(&self, before: &AdminUserRecord, after: &AdminUserRecord) -> bool {
        self.ends_sessions() || matches!(self, UserChange::Roles(_)) || before.email != after.email
    }
}

/// The key of a list position: the sort column's value and the id that breaks ties.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Time(Timestamp, Uuid),
    Text(String, Uuid),
}

/// One page of `GET /api/admin/users`.
pub struct ListUsers<'a> {
    /// Lowercase; matched as a substring of the username or e-mail.
    pub q: Option<&'a str>,
    pub role: Option<&'a str>,
    pub status: Option<UserStatus>,
    pub sort: UserSort,
    pub after: Option<SortKey>,
    pub limit: i64,
    pub now: Timestamp,
}

/// Users who never signed in sort as if they last did at the epoch: after everyone else.
pub const NEVER: Timestamp = Timestamp(time::OffsetDateTime::UNIX_EPOCH);

#[derive(Serialize)]
struct UserDeleted {
    user_id: Uuid,
}

/// A bound parameter of a query built at run time.
enum Arg {
    Text(String),
    Time(Timestamp),
    Id(Uuid),
    Int(i64),
}

#[derive(Default)]
struct Args(Vec<Arg>);

impl Args {
    /// Adds a parameter and returns its placeholder.
    fn add(&mut self, arg: Arg) -> String {
        self.0.push(arg);
        format!("${}", self.0.len())
    }
}

macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in &$args.0 {
            query = match arg {
                Arg::Text(s) => query.bind(s.as_str()),
                Arg::Time(t) => query.bind(*t),
                Arg::Id(id) => query.bind(*id),
                Arg::Int(n) => query.bind(*n),
            };
        }
        query
    }};
}

/// Reads that lock what they read for the rest of the transaction (`FOR UPDATE` on Postgres;
/// SQLite's write transaction already holds the database).
trait AdminTx {
    async fn admin_user(&mut self, id: Uuid) -> sqlx::Result<Option<AdminUserRecord>>;
    async fn role_named(&mut self, name: &str) -> sqlx::Result<Option<String>>;
}

macro_rules! impl_admin_tx {
    ($db:ty, $lock:literal) => {
        impl AdminTx for Transaction<'_, $db> {
            async fn admin_user(&mut self, id: Uuid) -> sqlx::Result<Option<AdminUserRecord>> {
                let user: Option<AdminUserRecord> = sqlx::query_as(concat!(
                    "SELECT id, username, email, token_version, is_active, locked_until, locked_by_admin, \
                     failed_logins, deleted_at, created_at, updated_at, last_login_at FROM users WHERE id = $1",
                    $lock
                ))
                .bind(id)
                .fetch_optional(&mut **self)
                .await?;
                let Some(mut user) = user else { return Ok(None) };
                user.roles = self.roles(id).await?;
                Ok(Some(user))
            }

            async fn role_named(&mut self, name: &str) -> sqlx::Result<Option<String>> {
                sqlx::query_scalar(concat!("SELECT name FROM roles WHERE lower(name) = lower($1)", $lock))
                    .bind(name)
                    .fetch_optional(&mut **self)
                    .await
            }
        }
    };
}
impl_admin_tx!(Postgres, " FOR UPDATE");
impl_admin_tx!(Sqlite, "");

impl Store {
    /// How text sorts: byte order on both backends, whatever the Postgres database's locale.
    fn binary_collation(&self) -> &'static str {
        match self.db.backend() {
            Backend::Postgres => " COLLATE \"C\"",
            Backend::Sqlite => "",
        }
    }

    /// One page of users, `limit` rows after `after` in the order of `sort`.
    pub async fn list_users(&self, l: &ListUsers<'_>) -> Result<Vec<AdminUserRecord>, AuthError> {
        let mut args = Args::default();
        let mut conditions = vec![];
        match l.status {
            None => conditions.push("deleted_at IS NULL".to_owned()),
            Some(UserStatus::Deleted) => conditions.push("deleted_at IS NOT NULL".to_owned()),
            Some(UserStatus::Active) => {
                let now = args.add(Arg::Time(l.now));
                conditions.push(format!(
                    "deleted_at IS NULL AND is_active AND (locked_until IS NULL OR locked_until <= {now})"
                ));
            }
            Some(UserStatus::Inactive) => conditions.push("deleted_at IS NULL AND NOT is_active".to_owned()),
            Some(UserStatus::Locked) => {
                let now = args.add(Arg::Time(l.now));
                conditions.push(format!("deleted_at IS NULL AND locked_until > {now}"));
            }
        }
        if let Some(q) = l.q {
            let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let p = args.add(Arg::Text(format!("%{escaped}%")));
            conditions.push(format!("(lower(username) LIKE {p} ESCAPE '\\' OR email LIKE {p} ESCAPE '\\')"));
        }
        if let Some(role) = l.role {
            let r = args.add(Arg::Text(role.to_owned()));
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM user_roles ur WHERE ur.user_id = users.id AND lower(ur.role) = lower({r}))"
            ));
        }
        let c = self.binary_collation();
        let (key, descending) = match l.sort {
            UserSort::Created => ("created_at".to_owned(), true),
            UserSort::Username => (format!("lower(username){c}"), false),
            UserSort::Email => (format!("email{c}"), false),
            UserSort::LastLogin => (format!("COALESCE(last_login_at, {})", args.add(Arg::Time(NEVER))), true),
        };
        let (cmp, dir) = if descending { ("<", "DESC") } else { (">", "ASC") };
        if let Some(after) = &l.after {
            let (value, id) = match after {
                SortKey::Time(t, id) => (args.add(Arg::Time(*t)), args.add(Arg::Id(*id))),
                SortKey::Text(s, id) => (args.add(Arg::Text(s.clone())), args.add(Arg::Id(*id))),
            };
            conditions.push(format!("({key} {cmp} {value} OR ({key} = {value} AND id {cmp} {id}))"));
        }
        let limit = args.add(Arg::Int(l.limit));
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE {} ORDER BY {key} {dir}, id {dir} LIMIT {limit}",
            conditions.join(" AND ")
        );
        let mut users: Vec<AdminUserRecord> =
            with_db!(&self.db, |pool| { bind_args!(sqlx::query_as(AssertSqlSafe(sql)), args).fetch_all(pool).await? });
        self.attach_roles(&mut users).await?;
        Ok(users)
    }

    /// Loads the roles of several users in one query.
    async fn attach_roles(&self, users: &mut [AdminUserRecord]) -> Result<(), AuthError> {
        if users.is_empty() {
            return Ok(());
        }
        let mut args = Args::default();
        let placeholders: Vec<String> = users.iter().map(|u| args.add(Arg::Id(u.id))).collect();
        let sql = format!("SELECT user_id, role FROM user_roles WHERE user_id IN ({})", placeholders.join(", "));
        let rows: Vec<(Uuid, String)> =
            with_db!(&self.db, |pool| { bind_args!(sqlx::query_as(AssertSqlSafe(sql)), args).fetch_all(pool).await? });
        for (user_id, role) in rows {
            if let Some(user) = users.iter_mut().find(|u| u.id == user_id) {
                user.roles.push(role);
            }
        }
        for user in users {
            user.roles.sort();
        }
        Ok(())
    }

    /// Any user, deleted ones included.
    pub async fn admin_user(&self, id: Uuid) -> Result<Option<AdminUserRecord>, AuthError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let user: Option<AdminUserRecord> =
            with_db!(&self.db, |pool| { sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await? });
        let Some(user) = user else { return Ok(None) };
        let mut users = [user];
        self.attach_roles(&mut users).await?;
        let [user] = users;
        Ok(Some(user))
    }

    /// Applies `change` to a user who is not deleted. `audit` sees the user before and after and
    /// returns the audit event, or `None` when nothing changed: then nothing is written. A change
    /// is announced (`user.updated`); one that withdraws access also bumps the token version and
    /// ends every session. Returns the user afterwards and whether anything changed.
    pub async fn change_user(
        &self,
        id: Uuid,
        change: &UserChange<'_>,
        now: Timestamp,
        audit: impl FnOnce(&AdminUserRecord, &AdminUserRecord) -> Option<Event>,
    ) -> Result<(AdminUserRecord, bool), AuthError> {
        let result = with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let before = tx.admin_user(id).await?.ok_or(AuthError::NotFound("user"))?;
            if before.deleted_at.is_some() {
                return Err(AuthError::UserDeleted);
            }
            match change {
                UserChange::Profile { username, email } => {
                    sqlx::query(
                        "UPDATE users SET username = COALESCE($2, username), email = COALESCE($3, email), \
                         updated_at = $4 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(*username)
                    .bind(*email)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(user_conflict)?;
                }
                UserChange::Lock(until) => {
                    sqlx::query(
                        "UPDATE users SET locked_until = $2, locked_by_admin = TRUE, updated_at = $3 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(*until)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                UserChange::Unlock => {
                    sqlx::query(
                        "UPDATE users SET locked_until = NULL, locked_by_admin = FALSE, failed_logins = 0, \
                         updated_at = $2 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                UserChange::Active(active) => {
                    sqlx::query("UPDATE users SET is_active = $2, updated_at = $3 WHERE id = $1")
                        .bind(id)
                        .bind(*active)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                UserChange::SoftDelete => {
                    sqlx::query("UPDATE users SET deleted_at = $2, updated_at = $2 WHERE id = $1")
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                UserChange::Roles(names) => {
                    let mut roles = Vec::with_capacity(names.len());
                    let mut unknown = vec![];
                    // Locking each role keeps it from being deleted before the assignment commits.
                    for name in names.iter() {
                        match tx.role_named(name).await? {
                            Some(role) if !roles.contains(&role) => roles.push(role),
                            Some(_) => {}
                            None => unknown.push(name.clone()),
                        }
                    }
                    if !unknown.is_empty() {
                        let message = format!("no such role: {}", unknown.join(", "));
                        return Err(AuthError::field("roles", "unknown_role", message));
                    }
                    sqlx::query("DELETE FROM user_roles WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
                    for role in &roles {
                        sqlx::query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)")
                            .bind(id)
                            .bind(role)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            let mut after = tx.admin_user(id).await?.ok_or(AuthError::NotFound("user"))?;
            after.roles.sort();
            let mut before = before;
            before.roles.sort();
            match audit(&before, &after) {
                // Dropping the transaction rolls back the `updated_at` of a change that was none.
                None => (before, false),
                Some(audit) => {
                    if change.ends_sessions() {
                        tx.revoke_sessions(id, now).await?;
                    }
                    if change.kills_tokens(&before, &after) {
                        after.token_version = tx.bump_token_version(id, now).await?;
                    }
                    self.outbox.enqueue(&mut tx, &user_updated(id, after.token_version)).await?;
                    self.outbox.enqueue(&mut tx, &audit).await?;
                    tx.commit().await?;
                    (after, true)
                }
            }
        });
        Ok(result)
    }

    /// Deletes a soft-deleted user and everything of theirs, announcing `user.deleted`.
    pub async fn purge_user(
        &self,
        id: Uuid,
        audit: impl FnOnce(&AdminUserRecord) -> Event,
    ) -> Result<AdminUserRecord, AuthError> {
        let deleted = Event::new("user.deleted", SOURCE, UserDeleted { user_id: id });
        let user = with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let user = tx.admin_user(id).await?.ok_or(AuthError::NotFound("user"))?;
            if user.deleted_at.is_none() {
                return Err(AuthError::UserNotDeleted);
            }
            sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?;
            self.outbox.enqueue(&mut tx, &deleted).await?;
            self.outbox.enqueue(&mut tx, &audit(&user)).await?;
            tx.commit().await?;
            user
        });
        Ok(user)
    }

    /// Stores a password-reset token for an active, undeleted user, with the audit record.
    pub async fn admin_reset_token(
        &self,
        id: Uuid,
        token: &super::NewResetToken<'_>,
        now: Timestamp,
        audit: impl FnOnce(&AdminUserRecord) -> Event,
    ) -> Result<AdminUserRecord, AuthError> {
        let user = with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let user = tx.admin_user(id).await?.ok_or(AuthError::NotFound("user"))?;
            if user.deleted_at.is_some() {
                return Err(AuthError::UserDeleted);
            }
            if !user.is_active {
                return Err(AuthError::UserInactive);
            }
            tx.insert_reset_token(id, token, now).await?;
            self.outbox.enqueue(&mut tx, &audit(&user)).await?;
            tx.commit().await?;
            user
        });
        Ok(user)
    }

    // ---- roles ----

    pub async fn role_names(&self) -> Result<Vec<String>, AuthError> {
        let names = with_db!(&self.db, |pool| sqlx::query_scalar("SELECT name FROM roles").fetch_all(pool).await?);
        Ok(names)
    }

    /// The roles after `after` by name (byte order), with how many users hold each.
    pub async fn roles_with_counts(&self, after: Option<&str>, limit: i64) -> Result<Vec<RoleCountRecord>, AuthError> {
        let c = self.binary_collation();
        let sql = format!(
            "SELECT r.name, r.created_at, \
               (SELECT COUNT(*) FROM user_roles ur JOIN users u ON u.id = ur.user_id \
                WHERE ur.role = r.name AND u.deleted_at IS NULL) AS user_count \
             FROM roles r WHERE ($1 IS NULL OR r.name{c} > $1) ORDER BY r.name{c} LIMIT $2"
        );
        let roles = with_db!(&self.db, |pool| {
            sqlx::query_as(AssertSqlSafe(sql)).bind(after).bind(limit).fetch_all(pool).await?
        });
        Ok(roles)
    }

    pub async fn create_role(&self, name: &str, now: Timestamp, audit: &Event) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO roles (name, created_at) VALUES ($1, $2)")
                .bind(name)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| if kit::db::unique_violation(&e).is_some() { AuthError::RoleExists } else { e.into() })?;
            self.outbox.enqueue(&mut tx, audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes a role (named case-insensitively) that no live user holds; deleted users lose it.
    /// `audit` gets the role's stored name.
    pub async fn delete_role(&self, name: &str, audit: impl FnOnce(&str) -> Event) -> Result<(), AuthError> {
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            // Locked, so that no assignment slips in between the count and the delete.
            let role = tx.role_named(name).await?.ok_or(AuthError::NotFound("role"))?;
            let holders: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM user_roles ur JOIN users u ON u.id = ur.user_id \
                 WHERE ur.role = $1 AND u.deleted_at IS NULL",
            )
            .bind(&role)
            .fetch_one(&mut *tx)
            .await?;
            if holders > 0 {
                return Err(AuthError::RoleInUse { holders });
            }
            sqlx::query("DELETE FROM roles WHERE name = $1").bind(&role).execute(&mut *tx).await?;
            self.outbox.enqueue(&mut tx, &audit(&role)).await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
