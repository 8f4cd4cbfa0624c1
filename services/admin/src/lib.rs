//! The admin service: the model catalog (models, their access rules and tags; see
//! `ollamanet-catalog`), the audit log of every admin action on the platform, and usage
//! statistics. User and role administration is the auth service's, engine administration the
//! inference service's; both send their audit records here over the bus. See `docs/admin.md`.

mod enrich;
mod error;
mod events;
mod http;
mod store;

use std::sync::Arc;

use kit::audit::AUDITED;
use kit::bus::{EVENTS_EXCHANGE, Subscription};
use kit::db::Migrations;
use kit::http::{Dependency, Readiness};
use kit::service::{ServiceContext, ServiceHandle};
use kit::upstream::Upstream;
use ollamanet_catalog::Catalog;

pub use error::AdminError;

pub const NAME: &str = "admin";

pub static MIGRATIONS: Migrations =
    Migrations { postgres: &sqlx::migrate!("migrations/postgres"), sqlite: &sqlx::migrate!("migrations/sqlite") };

pub struct Admin {
    pub handle: ServiceHandle,
}

/// Starts the service: its database and the catalog's, the catalog's outbox relay, and the
/// consumers of audit and usage records. `inference` reaches the inference service (enrichment).
pub async fn start(ctx: &ServiceContext, inference: Upstream) -> Result<Admin, AdminError> {
    let platform = &ctx.platform;
    let db = platform.database(NAME, &MIGRATIONS).await?;
    let store = store::Store::new(db.clone());
    let catalog = Arc::new(Catalog::open(platform).await?);
    tokio::spawn(catalog.outbox().clone().run(ctx.shutdown.clone()));

    let bus = &platform.bus;
    bus.subscribe(
        Subscription::work_queue(EVENTS_EXCHANGE, "admin.audit", &[AUDITED]),
        Arc::new(events::AuditEvents(store.clone())),
    )
    .await;
    bus.subscribe(
        Subscription::work_queue(EVENTS_EXCHANGE, "admin.usage", &[events::USAGE_RECORDED]),
        Arc::new(events::UsageEvents { store: store.clone(), catalog: catalog.clone() }),
    )
    .await;

    let readiness = Readiness::default()
        .with(Dependency::Database(NAME, db))
        .with(Dependency::Database(ollamanet_catalog::NAME, catalog.db().clone()));
    let state = http::AppState { catalog, store, authn: ctx.authn.clone(), inference };
    let (router, openapi) = http::routes().split_for_parts();
    let router = kit::http::service_layers(router.with_state(state), NAME);
    Ok(Admin { handle: ServiceHandle { name: NAME, router, readiness, openapi } })
}

/// The OpenAPI description of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::routes().into_openapi()
}
