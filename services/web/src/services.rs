//! The platform's services, called as the signed-in visitor: their identity in-process, their
//! access token over the network.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use kit::authn::Identity;
use kit::upstream::Upstream;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::WebError;

/// A page of a service's list.
#[derive(Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; none on the last.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Who the call is for.
pub struct Caller<'a> {
    pub identity: &'a Identity,
    pub access: &'a str,
}

/// A service the pages call, if the deployment has it.
#[derive(Clone)]
pub struct Service {
    pub upstream: Option<Upstream>,
    /// What the pages call it when it does not answer.
    pub what: &'static str,
}

impl Service {
    /// Sends a request as `caller`; `accept` is the media type asked for.
    pub async fn send(
        &self,
        caller: &Caller<'_>,
        method: Method,
        path: &str,
        body: Option<&Value>,
        accept: &'static str,
    ) -> Result<Response<Body>, WebError> {
        let body = body.map(|json| (HeaderValue::from_static("application/json"), Body::from(json.to_string())));
        self.dispatch(caller, method, path, body, accept).await
    }

    /// Posts a body as it is (an upload's multipart form), refused as `json` is.
    pub async fn upload(
        &self,
        caller: &Caller<'_>,
        path: &str,
        content_type: HeaderValue,
        body: Body,
    ) -> Result<Bytes, WebError> {
        let res = self.dispatch(caller, Method::POST, path, Some((content_type, body)), "application/json").await?;
        self.checked(res).await
    }

    async fn dispatch(
        &self,
        caller: &Caller<'_>,
        method: Method,
        path: &str,
        body: Option<(HeaderValue, Body)>,
        accept: &'static str,
    ) -> Result<Response<Body>, WebError> {
        let upstream = self.upstream.as_ref().ok_or(WebError::Unavailable(self.what))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", caller.access))
            .map_err(|e| WebError::Internal(e.to_string()))?;
        let mut req = kit::upstream::on_behalf(
            Request::builder().method(method).uri(path).header(header::ACCEPT, accept),
            caller.identity,
            Some(&bearer),
        );
        let body = match body {
            Some((content_type, body)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                body
            }
            None => Body::empty(),
        };
        let req = req.body(body).map_err(|e| WebError::Internal(e.to_string()))?;
        upstream.call(req).await.map_err(|_| WebError::Unavailable(self.what))
    }

    /// A JSON call; a refusal (4xx) is `Err(Refused)` with the service's problem, so that the
    /// page can say what was wrong.
    pub async fn json<T: DeserializeOwned>(
        &self,
        caller: &Caller<'_>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, WebError> {
        let bytes = self.call(caller, method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| WebError::Internal(e.to_string()))
    }

    /// A call whose answer the page does not need (a change, a deletion), refused as `json` is.
    pub async fn perform(
        &self,
        caller: &Caller<'_>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), WebError> {
        self.call(caller, method, path, body).await.map(drop)
    }

    async fn call(
        &self,
        caller: &Caller<'_>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Bytes, WebError> {
        let res = self.send(caller, method, path, body, "application/json").await?;
        self.checked(res).await
    }

    /// The body of a successful answer; a refusal as `Refused` with the service's reason.
    pub async fn checked(&self, res: Response<Body>) -> Result<Bytes, WebError> {
        let status = res.status();
        let bytes = res.into_body().collect().await.map_err(|_| WebError::Unavailable(self.what))?.to_bytes();
        if status == StatusCode::NOT_FOUND {
            return Err(WebError::NotFound);
        }
        if status.is_client_error() {
            let problem: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(WebError::Refused(reason(&problem)));
        }
        if !status.is_success() {
            return Err(WebError::Unavailable(self.what));
        }
        Ok(bytes)
    }
}

/// What a problem says was wrong, with the fields it names: a form can then be corrected.
fn reason(problem: &Value) -> String {
    let detail = problem["detail"].as_str().unwrap_or("refused");
    let fields: Vec<String> = problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{}: {}", e["field"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or("invalid")))
        .collect();
    if fields.is_empty() { detail.to_owned() } else { format!("{detail} ({})", fields.join("; ")) }
}

/// Whether the page's script asked for the answer as server-sent events.
pub fn wants_events(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"))
}

/// A service's event stream, passed on to the browser as it comes (its status and content type
/// kept), never cached.
pub fn pass_events(res: Response<Body>) -> Response {
    let (parts, events) = res.into_parts();
    let mut out = Response::new(Body::new(events));
    *out.status_mut() = parts.status;
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    out.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out
}
