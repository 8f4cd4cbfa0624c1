//! The request pipeline: route → size check → authenticate → authorise → rate-limit → forward.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use kit::Problem;
use kit::authn::{Identity, challenge, unauthenticated};
use kit::ratelimit::{Quota, RateKey};

use crate::Gateway;
use crate::body::LimitedBody;
use crate::routes::{Lookup, Rule};

/// Headers that describe one connection, not the message: never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

pub const USER_ID: HeaderName = HeaderName::from_static("x-user-id");
pub const USER_EMAIL: HeaderName = HeaderName::from_static("x-user-email");
pub const USER_ROLES: HeaderName = HeaderName::from_static("x-user-roles");
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

pub async fn handle(gw: Arc<Gateway>, req: Request) -> Response {
    let start = Instant::now();
    let table = gw.table.load();
    let (mut parts, body) = req.into_parts();
    // A clone of the URI shares its bytes: the path can be borrowed while the headers change.
    let uri = parts.uri.clone();
    let path = uri.path();
    if !is_clean(path) {
        return Problem::bad_request("invalid_path", "the path contains empty, `.` or `..` segments").into_response();
    }
    let (rule, rewritten) = match table.lookup(&parts.method, path) {
        Lookup::Found(rule, params) => (rule.clone(), rule.rewrite(&params)),
        Lookup::MethodNotAllowed(allowed) => return method_not_allowed(&allowed),
        // Until a service (the web application) claims `/`, a person opening the address in a
        // browser lands on the API documentation rather than on a JSON error.
        Lookup::NotFound if path == "/" => return axum::response::Redirect::temporary("/docs/").into_response(),
        Lookup::NotFound => return Problem::not_found("route").into_response(),
    };

    let response = match admit(&gw, &rule, &mut parts).await {
        Ok(identity) => forward(&gw, &rule, parts, body, rewritten, identity).await,
        Err(res) => res,
    };
    rule.metrics.record(response.status(), start.elapsed());
    response
}

/// Everything that may refuse the request before it reaches a service. Returns the caller's
/// identity (if any).
async fn admit(gw: &Gateway, rule: &Rule, parts: &mut http::request::Parts) -> Result<Option<Identity>, Response> {
    let limit = rule.body_limit.unwrap_or(gw.config.body_limit);
    if content_length(&parts.headers).is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    // Identity headers are the gateway's to set; a client's copies are dropped before anything
    // else can see them.
    parts.headers.remove(&USER_ID);
    parts.headers.remove(&USER_EMAIL);
    parts.headers.remove(&USER_ROLES);

    let ip = RateKey::network(client_ip(parts, &gw.config.trusted_proxies), gw.config.rate_limits.ip_prefixes);
    let identity = match gw.authn.authenticate_headers(&parts.headers).await {
        Ok(identity) => identity,
        // On anonymous routes a bad credential is ignored (a stale token on the login page); the
        // service still sees the header and may refuse it.
        Err(_) if !rule.requires_identity() => None,
        Err(problem) => {
            let res = if problem.status == 401 { challenge(problem) } else { problem.into_response() };
            // Failed authentications count against the client's anonymous budget, so that guessing
            // tokens is rate-limited like any anonymous traffic.
            return Err(limited(gw, "anonymous", gw.config.rate_limits.anonymous, ip).await.err().unwrap_or(res));
        }
    };
    match &identity {
        Some(id) => limited(gw, "user", gw.config.rate_limits.authenticated, RateKey::User(id.user_id)).await?,
        None => limited(gw, "anonymous", gw.config.rate_limits.anonymous, ip).await?,
    }
    if let Some(class) = &rule.rate_limit {
        match gw.config.rate_limits.classes.get(class) {
            Some(quota) => limited(gw, class, *quota, ip).await?,
            None => tracing::warn!(class, route = %rule.path, "route names an unknown rate-limit class"),
        }
    }
    if rule.requires_identity() {
        let Some(id) = &identity else { return Err(challenge(unauthenticated())) };
        if !id.has_any_role(&rule.roles) {
            return Err(Problem::forbidden("your roles do not allow this operation").into_response());
        }
    }
    Ok(identity)
}

async fn limited(gw: &Gateway, class: &str, quota: Quota, key: RateKey) -> Result<(), Response> {
    match gw.limiter.check(class, quota, key).await {
        Ok(()) => Ok(()),
        Err(wait) => {
            metrics::counter!("gateway_rate_limited_total", "class" => class.to_owned()).increment(1);
            Err(Problem::too_many_requests(wait.as_secs_f64().ceil() as u64).into_response())
        }
    }
}

