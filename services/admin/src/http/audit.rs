//! `/api/admin/audit`.

use axum::extract::State;
use kit::api::{CredentialErrors, Page};
use kit::http::{Json, Query};
use kit::{Problem, Timestamp};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{AdminCaller, AppState};
use crate::error::AdminError;
use crate::store::{AuditEntry, AuditFilter};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub actor_id: Option<Uuid>,
    /// `user.lock`, `model.update`, …
    pub action: Option<String>,
    /// `user`, `role`, `model`, `tag`, `engine`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// From this time (RFC 3339), inclusive.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<time::OffsetDateTime>,
    /// Before this time, exclusive.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<time::OffsetDateTime>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn invalid_cursor() -> AdminError {
    AdminError::BadRequest("invalid_cursor", "the cursor is not one this list gave".into())
}

/// Admin actions, newest first.
#[utoipa::path(get, path = "/api/admin/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery), responses(
    (status = 200, description = "A page of audit entries.", body = Page<AuditEntry>),
    (status = 400, description = "`invalid_cursor`, `invalid_query`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn list(
    State(s): State<AppState>,
    _: AdminCaller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, AdminError> {
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            let (micros, id) = c.split_once('_').ok_or_else(invalid_cursor)?;
            Ok::<_, AdminError>((
                Timestamp::from_micros(micros.parse().map_err(|_| invalid_cursor())?),
                Uuid::parse_str(id).map_err(|_| invalid_cursor())?,
            ))
        })
        .transpose()?;
    let filter = AuditFilter {
        actor_id: q.actor_id,
        action: q.action,
        target_type: q.target_type,
        target_id: q.target_id,
        since: q.since.map(Timestamp),
        until: q.until.map(Timestamp),
    };
    let limit = i64::from(q.limit.unwrap_or(50).clamp(1, 100));
    let rows = s.store.audit(&filter, after, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |e: &AuditEntry| format!("{}_{}", e.occurred_at.unix_micros(), e.id))))
}
