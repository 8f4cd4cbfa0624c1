//! The admin service's own tables: the audit log and usage per day, user and model.

use kit::audit::AuditRecord;
use kit::db::{BeginWrite, Db};
use kit::{Timestamp, with_db};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AdminError;

#[derive(Clone)]
pub struct Store {
    db: Db,
}

/// A stored audit record.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: Uuid,
    pub occurred_at: Timestamp,
    /// The service that acted: `auth`, `catalog`, `inference`.
    pub source: String,
    pub actor_id: Uuid,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// JSON of the changed fields before (absent for a creation).
    pub before: Option<String>,
    /// JSON of the same fields after (absent for a deletion).
    pub after: Option<String>,
    pub request_id: Option<String>,
}

/// Which audit entries to list; each given filter narrows.
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// Usage of one model by one user on one day (UTC, `YYYY-MM-DD`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct UsageRow {
    pub day: String,
    pub user_id: Uuid,
    pub model: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub eval_tokens: i64,
}

#[derive(Debug, Default)]
pub struct UsageFilter {
    pub user_id: Option<Uuid>,
    pub model: Option<String>,
    /// Inclusive, `YYYY-MM-DD`.
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stores an audit record once, under its event's id.
    pub async fn record_audit(
        &self,
        id: Uuid,
        occurred_at: Timestamp,
        source: &str,
        r: &AuditRecord,
    ) -> Result<(), AdminError> {
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        with_db!(&self.db, |pool| {
            sqlx::query(
            "INSERT INTO admin_audit (id, occurred_at, source, actor_id, actor, action, target_type, target_id, \
             before, after, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING"
        )
        .bind(id)
        .bind(occurred_at)
        .bind(source)
        .bind(r.actor_id)
        .bind(&r.actor)
        .bind(&r.action)
        .bind(&r.target_type)
        .bind(&r.target_id)
        .bind(json(&r.before))
        .bind(json(&r.after))
        .bind(&r.request_id)
        .execute(pool)
        .await?
        .rows_affected()
        });
        Ok(())
    }

    /// A page of audit entries, newest first, after the entry `(at, id)` of the previous page.
    pub async fn audit(
        &self,
        f: &AuditFilter,
        after: Option<(Timestamp, Uuid)>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, AdminError> {
        Ok(with_db!(&self.db, |pool| {
            sqlx::query_as(
            "SELECT id, occurred_at, source, actor_id, actor, action, target_type, target_id, before, after, request_id \
             FROM admin_audit \
             WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR target_type = $3) \
               AND ($4 IS NULL OR target_id = $4) AND ($5 IS NULL OR occurred_at >= $5) AND ($6 IS NULL OR occurred_at < $6) \
               AND ($7 IS NULL OR occurred_at < $7 OR (occurred_at = $7 AND id < $8)) \
             ORDER BY occurred_at DESC, id DESC LIMIT $9"
        )
        .bind(f.actor_id)
        .bind(&f.action)
        .bind(&f.target_type)
        .bind(&f.target_id)
        .bind(f.since)
        .bind(f.until)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(limit + 1)
        .fetch_all(pool)
        .await?
        }))
    }

    /// Adds one usage event to its day's row, once per event id. Whether it was new.
    pub async fn count_usage(&self, event: Uuid, row: &UsageRow) -> Result<bool, AdminError> {
        let new = with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let new =
                sqlx::query("INSERT INTO admin_usage_events (id, counted_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(event)
                    .bind(Timestamp::now())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
            if new {
                sqlx::query(
                    "INSERT INTO admin_usage (day, user_id, model, requests, prompt_tokens, eval_tokens) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (day, user_id, model) DO UPDATE SET \
                     requests = admin_usage.requests + excluded.requests, \
                     prompt_tokens = admin_usage.prompt_tokens + excluded.prompt_tokens, \
                     eval_tokens = admin_usage.eval_tokens + excluded.eval_tokens",
                )
                .bind(&row.day)
                .bind(row.user_id)
                .bind(&row.model)
                .bind(row.requests)
                .bind(row.prompt_tokens)
                .bind(row.eval_tokens)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            new
        });
        Ok(new)
    }

    /// Usage rows, newest day first, then by user and model; after `after` (day, user, model).
    pub async fn usage(
        &self,
        f: &UsageFilter,
        after: Option<(String, Uuid, String)>,
        limit: i64,
    ) -> Result<Vec<UsageRow>, AdminError> {
        let (day, user, model) = match after {
            Some((d, u, m)) => (Some(d), Some(u), Some(m)),
            None => (None, None, None),
        };
        Ok(with_db!(&self.db, |pool| sqlx::query_as(
            "SELECT day, user_id, model, requests, prompt_tokens, eval_tokens FROM admin_usage \
             WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR model = $2) \
               AND ($3 IS NULL OR day >= $3) AND ($4 IS NULL OR day <= $4) \
               AND ($5 IS NULL OR day < $5 OR (day = $5 AND (user_id > $6 OR (user_id = $6 AND model > $7)))) \
             ORDER BY day DESC, user_id, model LIMIT $8"
        )
        .bind(f.user_id)
        .bind(&f.model)
        .bind(&f.from)
        .bind(&f.to)
        .bind(day)
        .bind(user)
        .bind(model)
        .bind(limit + 1)
        .fetch_all(pool)
        .await?))
    }
}
