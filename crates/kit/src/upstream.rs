//! Calling another service: in-process (its router, no network hop) in all-in-one mode, or over
//! HTTP to one of its instances in split mode. Callers cannot tell the difference.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::problem::Problem;
use crate::registry::Registry;
use crate::resilience::CircuitBreaker;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no healthy instance of the service")]
    NoInstance,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("upstream failed: {0}")]
    Failed(String),
    #[error("upstream timed out")]
    Timeout,
    #[error("invalid upstream url: {0}")]
    InvalidUrl(String),
}

impl UpstreamError {
    pub fn into_problem(self, service: &str) -> Problem {
        match self {
            UpstreamError::Timeout => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("the {service} service did not answer in time"),
            ),
            UpstreamError::NoInstance | UpstreamError::Connect(_) => {
                Problem::unavailable("upstream_unavailable", format!("the {service} service is not reachable"))
            }
            UpstreamError::Failed(_) | UpstreamError::InvalidUrl(_) => {
                Problem::new(StatusCode::BAD_GATEWAY, "bad_gateway", format!("the {service} service failed"))
            }
        }
    }
}

#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
    /// Sent with every request, whoever the caller: the credential of a service that wants its
    /// own (an engine's key), not a user's.
    authorization: Option<HeaderValue>,
}

enum Inner {
    InProcess(Router),
    Http(Box<HttpPool>),
}

struct HttpPool {
    source: Source,
    next: AtomicUsize,
    client: HttpClient,
}

/// Where the instances come from.
enum Source {
    Static(Vec<Arc<Target>>),
    /// The instances the registry has heard from; a target (and its breaker) is kept per URL.
    Registry {
        registry: Arc<Registry>,
        service: String,
        known: Mutex<HashMap<String, Arc<Target>>>,
    },
}

struct Target {
    url: String,
    scheme: Scheme,
    authority: Authority,
    breaker: CircuitBreaker,
}

impl Target {
    fn parse(url: &str) -> Result<Self, UpstreamError> {
        let uri: Uri = url.parse().map_err(|_| UpstreamError::InvalidUrl(url.to_owned()))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| UpstreamError::InvalidUrl(url.to_owned()))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(UpstreamError::InvalidUrl(format!(
                "{url} (only http:// and https:// upstreams are supported)"
            )));
        }
        let authority = uri.authority().cloned().ok_or_else(|| UpstreamError::InvalidUrl(url.to_owned()))?;
        Ok(Target { url: url.to_owned(), scheme, authority, breaker: CircuitBreaker::new(5, Duration::from_secs(5)) })
    }
}

/// A request to another service made on behalf of `identity`: the identity travels with it
/// (a service in the same process takes it as the gateway's), and so do the caller's
/// `authorization` (a service over the network verifies it again) and the request id.
pub fn on_behalf(
    builder: http::request::Builder,
    identity: &crate::authn::Identity,
    authorization: Option<&HeaderValue>,
) -> http::request::Builder {
    let mut builder = builder.extension(identity.clone());
    if let Some(auth) = authorization {
        builder = builder.header(header::AUTHORIZATION, auth.clone());
    }
    if let Some(id) = crate::request_id::current().and_then(|id| HeaderValue::from_str(&id).ok()) {
        builder = builder.header(crate::request_id::HEADER, id);
    }
    builder
}

/// Turns host names into addresses for outbound connections. The system's resolver unless a
/// caller must vet where it connects: an announced engine's name is resolved and checked on every
/// connection, so that a name that later resolves into the platform's own network is refused.
#[async_trait::async_trait]
pub trait Resolve: Send + Sync + 'static {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`, on a blocking thread).
pub struct SystemResolver;

#[async_trait::async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect())
    }
}

/// A [`Resolve`] as hyper's connector takes one. The connector connects to exactly the addresses
/// it answers (addresses in the URL itself are not resolved).
#[derive(Clone)]
pub struct Resolver(Arc<dyn Resolve>);

impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolve = self.0.clone();
        Box::pin(async move {
            let ips = resolve.resolve(name.as_str()).await?;
            // Port 0: the connector puts the URL's port in.
            Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect::<Vec<_>>().into_iter())
        })
    }
}

