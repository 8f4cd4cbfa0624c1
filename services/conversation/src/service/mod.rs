//! The conversation service's logic; handlers call it, it calls the store and the inference
//! service. Every method takes the caller's id, and every object it touches is looked up with it.

mod annotations;
mod chat;
mod conversations;
mod documents;
mod folders;
mod streams;

use std::sync::Arc;
use std::time::Duration;

use kit::cache::Cache;
use uuid::Uuid;

use crate::config::ConversationConfig;
use crate::error::ConversationError;
use crate::generation::{Jobs, Mirrors, Runner};
use crate::inference::Inference;
use crate::store::{ConversationRecord, MessageRecord, Store};

pub use chat::{Reply, STOP_EVENT, StopGeneration};
pub use documents::{Document, Library, ListDocuments, SearchDocuments, SearchResults, Upload, upload_too_large};
pub use streams::StreamSlot;

/// How long a conversation's settings stay cached (in a shared cache; a private one would go
/// stale when another instance changes them).
const CONVERSATION_TTL: Duration = Duration::from_secs(300);
/// The branch up to a finished message never changes, so it may be cached for long.
const PATH_TTL: Duration = Duration::from_secs(1800);

pub struct ConversationService {
    store: Store,
    cache: Cache,
    config: ConversationConfig,
    jobs: Arc<Jobs>,
    /// Replies generated elsewhere that clients here follow.
    mirrors: Arc<Mirrors>,
    runner: Arc<Runner>,
    library: Library,
    /// The replies each user follows right now.
    streams: Arc<streams::OpenStreams>,
}

impl ConversationService {
    pub fn new(store: Store, cache: Cache, inference: Inference, config: ConversationConfig, library: Library) -> Self {
        let jobs = Arc::new(Jobs::default());
        let runner = Arc::new(Runner {
            store: store.clone(),
            cache: cache.clone(),
            inference,
            jobs: jobs.clone(),
            persist_interval: config.persist_interval,
        });
        Self { store, cache, config, jobs, mirrors: Arc::default(), runner, library, streams: Arc::default() }
    }

    pub fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
    }

    /// Everything of a user's, when their account is deleted.
    pub async fn delete_user(&self, owner: Uuid) -> Result<(), ConversationError> {
        for g in self.jobs.owned_by(owner) {
            g.stop();
        }
        let files = self.store.delete_owner(owner).await?;
        self.remove_unused_files(files).await;
        Ok(())
    }

    /// A conversation of `owner`, from the cache when it is shared.
    async fn conversation(&self, owner: Uuid, id: Uuid) -> Result<ConversationRecord, ConversationError> {
        let key = conversation_key(id);
        if self.cache.is_shared()
            && let Some(c) = self.cache.get_json::<ConversationRecord>(&key).await
        {
            return if c.owner_id == owner { Ok(c) } else { Err(ConversationError::NotFound("conversation")) };
        }
        let c = self.store.conversation(owner, id).await?;
        if self.cache.is_shared() {
            self.cache.set_json(&key, &c, CONVERSATION_TTL).await;
        }
        Ok(c)
    }

    /// Writes a conversation through to the database and the cache.
    async fn save_conversation(&self, c: &ConversationRecord) -> Result<(), ConversationError> {
        self.store.update_conversation(c).await?;
        self.forget_conversation(c.id).await;
        Ok(())
    }

    async fn forget_conversation(&self, id: Uuid) {
        self.cache.delete(&conversation_key(id)).await;
    }

    /// The branch from the root to `leaf`. Cached only when every message on it is final: a
    /// reply still being generated changes.
    async fn path(&self, owner: Uuid, leaf: Uuid) -> Result<Vec<MessageRecord>, ConversationError> {
        let key = format!("conversation:path:{leaf}");
        if let Some(path) = self.cache.get_json::<Vec<MessageRecord>>(&key).await {
            return Ok(path);
        }
        let path = self.store.path(owner, leaf).await?;
        if path.iter().all(|m| m.status.is_final()) {
            self.cache.set_json(&key, &path, PATH_TTL).await;
        }
        Ok(path)
    }
}

pub(crate) fn conversation_key(id: Uuid) -> String {
    format!("conversation:info:{id}")
}

/// Trims `value` and checks its length in characters and that it has no control characters
/// (except newlines and tabs where `multiline`).
fn text(field: &str, value: &str, min: usize, max: usize, multiline: bool) -> Result<String, ConversationError> {
    let trimmed = if multiline { value.to_owned() } else { value.trim().to_owned() };
    let len = trimmed.chars().count();
    if len < min || len > max {
        let message = if min == 0 { format!("at most {max} characters") } else { format!("{min} to {max} characters") };
        return Err(ConversationError::field(field, if len < min { "required" } else { "too_long" }, message));
    }
    if trimmed.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'))) {
        return Err(ConversationError::field(field, "invalid_characters", "control characters are not allowed"));
    }
    Ok(trimmed)
}
