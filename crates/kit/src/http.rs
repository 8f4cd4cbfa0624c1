//! What every service's router has in common: request ids, metrics, panic safety, problem+json
//! fallbacks, JSON extraction with problem errors, and the operational endpoints.

use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json as AxumJson, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_http::catch_panic::CatchPanicLayer;

use crate::bus::{Bus, BusStatus};
use crate::cache::Cache;
use crate::db::Db;
use crate::problem::{FieldError, Problem};

/// The value of the cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request's `Authorization: Bearer …` is `expected`. Both sides are hashed first, so
/// the comparison takes the same time wherever a guess first differs.
pub fn bearer_is(headers: &axum::http::HeaderMap, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    given.is_some_and(|given| Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes()))
}

/// Adds the layers every service router needs. `service` labels the metrics.
pub fn service_layers(router: Router, service: &'static str) -> Router {
    let router = router
        .route_layer(middleware::from_fn(move |req: Request, next: Next| track(service, req, next)))
        .fallback(|| async { Problem::not_found("route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept that method")
        });
    edge_layers(router)
}

/// The outermost layers of anything that faces a client: a panic becomes a 500 problem, and
/// every request gets a request id.
pub fn edge_layers(router: Router) -> Router {
    router
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("handler panicked");
            Problem::internal().into_response()
        }))
        .layer(middleware::from_fn(crate::request_id::middleware))
}

async fn track(service: &'static str, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let method = req.method().to_string();
    let start = Instant::now();
    metrics::gauge!("http_requests_in_flight", "service" => service).increment(1.0);
    let res = next.run(req).await;
    metrics::gauge!("http_requests_in_flight", "service" => service).decrement(1.0);
    let status = res.status().as_u16().to_string();
    let labels = [("service", service.to_owned()), ("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    res
}

/// A dependency whose health `/ready` reports.
#[derive(Clone)]
pub enum Dependency {
    /// Critical: while it is down the service answers 503.
    Database(&'static str, Db),
    /// Degraded: the service keeps working without it.
    Cache(Cache),
    Bus(Bus),
}

#[derive(Clone, Default)]
pub struct Readiness {
    deps: Vec<Dependency>,
}

#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ReadyReport {
    /// `ready`, `degraded` (a cache or the bus is down; still serving) or `unavailable`.
    pub status: String,
    /// Each dependency's state; only for the holder of the ops token.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checks: std::collections::BTreeMap<String, CheckReport>,
}

#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CheckReport {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Readiness {
    pub fn with(mut self, dep: Dependency) -> Self {
        self.deps.push(dep);
        self
    }

    pub fn extend(&mut self, other: &Readiness) {
        self.deps.extend(other.deps.iter().cloned());
    }

    pub async fn report(&self) -> ReadyReport {
        const TIMEOUT: Duration = Duration::from_secs(2);
        let mut checks = std::collections::BTreeMap::new();
        let mut critical_down = false;
        let mut degraded = false;
        for dep in &self.deps {
            let (name, backend, critical, result) = match dep {
                Dependency::Database(svc, db) => {
                    let r = tokio::time::timeout(TIMEOUT, db.ping()).await;
                    let r = match r {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("timed out".to_owned()),
                    };
                    let backend = match db.backend() {
                        crate::db::Backend::Postgres => "postgres",
                        crate::db::Backend::Sqlite => "sqlite",
                    };
                    (format!("{svc}.database"), backend, true, r)
                }
                Dependency::Cache(c) => {
                    let r = match tokio::time::timeout(TIMEOUT, c.ping()).await {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err("timed out".to_owned()),
                    };
                    ("cache".to_owned(), c.backend_name(), false, r)
                }
                Dependency::Bus(b) => {
                    let (backend, r) = match b.status() {
                        BusStatus::InProcess => ("in-process", Ok(())),
                        BusStatus::Connected => ("rabbitmq", Ok(())),
                        BusStatus::Disconnected => {
                            ("rabbitmq", Err("not connected; events wait in the outbox".to_owned()))
                        }
                    };
                    ("bus".to_owned(), backend, false, r)
                }
            };
            if result.is_err() {
                if critical { critical_down = true } else { degraded = true }
            }
            checks.insert(
                name,
                CheckReport {
                    status: if result.is_ok() { "up".into() } else { "down".into() },
                    backend: Some(backend.to_owned()),
                    error: result.err(),
                },
            );
        }
        let status = if critical_down {
            "unavailable"
        } else if degraded {
            "degraded"
        } else {
            "ready"
        };
        ReadyReport { status: status.to_owned(), checks }
    }
}

/// `/health` (the process is up), `/ready` (its dependencies answer) and `/metrics`.
///
/// `/health` and `/ready`'s status (its code and `{"status": …}`) are for anyone: probes need no
/// secret. What a check reports (backends, errors that name hosts) and the metrics (labelled with
/// routes, users' models, engines) are only for the holder of `ops_token`, sent as a bearer
/// token; without one configured, nobody reads them over the network.
pub fn ops_routes(service: &'static str, readiness: Readiness, ops_token: Option<String>) -> Router {
    let token: Option<std::sync::Arc<str>> = ops_token.filter(|t| !t.is_empty()).map(Into::into);
    let allowed = move |headers: &axum::http::HeaderMap| token.as_deref().is_some_and(|t| bearer_is(headers, t));
    let may_read = allowed.clone();
    Router::new()
        .route(
            "/health",
            get(move || async move {
                AxumJson(serde_json::json!({"status": "ok", "service": service, "version": env!("CARGO_PKG_VERSION")}))
            }),
        )
        .route(
            "/ready",
            get(move |headers: axum::http::HeaderMap| {
                let readiness = readiness.clone();
                let detailed = may_read(&headers);
                async move {
                    let mut report = readiness.report().await;
                    let code =
                        if report.status == "unavailable" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
                    if !detailed {
                        report.checks.clear();
                    }
                    (code, AxumJson(report))
                }
            }),
        )
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| async move {
                if !allowed(&headers) {
                    return ops_token_required().into_response();
                }
                ([("content-type", "text/plain; version=0.0.4")], crate::telemetry::render_metrics()).into_response()
            }),
        )
}

