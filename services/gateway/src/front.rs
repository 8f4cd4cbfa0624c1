//! The service the gateway's process serves. Operational routes (`/health`, `/ready`,
//! `/metrics`, `/openapi.json`, `/docs`) go to an axum router; everything else goes straight to
//! the proxy pipeline, without a router in between (it is the hot path: one fallback through
//! axum costs a boxed service clone and a middleware chain per request).

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use kit::Problem;
use tower::{Layer, Service, ServiceExt};
use tower_http::cors::CorsLayer;

use crate::{Gateway, proxy};

#[derive(Clone)]
pub struct Front {
    inner: Arc<Inner>,
}

struct Inner {
    ops: Router,
    gateway: Arc<Gateway>,
    cors: Option<CorsLayer>,
}

impl Front {
    pub fn new(ops: Router, gateway: Arc<Gateway>, cors: Option<CorsLayer>) -> Self {
        Self { inner: Arc::new(Inner { ops, gateway, cors }) }
    }
}

fn is_ops(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics" | "/openapi.json" | "/docs") || path.starts_with("/docs/")
}

/// The proxy pipeline with a request id in scope and panics turned into 500 problems.
async fn proxied(gateway: Arc<Gateway>, req: Request) -> Response {
    kit::request_id::scope(req, |req| async move {
        AssertUnwindSafe(proxy::handle(gateway, req)).catch_unwind().await.unwrap_or_else(|_| {
            tracing::error!("gateway pipeline panicked");
            Problem::internal().into_response()
        })
    })
    .await
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            if is_ops(req.uri().path()) {
                return inner.ops.clone().oneshot(req).await;
            }
            let gateway = inner.gateway.clone();
            match &inner.cors {
                None => Ok(proxied(gateway, req).await),
                Some(cors) => {
                    let service = tower::service_fn(move |req| {
                        let gateway = gateway.clone();
                        async move { Ok::<_, Infallible>(proxied(gateway, req).await) }
                    });
                    cors.layer(service).oneshot(req).await
                }
            }
        })
    }
}
