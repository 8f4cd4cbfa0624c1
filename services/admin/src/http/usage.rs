//! `/api/admin/usage`.

use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kit::Problem;
use kit::api::{CredentialErrors, Page};
use kit::http::{Json, Query};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{AdminCaller, AppState};
use crate::error::AdminError;
use crate::store::{UsageFilter, UsageRow};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    pub user_id: Option<Uuid>,
    pub model: Option<String>,
    /// First day (UTC, `YYYY-MM-DD`), inclusive.
    pub from: Option<String>,
    /// Last day, inclusive.
    pub to: Option<String>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn day(field: &'static str, s: Option<String>) -> Result<Option<String>, AdminError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match s {
        Some(d) if time::Date::parse(&d, &format).is_err() => {
            Err(AdminError::BadRequest("invalid_query", format!("{field} is a day, YYYY-MM-DD")))
        }
        other => Ok(other),
    }
}

fn invalid_cursor() -> AdminError {
    AdminError::BadRequest("invalid_cursor", "the cursor is not one this list gave".into())
}

/// Requests and tokens per day, user and model, newest day first.
#[utoipa::path(get, path = "/api/admin/usage", tag = "usage", security(("bearer" = [])), params(UsageQuery), responses(
    (status = 200, description = "A page of usage rows.", body = Page<UsageRow>),
    (status = 400, description = "`invalid_cursor`, `invalid_query`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn list(
    State(s): State<AppState>,
    _: AdminCaller,
    Query(q): Query<UsageQuery>,
) -> Result<Json<Page<UsageRow>>, AdminError> {
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| invalid_cursor())?;
            serde_json::from_slice::<(String, Uuid, String)>(&bytes).map_err(|_| invalid_cursor())
        })
        .transpose()?;
    let filter = UsageFilter {
        user_id: q.user_id,
        model: q.model.map(|m| ollamanet_catalog::normalize_name(&m).unwrap_or(m)),
        from: day("from", q.from)?,
        to: day("to", q.to)?,
    };
    let limit = i64::from(q.limit.unwrap_or(50).clamp(1, 100));
    let rows = s.store.usage(&filter, after, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |r: &UsageRow| {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&(&r.day, r.user_id, &r.model)).unwrap_or_default())
    })))
}
