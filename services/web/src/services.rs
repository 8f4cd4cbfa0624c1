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

use crate::auth::{Outcome, Refusal};
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

    /// A JSON call whose refusal (4xx but 404) comes back as the service's problem, so that a
    /// form can show each field's message next to it.
    pub async fn submit<T: DeserializeOwned>(
        &self,
        caller: &Caller<'_>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Outcome<T>, WebError> {
        let res = self.send(caller, method, path, body, "application/json").await?;
        let status = res.status();
        let bytes = res.into_body().collect().await.map_err(|_| WebError::Unavailable(self.what))?.to_bytes();
        outcome(status, bytes, self.what)
    }

    /// A JSON call; a refusal (4xx) is `Err(Refused)` with the service's reason, so that the
    /// page can say what was wrong.
    pub async fn json<T: DeserializeOwned>(
        &self,
        caller: &Caller<'_>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, WebError> {
        let bytes = self.call(caller, method, path, body).await?;
        parse(&bytes)
    }

    /// A read anyone may make (the model catalog): as the visitor when signed in, so that their
    /// roles count, else anonymously.
    pub async fn browse<T: DeserializeOwned>(&self, caller: Option<&Caller<'_>>, path: &str) -> Result<T, WebError> {
        if let Some(caller) = caller {
            return self.json(caller, Method::GET, path, None).await;
        }
        let upstream = self.upstream.as_ref().ok_or(WebError::Unavailable(self.what))?;
        let (status, bytes) =
            upstream.json(Method::GET, path, None::<&Value>).await.map_err(|_| WebError::Unavailable(self.what))?;
        outcome(status, bytes, self.what)?.done()
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
        sort(status, bytes, self.what)?.map_err(|refusal| WebError::Refused(refusal.reason()))
    }
}

/// A service's answer sorted: its body, its refusal (4xx but 404: something the visitor can
/// correct), or the error page it is.
fn sort(status: StatusCode, bytes: Bytes, what: &'static str) -> Result<Result<Bytes, Refusal>, WebError> {
    if status == StatusCode::NOT_FOUND {
        return Err(WebError::NotFound);
    }
    if status.is_client_error() {
        return Ok(Err(Refusal::from_problem(status, &bytes)));
    }
    if !status.is_success() {
        return Err(WebError::Unavailable(what));
    }
    Ok(Ok(bytes))
}

/// A service's answer: what it did, or its refusal for the page to show.
pub fn outcome<T: DeserializeOwned>(
    status: StatusCode,
    bytes: Bytes,
    what: &'static str,
) -> Result<Outcome<T>, WebError> {
    match sort(status, bytes, what)? {
        Ok(bytes) => parse(&bytes).map(Outcome::Done),
        Err(refusal) => Ok(Outcome::Refused(refusal)),
    }
}

/// A JSON body; a `204 No Content` reads as `null` (`()` or `Value` for calls that expect nothing).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WebError> {
    let bytes = if bytes.is_empty() { b"null".as_slice() } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| WebError::Internal(e.to_string()))
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
