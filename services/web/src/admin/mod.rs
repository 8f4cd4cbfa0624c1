//! The administration pages, for admins only (`Visitor::admin`): users and roles, the model
//! catalog and its tags, the engines, the audit log and usage. They call the services' admin
//! APIs as the signed-in admin, so each service checks the Admin role again.
//!
//! A change is a plain form answered with a redirect back to its page and a notice
//! (`?done=lock`: Post/Redirect/Get); when the service refuses it, the page comes back at once
//! with the service's reason. Notices are looked up from a fixed list, so an address cannot put
//! words of its own on an admin's page.

mod activity;
mod engines;
mod models;
mod roles;
mod tags;
mod users;

use std::fmt;

use askama::Template;
use axum::http::{Method, StatusCode};
use axum::response::{Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

pub use activity::{audit, usage};
pub use engines::{delete_model, engine, engines, pull};
pub use models::{catalog, create_model, model, model_action};
pub use roles::{create_role, delete_role, roles};
pub use tags::{create_tag, tag_action, tags};
pub use users::{user, user_action, users};

use crate::AppState;
use crate::error::{WebError, render_private};
use crate::services::Service;
use crate::session::{Nav, Visitor};

/// What a page says about the last change: done (from `?done=`), or refused and why.
#[derive(Default)]
pub struct Flash {
    pub notice: Option<&'static str>,
    pub error: Option<String>,
}

impl Flash {
    /// The notice `known` gives for `done`; anything else says nothing.
    fn done(done: Option<&str>, known: &[(&str, &'static str)]) -> Self {
        let notice = done.and_then(|d| known.iter().find(|(k, _)| *k == d)).map(|(_, notice)| *notice);
        Self { notice, error: None }
    }

    fn refused(reason: String) -> Self {
        Self { notice: None, error: Some(reason) }
    }

    /// A page showing a refusal is not the page asked for.
    fn status(&self) -> StatusCode {
        if self.error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }
    }
}

/// `?done=` on a page's address.
#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// A posted form whose fields may repeat (a group of checkboxes).
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The field's value; empty when absent.
    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
    }

    /// Every value of the field.
    fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    fn checked(&self, name: &str) -> bool {
        !self.get(name).is_empty()
    }
}

/// A change posted from a list page (tags, roles): checks the form's token and the visitor's
/// role, asks `service`, and goes back to `back?done={done}`, or shows the page again (`show`)
/// with the service's refusal.
#[allow(clippy::too_many_arguments)]
async fn change<'a, Shown>(
    s: &'a AppState,
    visitor: Visitor,
    form: &Fields,
    service: &Service,
    (method, path, body): (Method, String, Option<Value>),
    back: &str,
    done: &str,
    show: impl FnOnce(&'a AppState, Visitor, Flash) -> Shown,
) -> Response
where
    Shown: Future<Output = Response>,
{
    if let Err(e) = visitor.check_csrf(form.get("csrf")) {
        return visitor.respond(e);
    }
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    match service.perform(&caller, method, &path, body.as_ref()).await {
        Ok(()) => visitor.respond(Redirect::to(&format!("{back}?done={done}"))),
        Err(WebError::Refused(reason)) => show(s, visitor, Flash::refused(reason)).await,
        Err(e) => visitor.respond(e),
    }
}

/// `text` percent-encoded as one path segment or query value of a service's URL.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `path` with the query of the given pairs that have a value.
fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> =
        pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", encode(v))).collect();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{}", query.join("&")) }
}

/// A time as the services write it (RFC 3339, UTC), shown to the minute.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct When(String);

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get(..16) {
            Some(minute) => write!(f, "{} UTC", minute.replacen('T', " ", 1)),
            None => f.write_str(&self.0),
        }
    }
}

#[derive(Template)]
#[template(path = "admin.html")]
struct Overview<'a> {
    nav: Nav<'a>,
}

/// The sections of the administration.
pub async fn overview(visitor: Visitor) -> Response {
    if let Err(to) = visitor.admin() {
        return visitor.respond(to);
    }
    let page = render_private(&Overview { nav: visitor.nav() });
    visitor.respond(page)
}

pub async fn script() -> Response {
    crate::pages::asset("text/javascript; charset=utf-8", include_str!("../../static/admin.js"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_encoded() {
        assert_eq!(encode("team/beta:q4 x?&"), "team%2Fbeta%3Aq4%20x%3F%26");
        assert_eq!(link("/admin/users", &[("q", "a b"), ("cursor", "")]), "/admin/users?q=a%20b");
        assert_eq!(link("/admin/users", &[("q", "")]), "/admin/users");
        assert_eq!(When("2026-12-03T13:47:06.123Z".into()).to_string(), "2026-12-03 13:47 UTC");
    }

    #[test]
    fn only_known_notices_show() {
        let known = [("lock", "Locked.")];
        assert_eq!(Flash::done(Some("lock"), &known).notice, Some("Locked."));
        assert_eq!(Flash::done(Some("Click here"), &known).notice, None);
    }
}
