//! User and role administration (`/api/admin/users`, `/api/admin/roles`). Every change is
//! audited in the transaction that makes it, and an admin cannot take their own access away:
//! without that rule one click could leave the platform without an administrator.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kit::Timestamp;
use kit::api::{Page, PageQuery};
use kit::audit::AuditRecord;
use kit::authn::{ADMIN_ROLE, Identity, USER_ROLE};
use kit::bus::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{AuthService, ResetMail, normalize_email};
use crate::error::AuthError;
use crate::models::*;
use crate::policy::{self, Checks};
use crate::store::{AdminUserRecord, ListUsers, NEVER, NewUserRecord, SortKey, UserChange};

/// The longest lock an admin can set: a year.
const LOCK_MAX_MINUTES: u32 = 525_600;
/// More roles than any deployment needs on one user; bounds the work of one request.
const ROLES_MAX: usize = 100;
const QUERY_MAX: usize = 254;

/// The position after a row of the user list, opaque to clients: the sort it belongs to, the
/// row's sort value and its id.
#[derive(Serialize, Deserialize)]
struct Cursor {
    sort: UserSort,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    micros: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    id: Uuid,
}

fn sort_key(sort: UserSort, u: &AdminUserRecord) -> SortKey {
    match sort {
        UserSort::Created => SortKey::Time(u.created_at, u.id),
        UserSort::Username => SortKey::Text(u.username.to_lowercase(), u.id),
        UserSort::Email => SortKey::Text(u.email.clone(), u.id),
        UserSort::LastLogin => SortKey::Time(u.last_login_at.unwrap_or(NEVER), u.id),
    }
}

fn encode_cursor(sort: UserSort, key: SortKey) -> String {
    let cursor = match key {
        SortKey::Time(t, id) => Cursor { sort, micros: Some(t.unix_micros()), text: None, id },
        SortKey::Text(s, id) => Cursor { sort, micros: None, text: Some(s), id },
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).expect("cursors serialize"))
}

fn decode_cursor(sort: UserSort, cursor: &str) -> Result<SortKey, AuthError> {
    let invalid = || AuthError::field("cursor", "invalid_cursor", "is not a cursor of this list and sort");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let by_time = matches!(sort, UserSort::Created | UserSort::LastLogin);
    match (c.sort == sort, c.micros, c.text) {
        (true, Some(micros), None) if by_time => Ok(SortKey::Time(Timestamp::from_micros(micros), c.id)),
        (true, None, Some(text)) if !by_time => Ok(SortKey::Text(text, c.id)),
        _ => Err(invalid()),
    }
}

/// What an audit record shows of a user: never the password hash or the token version.
fn summary(u: &AdminUserRecord) -> Map<String, Value> {
    Map::from_iter([
        ("username".to_owned(), json!(u.username)),
        ("email".to_owned(), json!(u.email)),
        ("roles".to_owned(), json!(u.roles)),
        ("active".to_owned(), json!(u.is_active)),
        ("locked_until".to_owned(), json!(u.locked_until)),
        ("deleted_at".to_owned(), json!(u.deleted_at)),
        ("failed_logins".to_owned(), json!(u.failed_logins)),
    ])
}

/// The audit event of `action`, with only the fields it changed; `None` when it changed none.
fn audit_change(admin: &Identity, action: &str, before: &AdminUserRecord, after: &AdminUserRecord) -> Option<Event> {
    let (old, new) = (summary(before), summary(after));
    let changed: Vec<&String> = new.keys().filter(|k| old.get(*k) != new.get(*k)).collect();
    if changed.is_empty() {
        return None;
    }
    let pick = |m: &Map<String, Value>| Value::Object(changed.iter().map(|k| ((*k).clone(), m[*k].clone())).collect());
    let record = AuditRecord::new(admin, action, "user", after.id).change(Some(pick(&old)), Some(pick(&new)));
    Some(record.event(crate::NAME))
}

/// Refuses an action of an admin on their own account that would take their access away.
fn not_self(admin: &Identity, user_id: Uuid) -> Result<(), AuthError> {
    if admin.user_id == user_id { Err(AuthError::SelfLockout) } else { Ok(()) }
}

impl AuthService {
    pub async fn admin_list_users(&self, query: UserListQuery) -> Result<Page<AdminUserView>, AuthError> {
        let sort = query.sort.unwrap_or_default();
        let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
        let mut checks = Checks::default();
        if q.as_ref().is_some_and(|q| q.chars().count() > QUERY_MAX) {
            checks.check("q", Err(("invalid_length", format!("must be at most {QUERY_MAX} characters"))));
        }
        checks.finish()?;
        let after = query.cursor.as_deref().map(|c| decode_cursor(sort, c)).transpose()?;
        let limit = PageQuery { limit: query.limit, cursor: None }.limit();
        let now = Timestamp::now();
        let list = ListUsers {
            q: q.as_deref(),
            role: query.role.as_deref(),
            status: query.status,
            sort,
            after,
            limit: limit + 1,
            now,
        };
        let mut rows = self.store.list_users(&list).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = rows.last().filter(|_| more).map(|u| encode_cursor(sort, sort_key(sort, u)));
        Ok(Page { items: rows.into_iter().map(|u| AdminUserView::new(u, now)).collect(), next_cursor })
    }

