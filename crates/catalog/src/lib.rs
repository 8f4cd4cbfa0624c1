//! The model catalog: every model the platform describes (its metadata, who may use it, its
//! tags). The admin service writes it; explore and inference read it (see `docs/catalog.md`).
//! Its tables live in their own database (`catalog`: one SQLite file, or the shared Postgres
//! database), so that readers need neither the admin service nor a copy of its data. Every
//! change is written with its `catalog.*` event and its audit record in one transaction, through
//! the catalog's outbox, so readers' caches and the audit log never miss one.

mod error;
mod model;
mod name;
mod search;
mod store;
mod tags;

use kit::config::Platform;
use kit::db::{Db, DbError, Migrations};
use kit::outbox::Outbox;

pub use error::CatalogError;
pub use model::{Access, Model, ModelChange, ModelFields};
pub use name::normalize as normalize_name;
pub use search::{ListQuery, Search, Sort, Visibility};
pub use tags::{Tag, TagCount};

/// How long a change waits for its events to go out before answering anyway.
const ANNOUNCE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The database (and outbox) name.
pub const NAME: &str = "catalog";

/// Published when a model is created, changed, deleted, restored or purged; `data` is
/// [`ModelChanged`].
pub const MODEL_CHANGED: &str = "catalog.model.changed";
/// Published when a tag is created, renamed, deleted, assigned or unassigned; `data` is
/// [`TagChanged`].
pub const TAG_CHANGED: &str = "catalog.tag.changed";
/// Both, for subscriptions.
pub const EVENTS: &[&str] = &[MODEL_CHANGED, TAG_CHANGED];

/// Published by each inference instance when the models its engines have change, and every 30 s
/// (so that a reader starting later learns them); `data` is [`Installed`]. Explore's `installed`
/// filter follows it.
pub const MODELS_INSTALLED: &str = "inference.models.installed";
/// Asks every inference instance to publish [`MODELS_INSTALLED`] now (a reader that has just
/// started and subscribed); no `data`.
pub const MODELS_WANTED: &str = "inference.models.wanted";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Installed {
    /// Canonical names (see [`normalize_name`]) of every model some healthy engine has, sorted.
    pub models: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelChanged {
    pub name: String,
    /// `created`, `updated`, `deleted`, `restored`, `purged`.
    pub change: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TagChanged {
    pub id: uuid::Uuid,
    /// `created`, `renamed`, `deleted`, `assigned`, `unassigned`.
    pub change: String,
    /// The model, for `assigned` and `unassigned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

pub static MIGRATIONS: Migrations =
    Migrations { postgres: &sqlx::migrate!("migrations/postgres"), sqlite: &sqlx::migrate!("migrations/sqlite") };

/// The catalog's tables, read and written.
#[derive(Clone)]
pub struct Catalog {
    db: Db,
    outbox: Outbox,
}

impl Catalog {
    /// Connects the catalog database and applies its migrations.
    pub async fn open(platform: &Platform) -> Result<Self, DbError> {
        let db = platform.database(NAME, &MIGRATIONS).await?;
        let outbox = Outbox::new(db.clone(), NAME, platform.bus.clone());
        Ok(Self { db, outbox })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// After a change: its events are out (or the broker is down, and they will follow), so the
    /// caller's next read from explore or inference sees it.
    pub(crate) async fn announced(&self) {
        if !self.outbox.flush(ANNOUNCE_WITHIN).await {
            tracing::warn!("catalog events not yet published; readers see the change once they are");
        }
    }

    /// The relay of the catalog's events; one writer process runs it (the admin service), though
    /// several may (rows are claimed).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}
