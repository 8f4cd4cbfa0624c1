//! Correlation ids: every request gets an `X-Request-Id` (the client's, if it is sane, else a new
//! UUIDv7), which is logged with every line of the request, forwarded upstream, echoed in the
//! response and put in problem bodies.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled by the current task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// Accepts a client-sent id only if it cannot smuggle anything into logs or headers.
fn sane(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_owned())
}

pub async fn middleware(mut req: Request, next: Next) -> Response {
    let id = req.headers().get(HEADER).and_then(sane).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let value = HeaderValue::from_str(&id).expect("request ids are header-safe");
    req.headers_mut().insert(HEADER, value.clone());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut res = REQUEST_ID.scope(id, next.run(req)).instrument(span).await;
    res.headers_mut().insert(HEADER, value);
    res
}
