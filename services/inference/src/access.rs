//! Which models a caller may use. Every path that reaches a model asks the policy, not only
//! listings; a model the caller may not use is "not found" to them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use kit::authn::{ADMIN_ROLE, Identity};
use kit::bus::{EVENTS_EXCHANGE, Handler, HandlerError, Message, Subscription};
use kit::config::Platform;
use ollamanet_catalog::{Access, Catalog};
use serde::{Deserialize, Serialize};

#[async_trait]
pub trait ModelAccess: Send + Sync + 'static {
    async fn allowed(&self, who: &Identity, model: &str) -> bool;
}

/// Every authenticated caller may use every model (no catalog).
pub struct Open;

#[async_trait]
impl ModelAccess for Open {
    async fn allowed(&self, _: &Identity, _: &str) -> bool {
        true
    }
}

/// Rules kept in memory at most; beyond, the map starts again (a catalog read each is cheap).
const MAX_RULES: usize = 10_000;

/// Who may use a model some engine has but the catalog does not describe
/// (`inference.uncatalogued`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Uncatalogued {
    /// Every signed-in account: a pulled model works before anyone catalogues it.
    Users,
    /// Admins only, until an admin catalogues it with an access rule.
    Admins,
}

/// The catalog's rules: a catalog model is for whom its access rule names (admins always); a
/// deleted one for admins only; a model the catalog does not describe (or could not hold) is
/// for whom `uncatalogued` says. Rules are kept in memory and forgotten on every `catalog.*`
/// event.
pub struct CatalogAccess {
    catalog: Catalog,
    uncatalogued: Uncatalogued,
    /// Model name → its rule (`None`: not in the catalog).
    rules: RwLock<HashMap<String, Option<Access>>>,
}

impl CatalogAccess {
    /// Opens the catalog and follows its events.
    pub async fn start(platform: &Platform, uncatalogued: Uncatalogued) -> Result<Arc<Self>, kit::db::DbError> {
        let access = Arc::new(Self { catalog: Catalog::open(platform).await?, uncatalogued, rules: RwLock::default() });
        platform
            .bus
            .subscribe(
                Subscription::broadcast(EVENTS_EXCHANGE, "inference.catalog", ollamanet_catalog::EVENTS),
                Arc::new(ForgetRules(access.clone())),
            )
            .await;
        Ok(access)
    }

    async fn rule(&self, model: &str) -> Option<Option<Access>> {
        if let Some(rule) = self.rules.read().unwrap_or_else(|e| e.into_inner()).get(model) {
            return Some(rule.clone());
        }
        match self.catalog.access(model).await {
            Ok(rule) => {
                let mut rules = self.rules.write().unwrap_or_else(|e| e.into_inner());
                // Callers choose the names asked for: made-up ones must not grow this without end.
                if rules.len() >= MAX_RULES {
                    rules.clear();
                }
                rules.insert(model.to_owned(), rule.clone());
                Some(rule)
            }
            Err(e) => {
                tracing::warn!(model, error = %e, "could not read the model's access rule");
                None
            }
        }
    }
}

#[async_trait]
impl ModelAccess for CatalogAccess {
    async fn allowed(&self, who: &Identity, model: &str) -> bool {
        if who.has_role(ADMIN_ROLE) {
            return true;
        }
        let open = self.uncatalogued == Uncatalogued::Users;
        let Ok(name) = ollamanet_catalog::normalize_name(model) else {
            return open; // not a name the catalog could hold: never catalogued
        };
        match self.rule(&name).await {
            Some(None) => open,
            Some(Some(access)) => access.allows(&who.roles),
            // The catalog cannot be read: refuse rather than let a restricted model through.
            None => false,
        }
    }
}

struct ForgetRules(Arc<CatalogAccess>);

#[async_trait]
impl Handler for ForgetRules {
    async fn handle(&self, _: &Message) -> Result<(), HandlerError> {
        self.0.rules.write().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }
}
