//! The explore service: the model catalog as anyone may browse it (`/api/explore/*`), and as a
//! signed-in caller's roles let them. It reads the catalog's tables (`ollamanet-catalog`) and
//! keeps answers in the cache (Redis, or memory), cache-aside: every key holds the catalog
//! generation, which each instance moves on when a `catalog.*` event arrives over the bus, so the
//! next request after an admin change reads fresh data on every instance. Answers carry an ETag;
//! `If-None-Match` gets 304. See `docs/explore.md`.

mod cache;
mod error;
mod http;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use kit::bus::{EVENTS_EXCHANGE, Event, Handler, HandlerError, Message, Subscription};
use kit::http::{Dependency, Readiness};
use kit::service::{ServiceContext, ServiceHandle};
use ollamanet_catalog::Catalog;

pub use error::ExploreError;

pub const NAME: &str = "explore";

pub struct Explore {
    pub handle: ServiceHandle,
}

/// Starts the service on the catalog's database, and follows catalog events.
pub async fn start(ctx: &ServiceContext) -> Result<Explore, ExploreError> {
    let platform = &ctx.platform;
    let catalog = Arc::new(Catalog::open(platform).await?);
    let answers = Arc::new(cache::Answers::new(platform.cache.clone()));
    let installed = Arc::new(ArcSwapOption::empty());
    // Broadcast: every instance moves its own generation on.
    platform
        .bus
        .subscribe(
            Subscription::broadcast(EVENTS_EXCHANGE, "explore.catalog", ollamanet_catalog::EVENTS),
            Arc::new(CatalogEvents(answers.clone())),
        )
        .await;
    platform
        .bus
        .subscribe(
            Subscription::broadcast(EVENTS_EXCHANGE, "explore.installed", &[ollamanet_catalog::MODELS_INSTALLED]),
            Arc::new(InstalledEvents { answers: answers.clone(), installed: installed.clone() }),
        )
        .await;
    // Inference instances report on their own every 30 s; asking makes a fresh instance know now.
    let ask = Event::new(ollamanet_catalog::MODELS_WANTED, NAME, serde_json::Value::Null);
    if let Err(e) = platform.bus.publish_event(&ask).await {
        tracing::warn!(error = %e, "could not ask for the installed models; they come within 30 s");
    }
    let readiness = Readiness::default().with(Dependency::Database(ollamanet_catalog::NAME, catalog.db().clone()));
    let state = http::AppState { catalog, answers, installed, authn: ctx.authn.clone() };
    let (router, openapi) = http::routes().split_for_parts();
    let router = kit::http::service_layers(router.with_state(state), NAME);
    Ok(Explore { handle: ServiceHandle { name: NAME, router, readiness, openapi } })
}

/// The OpenAPI description of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::routes().into_openapi()
}

/// A catalog change: answers cached before it are no longer read.
struct CatalogEvents(Arc<cache::Answers>);

#[async_trait]
impl Handler for CatalogEvents {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        let (event, _) = Event::decode::<serde_json::Value>(msg)?;
        self.0.invalidate(event.id);
        Ok(())
    }
}

/// The models some engine has, as the inference service last reported them; a change makes
/// earlier answers unreachable, like a catalog change.
struct InstalledEvents {
    answers: Arc<cache::Answers>,
    installed: Arc<ArcSwapOption<Vec<String>>>,
}

#[async_trait]
impl Handler for InstalledEvents {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        let (event, report) = Event::decode::<ollamanet_catalog::Installed>(msg)?;
        if self.installed.load().as_deref() != Some(&report.models) {
            self.installed.store(Some(Arc::new(report.models)));
            self.answers.invalidate(event.id);
        }
        Ok(())
    }
}