    pub async fn admin_user(&self, id: Uuid) -> Result<AdminUserView, AuthError> {
        let user = self.store.admin_user(id).await?.ok_or(AuthError::NotFound("user"))?;
        Ok(AdminUserView::new(user, Timestamp::now()))
    }

    /// Creates an account with the rules of registration. Without a password the account gets
    /// one nobody knows (a real hash, so that signing in costs what it always does) and the user
    /// a mail to choose theirs.
    pub async fn admin_create_user(
        &self,
        admin: &Identity,
        req: AdminCreateUserRequest,
    ) -> Result<AdminUserView, AuthError> {
        let email = normalize_email(&req.email);
        let requested = req.roles.unwrap_or_else(|| vec![USER_ROLE.to_owned()]);
        let mut checks = Checks::default();
        checks.check("username", policy::username(&req.username)).check("email", policy::email(&email));
        if let Some(password) = &req.password {
            checks
                .check("password", policy::password(password, self.config.password_min_length, &req.username, &email));
        }
        let roles = self.resolve_roles(&requested, &mut checks).await?;
        checks.finish()?;
        let secret = crate::secrets::generate("");
        let password_hash = self.hasher.hash(req.password.as_deref().unwrap_or(&secret)).await?;
        let now = Timestamp::now();
        let reset = req.password.is_none().then(|| self.new_reset_token(now));
        let id = Uuid::now_v7();
        let active = req.active.unwrap_or(true);
        let after = json!({"username": req.username, "email": email, "roles": roles, "active": active});
        let audit = AuditRecord::new(admin, "user.create", "user", id).change(None, Some(after));
        let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
        let new = NewUserRecord {
            id,
            username: &req.username,
            email: &email,
            password_hash: &password_hash,
            roles: &role_refs,
            is_active: active,
            now,
            reset: reset.as_ref().map(|r| r.record()),
            audit: Some(audit.event(crate::NAME)),
        };
        self.store.create_user(&new, None).await?;
        self.store.wake_outbox();
        if let Some(reset) = reset {
            self.send_reset_mail(id, &req.username, &email, ResetMail::NewAccount, &reset.token);
        }
        self.admin_user(id).await
    }

