//! Which models a caller may use. The catalog's per-model rules (public, or restricted to roles)
//! come with the admin service; until a policy is plugged in, every model is open to every
//! authenticated caller. Every path that reaches a model asks the policy, not only listings.

use async_trait::async_trait;
use kit::authn::Identity;

#[async_trait]
pub trait ModelAccess: Send + Sync + 'static {
    async fn allowed(&self, who: &Identity, model: &str) -> bool;
}

/// Every authenticated caller may use every model.
pub struct Open;

#[async_trait]
impl ModelAccess for Open {
    async fn allowed(&self, _: &Identity, _: &str) -> bool {
        true
    }
}