async fn forward(
    gw: &Gateway,
    rule: &Rule,
    mut parts: http::request::Parts,
    body: Body,
    rewritten: Option<String>,
    identity: Option<Identity>,
) -> Response {
    let Some(upstream) = gw.upstreams.get(&rule.service) else {
        return Problem::unavailable("upstream_unavailable", format!("the {} service is not deployed", rule.service))
            .into_response();
    };
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let trusted = peer.is_some_and(|p| gw.config.trusted_proxies.contains(&p));
    strip_hop_by_hop(&mut parts.headers);
    set_forwarded(&mut parts.headers, peer, trusted);
    if let Some(id) = &identity {
        set_identity_headers(&mut parts.headers, id);
        parts.extensions.insert(id.clone());
    }
    if let Some(path) = rewritten {
        let pq = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        parts.uri = match Uri::try_from(pq) {
            Ok(uri) => uri,
            Err(_) => {
                return Problem::bad_request("invalid_path", "the request path cannot be forwarded").into_response();
            }
        };
    }
    let limit = rule.body_limit.unwrap_or(gw.config.body_limit);
    // A request without a body (most GETs) needs no counting.
    let (body, exceeded) = if http_body::Body::size_hint(&body).exact() == Some(0) {
        (body, None)
    } else {
        let (limited, exceeded) = LimitedBody::new(body, limit);
        (Body::new(limited), Some(exceeded))
    };
    let req = http::Request::from_parts(parts, body);

    let timeout = rule.timeout.unwrap_or(gw.config.request_timeout);
    let result = tokio::time::timeout(timeout, upstream.call(req)).await;
    if exceeded.is_some_and(|e| e.load(Ordering::Relaxed)) {
        return too_large(limit);
    }
    match result {
        Ok(Ok(mut res)) => {
            strip_hop_by_hop(res.headers_mut());
            res
        }
        Ok(Err(e)) => e.into_problem(&rule.service).into_response(),
        Err(_) => kit::upstream::UpstreamError::Timeout.into_problem(&rule.service).into_response(),
    }
}

/// Refuses paths that different servers might normalise differently: empty, `.` or `..`
/// segments (also percent-encoded) and encoded slashes.
fn is_clean(path: &str) -> bool {
    if !path.contains("//") && !path.contains("/.") && !path.contains('%') {
        return true;
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    segments.iter().enumerate().all(|(i, seg)| {
        let lower = seg.to_ascii_lowercase();
        let decoded = lower.replace("%2e", ".");
        // An empty last segment is a trailing slash, which is fine.
        (i == last || !seg.is_empty()) && decoded != "." && decoded != ".." && !lower.contains("%2f")
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn too_large(limit: u64) -> Response {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the request body exceeds {limit} bytes"))
        .into_response()
}

fn method_not_allowed(allowed: &[http::Method]) -> Response {
    let mut res =
        Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept that method")
            .into_response();
    let allow = allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
    if let Ok(v) = HeaderValue::from_str(&allow) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}

/// The client's address: the peer's, unless the peer is a trusted proxy, in which case the
/// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(parts: &http::request::Parts, trusted: &[IpAddr]) -> IpAddr {
    let peer =
        parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    if !trusted.contains(&peer) {
        return peer;
    }
    parts
        .headers
        .get_all(&FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !HOP_BY_HOP.iter().any(|h| headers.contains_key(h)) {
        return;
    }
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
}

fn set_forwarded(headers: &mut HeaderMap, peer: Option<IpAddr>, trusted: bool) {
    let Some(peer) = peer else { return };
    let chain = match headers.get(&FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if trusted => format!("{existing}, {peer}"),
        _ => peer.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&chain) {
        headers.insert(FORWARDED_FOR, v);
    }
    if !trusted || !headers.contains_key(&FORWARDED_PROTO) {
        headers.insert(FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if (!trusted || !headers.contains_key(&FORWARDED_HOST))
        && let Some(host) = headers.get(header::HOST).cloned()
    {
        headers.insert(FORWARDED_HOST, host);
    }
    // The upstream's own authority goes in Host; the client's is in X-Forwarded-Host.
    headers.remove(header::HOST);
}

fn set_identity_headers(headers: &mut HeaderMap, id: &Identity) {
    if let Ok(v) = HeaderValue::from_str(&id.user_id.to_string()) {
        headers.insert(USER_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&id.email) {
        headers.insert(USER_EMAIL, v);
    }
    if let Ok(v) = HeaderValue::from_str(&id.roles.join(",")) {
        headers.insert(USER_ROLES, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_ambiguous_paths() {
        for ok in ["/api/auth/me", "/api/x/", "/", "/api/a.b/c..d"] {
            assert!(is_clean(ok), "{ok}");
        }
        for bad in ["/api/../admin", "/api/./x", "/api//x", "/api/%2e%2e/x", "/api/%2E/x", "/api/a%2fb"] {
            assert!(!is_clean(bad), "{bad}");
        }
    }

    #[test]
    fn client_ip_trusts_forwarded_for_only_from_trusted_proxies() {
        let lb: IpAddr = "10.0.0.1".parse().unwrap();
        let mut req = http::Request::builder().header("x-forwarded-for", "6.6.6.6, 1.2.3.4").body(()).unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::new(lb, 5000)));
        let (parts, _) = req.into_parts();
        assert_eq!(client_ip(&parts, &[]), lb, "untrusted peer: its header is ignored");
        assert_eq!(client_ip(&parts, &[lb]), "1.2.3.4".parse::<IpAddr>().unwrap(), "right-most untrusted hop");
    }

    #[test]
    fn strips_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
