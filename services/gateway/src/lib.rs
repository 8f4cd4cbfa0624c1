//! The gateway: the platform's single entry point. It owns the route table and decides, per
//! request, which service answers, whether the caller is authenticated and allowed, and whether
//! they are within their rate limits; then it forwards the request (in-process or over HTTP)
//! with bodies streamed both ways.

mod body;
pub mod config;
mod docs;
mod front;
mod metrics;
mod proxy;
pub mod routes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::get;
use http::{HeaderName, HeaderValue, Method, header};
use kit::authn::Authenticator;
use kit::ratelimit::RateLimiter;
use kit::server::HttpService;
use kit::service::ServiceContext;
use kit::upstream::Upstream;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::OpenApi;

pub use config::GatewayConfig;
pub use proxy::{USER_EMAIL, USER_ID, USER_ROLES};
pub use routes::{Access, DEFAULT_ROUTES, RouteTable};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot read the route file {0}: {1}")]
    RoutesFile(PathBuf, std::io::Error),
    #[error(transparent)]
    Table(#[from] routes::TableError),
    #[error("invalid CORS origin {0:?}")]
    CorsOrigin(String),
}

pub struct Gateway {
    table: ArcSwap<RouteTable>,
    upstreams: HashMap<String, Upstream>,
    authn: Arc<Authenticator>,
    limiter: RateLimiter,
    config: GatewayConfig,
    docs: docs::Docs,
}

impl Gateway {
    /// The route table in force now.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }
}

/// Loads the route table the configuration asks for.
pub fn load_table(config: &GatewayConfig) -> Result<RouteTable, GatewayError> {
    match &config.routes_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| GatewayError::RoutesFile(path.clone(), e))?;
            Ok(RouteTable::parse(&text)?)
        }
        None => Ok(RouteTable::parse(DEFAULT_ROUTES)?),
    }
}

/// Builds the gateway: the service a process serves when it runs the gateway. `upstreams` maps
/// each service name to where it runs (in this process or elsewhere); `local_docs` are the OpenAPI
/// documents of in-process services; `ops` are the process's `/health`, `/ready` and `/metrics`.
pub fn start(
    ctx: &ServiceContext,
    config: &GatewayConfig,
    upstreams: HashMap<String, Upstream>,
    local_docs: Vec<OpenApi>,
    ops: Router,
) -> Result<(HttpService, Arc<Gateway>), GatewayError> {
    let table = load_table(config)?;
    for service in &table.services {
        if !upstreams.contains_key(service) {
            tracing::warn!(service, "the route table names a service with no upstream; its routes answer 503");
        }
    }
    let cors = cors_layer(config)?;
    let gateway = Arc::new(Gateway {
        table: ArcSwap::from_pointee(table),
        upstreams,
        authn: ctx.authn.clone(),
        limiter: RateLimiter::new(ctx.platform.cache.clone()),
        config: config.clone(),
        docs: docs::Docs::new(local_docs),
    });
    if let Some(path) = &config.routes_file {
        tokio::spawn(watch_routes(gateway.clone(), path.clone(), config.reload_interval, ctx.shutdown.clone()));
    }
    tokio::spawn(limiter_housekeeping(gateway.limiter.clone(), ctx.shutdown.clone()));

    let openapi = Router::new().route("/openapi.json", get(docs::openapi_json)).with_state(gateway.clone());
    let ops = ops
        .merge(openapi)
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::new(["/openapi.json"])));
    let front = front::Front::new(kit::http::edge_layers(ops), gateway.clone(), cors);
    Ok((HttpService::new(front), gateway))
}

/// The CORS layer, or none when no origin is allowed (the default: same-origin only).
fn cors_layer(config: &GatewayConfig) -> Result<Option<CorsLayer>, GatewayError> {
    let origins = &config.cors.allowed_origins;
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
        .max_age(config.cors.max_age);
    if origins.is_empty() {
        return Ok(None);
    }
    if origins.iter().any(|o| o == "*") {
        // Browsers refuse credentials with a wildcard, and so do we.
        return Ok(Some(base.allow_origin(AllowOrigin::any())));
    }
    let list = origins
        .iter()
        .map(|o| HeaderValue::from_str(o.trim_end_matches('/')).map_err(|_| GatewayError::CorsOrigin(o.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(base.allow_origin(AllowOrigin::list(list)).allow_credentials(true)))
}

/// How long a changed route file must stay unchanged before it is applied.
const SETTLE: Duration = Duration::from_millis(50);

/// Re-reads the route file when its content changes. A broken file is logged and ignored: the
/// table in force stays until a valid one replaces it. Requests in flight keep the table they
/// started with.
async fn watch_routes(gw: Arc<Gateway>, path: PathBuf, every: Duration, shutdown: CancellationToken) {
    let mut last = std::fs::read_to_string(&path).ok();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        let Ok(text) = tokio::fs::read_to_string(&path).await else { continue };
        if last.as_deref() == Some(text.as_str()) {
            continue;
        }
        // A file caught half-written can parse and yet miss routes: apply it only once it has
        // stopped changing.
        tokio::time::sleep(SETTLE).await;
        if tokio::fs::read_to_string(&path).await.ok().as_deref() != Some(text.as_str()) {
            continue;
        }
        match RouteTable::parse(&text) {
            Ok(table) => {
                tracing::info!(file = %path.display(), routes = table.rules().count(), "route table reloaded");
                gw.table.store(Arc::new(table));
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "route table not reloaded; keeping the current one")
            }
        }
        last = Some(text);
    }
}

async fn limiter_housekeeping(limiter: RateLimiter, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => limiter.housekeeping(),
            _ = shutdown.cancelled() => return,
        }
    }
}
