//! The platform's services, called as the signed-in visitor: their identity in-process, their
//! access token over the network.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
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
        let upstream = self.upstream.as_ref().ok_or(WebError::Unavailable(self.what))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", caller.access))
            .map_err(|e| WebError::Internal(e.to_string()))?;
        let mut req = kit::upstream::on_behalf(
            Request::builder().method(method).uri(path).header(header::ACCEPT, accept),
            caller.identity,
            Some(&bearer),
        );
        let body = match body {
            Some(json) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
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
        outcome(status, &bytes, self.what)
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
        self.submit(caller, method, path, body).await?.done()
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
        outcome(status, &bytes, self.what)?.done()
    }
}

/// A service's answer: what it did, or its refusal (4xx but 404) for the page to show.
pub fn outcome<T: DeserializeOwned>(
    status: StatusCode,
    bytes: &[u8],
    what: &'static str,
) -> Result<Outcome<T>, WebError> {
    if status == StatusCode::NOT_FOUND {
        return Err(WebError::NotFound);
    }
    if status.is_client_error() {
        return Ok(Outcome::Refused(Refusal::from_problem(status, bytes)));
    }
    if !status.is_success() {
        return Err(WebError::Unavailable(what));
    }
    // A `204 No Content` reads as `null`: `()` or `Value` for the calls that expect nothing.
    let bytes = if bytes.is_empty() { b"null".as_slice() } else { bytes };
    serde_json::from_slice(bytes).map(Outcome::Done).map_err(|e| WebError::Internal(e.to_string()))
}
