//! The auth service as the identity source of authenticators in its own process: the same
//! answers as the introspection endpoint, without an HTTP round trip.

use std::sync::Arc;

use async_trait::async_trait;
use kit::Problem;
use kit::authn::{IdentitySource, Introspection};
use kit::tokens::Jwks;

use crate::service::AuthService;

pub struct LocalIdentitySource(pub Arc<AuthService>);

#[async_trait]
impl IdentitySource for LocalIdentitySource {
    async fn jwks(&self) -> Result<Jwks, Problem> {
        Ok(self.0.jwks())
    }

    async fn introspect(&self, credential: &str) -> Result<Option<Introspection>, Problem> {
        self.0.introspect(credential).await.map_err(|e| e.into_problem())
    }
}
