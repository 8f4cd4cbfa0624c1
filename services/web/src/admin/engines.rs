//! `/admin/engines`: the engine nodes and their state, a node's models, deleting one and pulling
//! one (the inference service's `/api/admin/engines…`).
//!
//! A pull streams its progress. The node page's script (`static/admin.js`) posts the pull form
//! asking for `text/event-stream` and gets the inference service's events as they come; a plain
//! form post waits for the pull to end and comes back to the node's page.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{Redirect, Response};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Done, Fields, Flash, When, encode};
use crate::AppState;
use crate::error::{WebError, render_private};
use crate::extract::{Form, Path, Query};
use crate::services::{pass_events, wants_events};
use crate::session::{Nav, Visitor};

#[derive(Deserialize)]
struct Node {
    id: String,
    url: Option<String>,
    source: String,
    healthy: bool,
    breaker: String,
    models: Vec<String>,
    loaded: Vec<String>,
    in_flight: usize,
    capacity: usize,
    last_probe_at: Option<When>,
    last_error: Option<String>,
}

#[derive(Deserialize)]
struct Admission {
    running: usize,
    waiting: usize,
    capacity: usize,
}

#[derive(Deserialize)]
struct Fleet {
    items: Vec<Node>,
    admission: Admission,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    parameter_size: String,
    #[serde(default)]
    quantization_level: String,
}

#[derive(Deserialize)]
struct Loaded {
    size: u64,
}

#[derive(Deserialize)]
struct NodeModel {
    name: String,
    size: u64,
    details: Details,
    modified_at: When,
    loaded: Option<Loaded>,
}

impl NodeModel {
    fn disk(&self) -> String {
        bytes(self.size)
    }

    fn memory(&self) -> Option<String> {
        self.loaded.as_ref().map(|l| bytes(l.size))
    }
}

#[derive(Deserialize)]
struct NodeModels {
    items: Vec<NodeModel>,
}

/// Bytes for a reader: `1.5 GB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[derive(Template)]
#[template(path = "admin_engines.html")]
struct EnginesPage<'a> {
    nav: Nav<'a>,
    fleet: Fleet,
}

/// Every node with its state, and the platform's admission queue.
pub async fn engines(State(s): State<AppState>, visitor: Visitor) -> Response {
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let fleet = match s.inference.json::<Fleet>(&caller, Method::GET, "/api/admin/engines", None).await {
        Ok(fleet) => fleet,
        Err(e) => return visitor.respond(e),
    };
    let page = render_private(&EnginesPage { nav: visitor.nav(), fleet });
    visitor.respond(page)
}

#[derive(Template)]
#[template(path = "admin_engine.html")]
struct EnginePage<'a> {
    nav: Nav<'a>,
    flash: Flash,
    node: Node,
    models: Vec<NodeModel>,
    /// Why the node's models could not be listed.
    models_error: Option<String>,
}

const DONE: &[(&str, &str)] =
    &[("pull", "The model is pulled onto the node."), ("delete", "The model is deleted from the node.")];

/// A node's state and models, with forms to delete one and to pull one.
pub async fn engine(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(node): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    show(&s, visitor, &node, Flash::done(q.done.as_deref(), DONE)).await
}

async fn show(s: &AppState, visitor: Visitor, node: &str, flash: Flash) -> Response {
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let one = format!("/api/admin/engines/{}", encode(node));
    let its_models = format!("{one}/models");
    let status = s.inference.json::<Node>(&caller, Method::GET, &one, None);
    let models = s.inference.json::<NodeModels>(&caller, Method::GET, &its_models, None);
    let (node, models) = match tokio::join!(status, models) {
        (Ok(node), models) => (node, models),
        (Err(e), _) => return visitor.respond(e),
    };
    // A node that does not answer still has a page: its state says why.
    let (models, models_error) = match models {
        Ok(m) => (m.items, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let status = flash.status();
    let page = render_private(&EnginePage { nav: visitor.nav(), flash, node, models, models_error });
    visitor.respond((status, page))
}

/// Removes `model` from the node.
pub async fn delete_model(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(node): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    if let Err(e) = visitor.check_csrf(form.get("csrf")) {
        return visitor.respond(e);
    }
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let path = format!("/api/admin/engines/{}/models?model={}", encode(&node), encode(form.get("model")));
    let deleted = s.inference.perform(&caller, Method::DELETE, &path, None).await;
    back(&s, visitor, &node, deleted, "delete").await
}

/// Pulls `model` onto the node: the progress as events for the page's script, or, for a plain
/// form, the node's page once the pull is over.
pub async fn pull(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(node): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    if let Err(e) = visitor.check_csrf(form.get("csrf")) {
        return visitor.respond(e);
    }
    let caller = match visitor.admin() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let path = format!("/api/admin/engines/{}/pull", encode(&node));
    let body = json!({"model": form.get("model").trim(), "insecure": form.checked("insecure")});
    let res = match s.inference.send(&caller, Method::POST, &path, Some(&body), "text/event-stream").await {
        Ok(res) => res,
        Err(e) => return visitor.respond(e),
    };
    if wants_events(&headers) {
        return visitor.respond(pass_events(res));
    }
    let pulled = if res.status().is_success() {
        match res.into_body().collect().await {
            Ok(events) => outcome(&String::from_utf8_lossy(&events.to_bytes())),
            Err(_) => Err(WebError::Unavailable(s.inference.what)),
        }
    } else {
        // Refused before the pull started (a bad name, no such node): the service's problem.
        s.inference.checked(res).await.map(drop)
    };
    back(&s, visitor, &node, pulled, "pull").await
}

/// How a pull's event stream ended: `done`, or `error` with its problem.
fn outcome(events: &str) -> Result<(), WebError> {
    let mut last = ("", "");
    for block in events.split("\n\n") {
        let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
            last = (event, data);
        }
    }
    match last {
        ("done", _) => Ok(()),
        ("error", data) => {
            let problem: Value = serde_json::from_str(data).unwrap_or_default();
            Err(WebError::Refused(problem["detail"].as_str().unwrap_or("the pull failed").to_owned()))
        }
        _ => Err(WebError::Refused("the pull ended without a result; look at the node's models".into())),
    }
}

/// After a change to a node: its page with a notice, or with the refusal.
async fn back(s: &AppState, visitor: Visitor, node: &str, result: Result<(), WebError>, done: &str) -> Response {
    match result {
        Ok(()) => visitor.respond(Redirect::to(&format!("/admin/engines/{}?done={done}", encode(node)))),
        Err(WebError::Refused(reason)) => show(s, visitor, node, Flash::refused(reason)).await,
        Err(e) => visitor.respond(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pulls_end_is_its_last_event() {
        let done = "event: progress\ndata: {\"status\":\"pulling\"}\n\nevent: done\ndata: {\"status\":\"success\"}\n\n";
        assert!(outcome(done).is_ok());
        let failed = "event: progress\ndata: {}\n\nevent: error\ndata: {\"detail\":\"file does not exist\"}\n\n";
        assert!(matches!(outcome(failed), Err(WebError::Refused(r)) if r == "file does not exist"));
        assert!(outcome(": keep-alive\n\n").is_err());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000_000), "1.5 GB");
    }
}
