//! The contract between a service crate and the binary that composes services.

use std::sync::Arc;

use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::authn::Authenticator;
use crate::config::Platform;
use crate::http::Readiness;

/// What a service needs to start.
#[derive(Clone)]
pub struct ServiceContext {
    pub platform: Platform,
    /// Verifies callers; shared by every service of the process.
    pub authn: Arc<Authenticator>,
    /// Cancelled when the process shuts down; background tasks stop on it.
    pub shutdown: CancellationToken,
}

/// A started service: its routes (with [`service_layers`](crate::http::service_layers) applied),
/// what `/ready` should check for it, and its OpenAPI document.
pub struct ServiceHandle {
    pub name: &'static str,
    pub router: Router,
    pub readiness: Readiness,
    pub openapi: utoipa::openapi::OpenApi,
}