    /// The stored names of `requested` roles (any case, duplicates dropped); unknown ones are
    /// field errors.
    async fn resolve_roles(&self, requested: &[String], checks: &mut Checks) -> Result<Vec<String>, AuthError> {
        if requested.len() > ROLES_MAX {
            checks.check("roles", Err(("out_of_range", format!("at most {ROLES_MAX} roles"))));
            return Ok(vec![]);
        }
        let known = self.store.role_names().await?;
        let mut roles: Vec<String> = vec![];
        for name in requested {
            match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
                Some(role) if !roles.contains(role) => roles.push(role.clone()),
                Some(_) => {}
                None => {
                    checks.check("roles", Err(("unknown_role", format!("no role named {name:?}"))));
                }
            }
        }
        roles.sort();
        Ok(roles)
    }

    pub async fn admin_update_user(
        &self,
        admin: &Identity,
        id: Uuid,
        req: AdminUpdateUserRequest,
    ) -> Result<AdminUserView, AuthError> {
        let email = req.email.as_deref().map(normalize_email);
        let mut checks = Checks::default();
        if let Some(u) = &req.username {
            checks.check("username", policy::username(u));
        }
        if let Some(e) = &email {
            checks.check("email", policy::email(e));
        }
        checks.finish()?;
        let change = UserChange::Profile { username: req.username.as_deref(), email: email.as_deref() };
        self.change_user(admin, id, "user.update", &change).await
    }

    pub async fn admin_lock_user(
        &self,
        admin: &Identity,
        id: Uuid,
        req: LockRequest,
    ) -> Result<AdminUserView, AuthError> {
        not_self(admin, id)?;
        let now = Timestamp::now();
        let latest = now + time::Duration::minutes(i64::from(LOCK_MAX_MINUTES));
        let until = match (req.minutes, req.until) {
            (Some(m), None) if (1..=LOCK_MAX_MINUTES).contains(&m) => now + time::Duration::minutes(i64::from(m)),
            (Some(_), None) => {
                return Err(AuthError::field("minutes", "out_of_range", format!("must be 1 to {LOCK_MAX_MINUTES}")));
            }
            // Stored to the microsecond, as the databases keep it.
            (None, Some(until)) if until > now && until <= latest => Timestamp::from_micros(until.unix_micros()),
            (None, Some(_)) => {
                return Err(AuthError::field("until", "out_of_range", "must be in the future and within a year"));
            }
            (Some(_), Some(_)) | (None, None) => {
                return Err(AuthError::field("minutes", "required", "give either `minutes` or `until`"));
            }
        };
        self.change_user(admin, id, "user.lock", &UserChange::Lock(until)).await
    }

    pub async fn admin_unlock_user(&self, admin: &Identity, id: Uuid) -> Result<AdminUserView, AuthError> {
        self.change_user(admin, id, "user.unlock", &UserChange::Unlock).await
    }

    pub async fn admin_set_active(&self, admin: &Identity, id: Uuid, active: bool) -> Result<AdminUserView, AuthError> {
        if active {
            self.change_user(admin, id, "user.activate", &UserChange::Active(true)).await
        } else {
            not_self(admin, id)?;
            self.change_user(admin, id, "user.deactivate", &UserChange::Active(false)).await
        }
    }

    /// Soft delete: the account stays (its name and address stay taken) but can no longer be
    /// used; a purge removes it.
    pub async fn admin_delete_user(&self, admin: &Identity, id: Uuid) -> Result<(), AuthError> {
        not_self(admin, id)?;
        match self.change_user(admin, id, "user.delete", &UserChange::SoftDelete).await {
            Ok(_) | Err(AuthError::UserDeleted) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn admin_set_roles(
        &self,
        admin: &Identity,
        id: Uuid,
        req: SetRolesRequest,
    ) -> Result<AdminUserView, AuthError> {
        if admin.user_id == id && !req.roles.iter().any(|r| r.eq_ignore_ascii_case(ADMIN_ROLE)) {
            return Err(AuthError::SelfLockout);
        }
        if req.roles.len() > ROLES_MAX {
            return Err(AuthError::field("roles", "out_of_range", format!("at most {ROLES_MAX} roles")));
        }
        self.change_user(admin, id, "user.set_roles", &UserChange::Roles(&req.roles)).await
    }

    /// Applies a change with its audit record; a change that took place reaches every
    /// authenticator at once.
    async fn change_user(
        &self,
        admin: &Identity,
        id: Uuid,
        action: &str,
        change: &UserChange<'_>,
    ) -> Result<AdminUserView, AuthError> {
        let (user, changed) = self
            .store
            .change_user(id, change, Timestamp::now(), |before, after| audit_change(admin, action, before, after))
            .await?;
        if changed {
            self.access_changed(id).await;
        }
        Ok(AdminUserView::new(user, Timestamp::now()))
    }

    /// Removes a soft-deleted account and everything of it; `user.deleted` tells the other
    /// services to remove theirs.
    pub async fn admin_purge_user(&self, admin: &Identity, id: Uuid) -> Result<(), AuthError> {
        not_self(admin, id)?;
        self.store
            .purge_user(id, |u| {
                let before = json!({"username": u.username, "email": u.email, "roles": u.roles});
                AuditRecord::new(admin, "user.purge", "user", id).change(Some(before), None).event(crate::NAME)
            })
            .await?;
        self.access_changed(id).await;
        Ok(())
    }

    /// Mails the user a reset link; the token is never shown to the admin.
    pub async fn admin_password_reset(&self, admin: &Identity, id: Uuid) -> Result<(), AuthError> {
        let now = Timestamp::now();
        let reset = self.new_reset_token(now);
        let user = self
            .store
            .admin_reset_token(id, &reset.record(), now, |_| {
                AuditRecord::new(admin, "user.password_reset", "user", id).event(crate::NAME)
            })
            .await?;
        self.store.wake_outbox();
        self.send_reset_mail(id, &user.username, &user.email, ResetMail::ByAdmin, &reset.token);
        Ok(())
    }

    // ---- roles ----

    pub async fn admin_roles(&self, query: &PageQuery) -> Result<Page<RoleView>, AuthError> {
        let limit = query.limit();
        let rows = self.store.roles_with_counts(query.cursor.as_deref(), limit + 1).await?;
        Ok(Page::from_rows(rows, limit, |r| r.name.clone()))
    }

    pub async fn admin_create_role(&self, admin: &Identity, req: CreateRoleRequest) -> Result<RoleView, AuthError> {
        Checks::default().check("name", policy::role_name(&req.name)).finish()?;
        let now = Timestamp::now();
        let audit = AuditRecord::new(admin, "role.create", "role", &req.name)
            .change(None, Some(json!({"name": req.name})))
            .event(crate::NAME);
        self.store.create_role(&req.name, now, &audit).await?;
        self.store.wake_outbox();
        Ok(RoleView { name: req.name, created_at: now, user_count: 0 })
    }

    pub async fn admin_delete_role(&self, admin: &Identity, name: &str) -> Result<(), AuthError> {
        if [ADMIN_ROLE, USER_ROLE].iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(AuthError::RoleProtected);
        }
        self.store
            .delete_role(name, |role| {
                AuditRecord::new(admin, "role.delete", "role", role)
                    .change(Some(json!({"name": role})), None)
                    .event(crate::NAME)
            })
            .await?;
        self.store.wake_outbox();
        Ok(())
    }
}