pub type HttpClient = Client<HttpsConnector<HttpConnector<Resolver>>, Body>;

/// `Bearer <token>` as a header value, marked sensitive (kept out of logs).
pub fn bearer(token: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The HTTP client every outbound call shares: keep-alive pool, no Nagle, bounded connect time;
/// http or https (an engine behind a TLS tunnel), HTTP/1.1 either way.
pub fn http_client() -> HttpClient {
    http_client_resolving(Arc::new(SystemResolver))
}

/// [`http_client`] with names resolved by `resolver`.
pub fn http_client_resolving(resolver: Arc<dyn Resolve>) -> HttpClient {
    let mut connector = HttpConnector::new_with_resolver(Resolver(resolver));
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(crate::tls::client_config())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(connector)
}

impl Upstream {
    pub fn in_process(router: Router) -> Self {
        Self { inner: Arc::new(Inner::InProcess(router)), authorization: None }
    }

    /// Instances reached over HTTP, balanced round-robin, skipping those whose breaker is open.
    pub fn http(urls: &[String]) -> Result<Self, UpstreamError> {
        Self::http_resolving(urls, Arc::new(SystemResolver))
    }

    /// [`Upstream::http`] with host names resolved by `resolver` on every new connection.
    pub fn http_resolving(urls: &[String], resolver: Arc<dyn Resolve>) -> Result<Self, UpstreamError> {
        let targets = urls.iter().map(|u| Target::parse(u).map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Err(UpstreamError::NoInstance);
        }
        Ok(Self::pool(Source::Static(targets), http_client_resolving(resolver)))
    }

    /// The instances of `service` that announce themselves to `registry`.
    pub fn discovered(registry: Arc<Registry>, service: &str) -> Self {
        Self::pool(Source::Registry { registry, service: service.to_owned(), known: Mutex::default() }, http_client())
    }

    fn pool(source: Source, client: HttpClient) -> Self {
        Self {
            inner: Arc::new(Inner::Http(Box::new(HttpPool { source, next: AtomicUsize::new(0), client }))),
            authorization: None,
        }
    }

    /// The same instances, every request to them carrying `authorization` (see [`bearer`]).
    pub fn with_authorization(self, authorization: HeaderValue) -> Self {
        Self { authorization: Some(authorization), ..self }
    }

    pub fn is_in_process(&self) -> bool {
        matches!(&*self.inner, Inner::InProcess(_))
    }

    /// Sends the request (its URI's path and query are kept; scheme and host are the instance's).
    /// A request without a body that fails to connect is retried once on another instance;
    /// nothing is retried once it may have reached a service.
    pub async fn call(&self, mut req: Request<Body>) -> Result<Response<Body>, UpstreamError> {
        if let Some(auth) = &self.authorization {
            req.headers_mut().insert(header::AUTHORIZATION, auth.clone());
        }
        match &*self.inner {
            Inner::InProcess(router) => Ok(router.clone().oneshot(req).await.unwrap_or_else(|never| match never {})),
            Inner::Http(pool) => pool.call(req).await,
        }
    }

    /// Calls a JSON endpoint and returns its status and body.
    pub async fn json<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, Bytes), UpstreamError> {
        let body = match body {
            Some(b) => Some(Bytes::from(serde_json::to_vec(b).map_err(|e| UpstreamError::Failed(e.to_string()))?)),
            None => None,
        };
        // Built twice when needed: a request that failed to connect was never sent, so it can be
        // sent to another instance whatever its method.
        let build = || {
            let mut builder =
                Request::builder().method(method.clone()).uri(path).header(header::ACCEPT, "application/json");
            if body.is_some() {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
            }
            if let Some(id) = crate::request_id::current().and_then(|id| HeaderValue::from_str(&id).ok()) {
                builder = builder.header(crate::request_id::HEADER, id);
            }
            if let Some(auth) = &self.authorization {
                builder = builder.header(header::AUTHORIZATION, auth.clone());
            }
            builder
                .body(body.clone().map_or_else(Body::empty, Body::from))
                .map_err(|e| UpstreamError::Failed(e.to_string()))
        };
        let res = match &*self.inner {
            Inner::InProcess(_) => self.call(build()?).await?,
            Inner::Http(pool) => pool.send_with_retry(build()?, Some(build()?)).await?,
        };
        let status = res.status();
        let bytes = res.into_body().collect().await.map_err(|e| UpstreamError::Failed(e.to_string()))?.to_bytes();
        Ok((status, bytes))
    }

    /// GETs a JSON document; any non-2xx status is an error.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, UpstreamError> {
        let (status, body) = self.json::<()>(Method::GET, path, None).await?;
        if !status.is_success() {
            return Err(UpstreamError::Failed(format!("GET {path}: {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| UpstreamError::Failed(format!("GET {path}: {e}")))
    }
}

impl HttpPool {
    /// The next instance round-robin whose breaker lets a call through, other than `skip`.
    fn pick(&self, skip: Option<&Arc<Target>>) -> Option<Arc<Target>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let choose = |targets: &[Arc<Target>]| {
            let n = targets.len();
            (0..n)
                .map(|i| &targets[(start + i) % n])
                .find(|t| skip.is_none_or(|s| !Arc::ptr_eq(s, t)) && t.breaker.allow())
                .cloned()
        };
        match &self.source {
            Source::Static(targets) => choose(targets),
            Source::Registry { registry, service, known } => {
                let live = registry.live(service);
                let targets: Vec<Arc<Target>> = {
                    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
                    known.retain(|url, _| live.contains(url));
                    live.iter()
                        .filter_map(|url| match known.get(url) {
                            Some(t) => Some(t.clone()),
                            None => {
                                let t = Arc::new(Target::parse(url).ok()?);
                                known.insert(url.clone(), t.clone());
                                Some(t)
                            }
                        })
                        .collect()
                };
                choose(&targets)
            }
        }
    }

    async fn call(&self, req: Request<Body>) -> Result<Response<Body>, UpstreamError> {
        // Copying a request costs its headers; only worth it when another instance may exist.
        let retry = match &self.source {
            Source::Static(targets) if targets.len() < 2 => None,
            _ => bodiless_copy(&req),
        };
        self.send_with_retry(req, retry).await
    }

    /// Sends `req`; if it cannot connect, sends `retry` (the same request, when one could be
    /// made) to another instance.
    async fn send_with_retry(
        &self,
        req: Request<Body>,
        retry: Option<Request<Body>>,
    ) -> Result<Response<Body>, UpstreamError> {
        let first = self.pick(None).ok_or(UpstreamError::NoInstance)?;
        match self.send(&first, req).await {
            Err(UpstreamError::Connect(e)) => match (retry, self.pick(Some(&first))) {
                (Some(copy), Some(second)) => self.send(&second, copy).await,
                _ => Err(UpstreamError::Connect(e)),
            },
            other => other,
        }
    }

    async fn send(&self, target: &Target, mut req: Request<Body>) -> Result<Response<Body>, UpstreamError> {
        let pq = req.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::builder()
            .scheme(target.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| UpstreamError::Failed(e.to_string()))?;
        match self.client.request(req).await {
            Ok(res) => {
                target.breaker.record_success();
                Ok(res.map(Body::new))
            }
            Err(e) if e.is_connect() => {
                target.breaker.record_failure();
                let e = crate::error_chain(&e);
                tracing::warn!(upstream = %target.url, error = %e, "upstream connect failed");
                Err(UpstreamError::Connect(e))
            }
            Err(e) => {
                target.breaker.record_failure();
                Err(UpstreamError::Failed(crate::error_chain(&e)))
            }
        }
    }
}

/// A copy of a request that has no body, so that it can be sent again.
fn bodiless_copy(req: &Request<Body>) -> Option<Request<Body>> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let empty = http_body::Body::size_hint(req.body()).exact() == Some(0);
    if !(safe && empty) {
        return None;
    }
    let mut copy = Request::builder().method(req.method().clone()).uri(req.uri().clone()).version(req.version());
    if let Some(h) = copy.headers_mut() {
        *h = req.headers().clone();
    }
    copy.body(Body::empty()).ok()
}
