//! The inference service: the platform's only path to inference engines. It knows the fleet
//! (configured nodes, the embedded engine, nodes announced on the bus), probes it, routes each
//! request to a healthy node that has the model, limits how much runs at once and in what order
//! the rest waits, and records usage. See `docs/inference.md`.

pub mod access;
pub mod admission;
pub mod config;
pub mod discovery;
mod engines;
mod error;
pub mod fleet;
mod http;
pub mod limits;
mod relay;
mod service;
pub mod usage;
pub mod validate;

use std::sync::Arc;

use kit::db::Migrations;
use kit::http::{Dependency, Readiness};
use kit::outbox::Outbox;
use kit::service::{ServiceContext, ServiceHandle};
use kit::upstream::Upstream;

pub use access::{CatalogAccess, ModelAccess, Open, Uncatalogued};
pub use config::{InferenceConfig, NodeConfig};
pub use error::InferenceError;
pub use fleet::{Fleet, LOCAL, NodeStatus};
pub use http::QUEUE_EVENTS;

use crate::admission::{Admission, Limits};
use crate::engines::Engines;
use crate::fleet::Source;
use crate::service::Service;
use crate::usage::UsageSink;

pub const NAME: &str = "inference";

/// How often the installed models are announced even when they have not changed.
const INSTALLED_AGAIN: std::time::Duration = std::time::Duration::from_secs(30);

pub static MIGRATIONS: Migrations =
    Migrations { postgres: &sqlx::migrate!("migrations/postgres"), sqlite: &sqlx::migrate!("migrations/sqlite") };

pub struct Inference {
    pub handle: ServiceHandle,
    pub fleet: Arc<Fleet>,
}

/// Starts the service. `local_engine` is the embedded engine when it runs in this process.
pub async fn start(
    ctx: &ServiceContext,
    config: &InferenceConfig,
    local_engine: Option<Upstream>,
    access: Arc<dyn ModelAccess>,
) -> Result<Inference, InferenceError> {
    let platform = &ctx.platform;
    let db = platform.database(NAME, &MIGRATIONS).await.map_err(|e| InferenceError::Start(e.to_string()))?;
    let outbox = Outbox::new(db.clone(), NAME, platform.bus.clone());
    tokio::spawn(outbox.clone().run(ctx.shutdown.clone()));

    let key = |key: &Option<String>, setting: &str| {
        key.as_deref()
            .map(kit::upstream::bearer)
            .transpose()
            .map_err(|e| InferenceError::Start(format!("{setting}: {e}")))
    };
    let fleet = Arc::new(Fleet::new(key(&config.engine_key, "inference.engine_key")?));
    if let Some(engine) = local_engine {
        fleet.add(None, Source::Local, engine, config.node_capacity);
    }
    for node in &config.nodes {
        let mut upstream = Upstream::http(std::slice::from_ref(&node.url))
            .map_err(|e| InferenceError::Start(format!("inference.nodes: {e}")))?;
        if let Some(key) = key(&node.key, "inference.nodes")? {
            upstream = upstream.with_authorization(key);
        }
        fleet.add(Some(node.url.trim_end_matches('/')), Source::Configured, upstream, config.node_capacity);
    }
    discovery::resume(&fleet, platform, config).await;
    discovery::listen(fleet.clone(), platform, config).await;

    let admission = Admission::new(
        Limits { per_user: config.per_user_concurrency, queue: config.queue, wait: config.queue_wait },
        fleet.capacity(),
    );
    let watched = admission.clone();
    tokio::spawn(fleet.clone().watch(
        config.probe_interval,
        config.announce_expiry,
        move |f| {
            watched.set_capacity(f.capacity());
            let (running, waiting) = watched.load();
            metrics::gauge!("inference_generations_running").set(running as f64);
            metrics::gauge!("inference_queue_depth").set(waiting as f64);
        },
        ctx.shutdown.clone(),
    ));

    tokio::spawn(fleet::announce_installed(
        fleet.clone(),
        platform.bus.clone(),
        config.probe_interval,
        INSTALLED_AGAIN,
        ctx.shutdown.clone(),
    ));

    let service = Arc::new(Service {
        fleet: fleet.clone(),
        engines: Arc::new(Engines::new(fleet.clone(), admission.clone(), db.clone(), outbox.clone())),
        admission,
        access,
        usage: UsageSink::new(db.clone(), outbox),
        first_byte_timeout: config.first_byte_timeout,
        limits: config.limits.clone(),
    });
    let (router, openapi) = http::router(http::AppState { service, authn: ctx.authn.clone() });
    let readiness = Readiness::default().with(Dependency::Database(NAME, db));
    let handle = ServiceHandle { name: NAME, router: kit::http::service_layers(router, NAME), readiness, openapi };
    Ok(Inference { handle, fleet })
}
