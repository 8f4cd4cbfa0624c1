//! `/admin/audit` and `/admin/usage`: what admins did and what the platform served (the admin
//! service's `/api/admin/audit` and `/api/admin/usage`), filtered and a page at a time.

use askama::Template;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{When, link};
use crate::AppState;
use crate::error::{WebError, render_private};
use crate::extract::Query;
use crate::services::{Caller, Page};
use crate::session::{Nav, Visitor};

/// A page of a list, or why the service could not read its filters.
struct Listed<T> {
    items: Vec<T>,
    /// The page's address for the next page.
    next: Option<String>,
    error: Option<String>,
}

/// A page of the service's list `api` with `filters`; the next page is `page` with
/// `page_filters` (the filters as the page's form has them).
async fn list<T: DeserializeOwned>(
    s: &AppState,
    caller: &Caller<'_>,
    (api, filters): (&str, &[(&str, &str)]),
    (page, page_filters): (&str, &[(&str, &str)]),
    cursor: &str,
) -> Result<Listed<T>, WebError> {
    let mut query = filters.to_vec();
    query.extend([("limit", "50"), ("cursor", cursor)]);
    match s.admin.json::<Page<T>>(caller, Method::GET, &link(api, &query), None).await {
        Ok(p) => {
            let next = p.next_cursor.map(|c| link(page, &[page_filters, &[("cursor", &c)]].concat()));
            Ok(Listed { items: p.items, next, error: None })
        }
        // A filter the service cannot read (a malformed id or day) shows as such.
        Err(WebError::Refused(reason)) => Ok(Listed { items: Vec::new(), next: None, error: Some(reason) }),
        Err(e) => Err(e),
    }
}

/// The start of a day (`YYYY-MM-DD`, from a date field), UTC, as the audit's filters take it.
fn day_start(day: &str) -> String {
    let day = day.trim();
    if day.is_empty() { String::new() } else { format!("{day}T00:00:00Z") }
}

#[derive(Deserialize)]
struct Entry {
    occurred_at: When,
    source: String,
    actor_id: Uuid,
    actor: String,
    action: String,
    target_type: String,
    target_id: String,
    before: Option<String>,
    after: Option<String>,
}

impl Entry {
    /// The administration page of the entry's target, when it has one.
    fn target_page(&self) -> Option<String> {
        let section = match self.target_type.as_str() {
            "user" => "users",
            "model" => "models",
            "engine" => "engines",
            _ => return None,
        };
        Some(format!("/admin/{section}/{}", self.target_id))
    }
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target_type: String,
    #[serde(default)]
    target_id: String,
    #[serde(default)]
    actor_id: String,
    /// First day, `YYYY-MM-DD`.
    #[serde(default)]
    since: String,
    /// The day the entries are before, `YYYY-MM-DD`.
    #[serde(default)]
    before: String,
    #[serde(default)]
    cursor: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage<'a> {
    nav: Nav<'a>,
    q: AuditQuery,
    listed: Listed<Entry>,
}

/// Admin actions, newest first, narrowed by action, target, actor and days.
pub async fn audit(State(s): State<AppState>, visitor: Visitor, Query(q): Query<AuditQuery>) -> Response {
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    // The page asks for days; the service for instants.
    let (since, before) = (day_start(&q.since), day_start(&q.before));
    let filters = [
        ("action", q.action.trim()),
        ("target_type", q.target_type.trim()),
        ("target_id", q.target_id.trim()),
        ("actor_id", q.actor_id.trim()),
    ];
    let api_filters = [&filters[..], &[("since", since.as_str()), ("until", before.as_str())]].concat();
    let page_filters = [&filters[..], &[("since", q.since.trim()), ("before", q.before.trim())]].concat();
    let listed =
        list(&s, &caller, ("/api/admin/audit", &api_filters), ("/admin/audit", &page_filters), &q.cursor).await;
    let listed = match listed {
        Ok(listed) => listed,
        Err(e) => return visitor.respond(e),
    };
    let page = render_private(&AuditPage { nav: visitor.nav(), q, listed });
    visitor.respond(page)
}

#[derive(Deserialize)]
struct Usage {
    day: String,
    user_id: Uuid,
    model: String,
    requests: i64,
    prompt_tokens: i64,
    eval_tokens: i64,
}

#[derive(Deserialize)]
pub struct UsageQuery {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cursor: String,
}

#[derive(Template)]
#[template(path = "admin_usage.html")]
struct UsagePage<'a> {
    nav: Nav<'a>,
    q: UsageQuery,
    listed: Listed<Usage>,
}

/// Requests and tokens per day, user and model, newest day first.
pub async fn usage(State(s): State<AppState>, visitor: Visitor, Query(q): Query<UsageQuery>) -> Response {
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let filters =
        [("user_id", q.user_id.trim()), ("model", q.model.trim()), ("from", q.from.trim()), ("to", q.to.trim())];
    let listed = list(&s, &caller, ("/api/admin/usage", &filters), ("/admin/usage", &filters), &q.cursor).await;
    let listed = match listed {
        Ok(listed) => listed,
        Err(e) => return visitor.respond(e),
    };
    let page = render_private(&UsagePage { nav: visitor.nav(), q, listed });
    visitor.respond(page)
}
