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
    static REQUEST_ID: HeaderValue;
}

/// The id of the request being handled by the current task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_str().unwrap_or_default().to_owned()).ok()
}

/// Accepts a client-sent id only if it cannot smuggle anything into logs or headers.
fn sane(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
}

fn fresh() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).expect("a UUID is header-safe")
}

/// Runs `handle` for `req` with the request id in scope: set on the request, in the task-local
/// that [`current`] reads, on the tracing span, and echoed on the response.
pub async fn scope<F, Fut>(mut req: Request, handle: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let id = match req.headers().get(HEADER) {
        Some(v) if sane(v) => v.clone(),
        _ => fresh(),
    };
    req.headers_mut().insert(HEADER, id.clone());
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = %req.method(),
        path = %req.uri().path()
    );
    let mut res = REQUEST_ID.scope(id.clone(), handle(req)).instrument(span).await;
    res.headers_mut().insert(HEADER, id);
    res
}

/// [`scope`] as an axum middleware.
pub async fn middleware(req: Request, next: Next) -> Response {
    scope(req, |req| next.run(req)).await
}