fn ops_token_required() -> Response {
    let problem = Problem::new(
        StatusCode::UNAUTHORIZED,
        "ops_token_required",
        "metrics are for operators: send the deployment's ops_token as a bearer token",
    );
    ([(axum::http::header::WWW_AUTHENTICATE, "Bearer realm=\"ops\"")], problem).into_response()
}

/// A JSON body extractor whose failures are problem+json with stable codes:
/// `unsupported_media_type` (415), `malformed_json` (400), `invalid_body` (422: wrong types,
/// missing or unknown fields), `payload_too_large` (413).
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
        if !is_json {
            return Err(json_problem(JsonRejection::MissingJsonContentType(Default::default())));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
            } else {
                Problem::bad_request("invalid_body", e.body_text())
            }
        })?;
        match AxumJson::<T>::from_bytes(&bytes) {
            Ok(AxumJson(v)) => Ok(Json(v)),
            // serde reports some shape errors (a number where an enum's name belongs) as syntax
            // errors; a body that parses as JSON has a wrong shape, not a wrong syntax.
            Err(JsonRejection::JsonSyntaxError(e))
                if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() =>
            {
                Err(invalid_body(&e.body_text()))
            }
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        AxumJson(self.0).into_response()
    }
}

/// Largest body [`OptionalJson`] reads (it buffers to tell "no body" from a body).
const OPTIONAL_BODY_LIMIT: usize = 64 * 1024;

/// A JSON body that may be absent altogether (no bytes); a present body gets [`Json`]'s checks.
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, OPTIONAL_BODY_LIMIT).await.map_err(|_| {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        })?;
        if bytes.is_empty() {
            return Ok(OptionalJson(None));
        }
        let Json(value) =
            Json::<T>::from_request(Request::from_parts(parts, axum::body::Body::from(bytes)), state).await?;
        Ok(OptionalJson(Some(value)))
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a JSON body with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(e) => {
            Problem::bad_request("malformed_json", format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => invalid_body(&e.body_text()),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        }
        other => Problem::bad_request("invalid_body", other.body_text()),
    }
}

fn invalid_body(serde_message: &str) -> Problem {
    let mut p =
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", "the body does not match the expected shape");
    p.errors = vec![field_error(serde_message)];
    p
}

/// Turns serde's message ("…target type: path: unknown field `x`, expected …") into a field
/// error clients can show next to the field.
fn field_error(text: &str) -> FieldError {
    let rest = text.split_once("target type: ").map_or(text, |(_, r)| r);
    let (path, msg) = match rest.split_once(": ") {
        Some((path, msg)) if !path.contains(' ') => (path, msg),
        _ => (".", rest),
    };
    let quoted = msg.split('`').nth(1);
    let (field, code) = if msg.starts_with("unknown field") {
        (quoted.unwrap_or(path), "unknown_field")
    } else if msg.starts_with("missing field") {
        (quoted.unwrap_or(path), "required")
    } else {
        (path, "invalid_type")
    };
    let field = if field == "." { "body" } else { field };
    FieldError::new(field, code, msg)
}

/// A query-string extractor with problem errors (`invalid_query`, 400).
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(Problem::bad_request("invalid_query", e.body_text()))
            }
            Err(e) => Err(Problem::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// A path-parameter extractor with problem errors: a malformed id is a 404 (it names nothing).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_| Problem::not_found("resource"))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header::COOKIE;
    use axum::http::{HeaderMap, HeaderValue};

    use super::cookie;

    #[test]
    fn cookies_are_found_by_exact_name_in_every_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; session_x=2"));
        headers.append(COOKIE, HeaderValue::from_static("session=3"));
        assert_eq!(cookie(&headers, "session"), Some("3"));
        assert_eq!(cookie(&headers, "a"), Some("1"));
        assert_eq!(cookie(&headers, "b"), None);
    }
}
