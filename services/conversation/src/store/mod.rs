//! All SQL of the conversation service, written once for Postgres and SQLite (full-text search
//! is the one place the two differ). Every query names the owner: an object of someone else's
//! is indistinguishable from one that does not exist.

// The statements several modules share, as macros so that their SQL stays a literal.

macro_rules! message_columns {
    () => {
        "id, conversation_id, parent_id, role, content, status, model, error, prompt_tokens, completion_tokens, \
         total_duration_ns, load_duration_ns, prompt_eval_duration_ns, eval_duration_ns, time_to_first_token_ns, \
         context_dropped, citations, created_at, updated_at"
    };
}

/// Inserts a [`MessageRecord`] `$m` of `$owner` on connection `$conn`.
macro_rules! insert_message {
    ($conn:expr, $owner:expr, $m:expr) => {
        sqlx::query(concat!(
            "INSERT INTO messages (",
            message_columns!(),
            ", owner_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        ))
        .bind($m.id)
        .bind($m.conversation_id)
        .bind($m.parent_id)
        .bind($m.role)
        .bind(&$m.content)
        .bind($m.status)
        .bind(&$m.model)
        .bind(&$m.error)
        .bind($m.usage.prompt_tokens)
        .bind($m.usage.completion_tokens)
        .bind($m.usage.total_duration_ns)
        .bind($m.usage.load_duration_ns)
        .bind($m.usage.prompt_eval_duration_ns)
        .bind($m.usage.eval_duration_ns)
        .bind($m.usage.time_to_first_token_ns)
        .bind($m.context_dropped)
        .bind($m.citations.as_ref().map(sqlx::types::Json))
        .bind($m.created_at)
        .bind($m.updated_at)
        .bind($owner)
        .execute(&mut *$conn)
        .await?
    };
}

/// Inserts a [`ConversationRecord`] `$c` on connection `$conn`.
macro_rules! insert_conversation {
    ($conn:expr, $c:expr) => {
        sqlx::query(
            "INSERT INTO conversations (id, owner_id, folder_id, title, title_pending, model, system_prompt, \
             pinned, archived, active_leaf_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind($c.id)
        .bind($c.owner_id)
        .bind($c.folder_id)
        .bind(&$c.title)
        .bind($c.title_pending)
        .bind(&$c.model)
        .bind(&$c.system_prompt)
        .bind($c.pinned)
        .bind($c.archived)
        .bind($c.active_leaf_id)
        .bind($c.created_at)
        .bind($c.updated_at)
        .execute(&mut *$conn)
        .await?
    };
}

mod annotations;
mod conversations;
mod documents;
mod folders;
mod messages;

use kit::Timestamp;
use kit::db::Db;
use kit::with_db;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ConversationError;

pub use annotations::{FeedbackRecord, NoteRecord, Scope};
pub use conversations::{ConversationFilter, ConversationRecord};
pub use documents::{ChunkKey, ChunkRecord, Citation, DocumentRecord, DocumentStatus, NewChunk, decode_embedding};
pub use folders::FolderRecord;
pub use messages::{MessageRecord, MessageStatus, Role, Usage};

#[derive(Clone)]
pub struct Store {
    db: Db,
}

/// A record read the same way from either database.
pub trait Row:
    for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin
{
}

impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin
{
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The row `sql` selects with the id `$1` and its owner `$2`; `what` is not found otherwise,
    /// whether it does not exist or is someone else's.
    async fn owned<T: Row>(
        &self,
        sql: &'static str,
        id: Uuid,
        owner: Uuid,
        what: &'static str,
    ) -> Result<T, ConversationError> {
        let found: Option<T> =
            with_db!(&self.db, |pool| sqlx::query_as(sql).bind(id).bind(owner).fetch_optional(pool).await?);
        found.ok_or(ConversationError::NotFound(what))
    }

    /// The rows `sql` selects for the owner `$1` within a message `$2` or a conversation `$3`.
    async fn in_scope<T: Row>(
        &self,
        sql: &'static str,
        owner: Uuid,
        scope: Scope,
    ) -> Result<Vec<T>, ConversationError> {
        let (message, conversation) = scope.ids();
        Ok(with_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(owner)
            .bind(message)
            .bind(conversation)
            .fetch_all(pool)
            .await?))
    }

    /// Runs `sql` on the id `$1` and its owner `$2`; `what` is not found when no row changed.
    async fn change_owned(
        &self,
        sql: &'static str,
        id: Uuid,
        owner: Uuid,
        what: &'static str,
    ) -> Result<(), ConversationError> {
        let changed =
            with_db!(&self.db, |pool| sqlx::query(sql).bind(id).bind(owner).execute(pool).await?.rows_affected());
        if changed == 0 { Err(ConversationError::NotFound(what)) } else { Ok(()) }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// The position after the last row of a page, ordered by `(time, id)` descending.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Keyset {
    pub at: Timestamp,
    pub id: Uuid,
}

impl Keyset {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.at.unix_micros(), self.id.simple())
    }

    pub fn decode(cursor: &str) -> Option<Self> {
        let (micros, id) = cursor.split_once('_')?;
        Some(Keyset { at: Timestamp::from_micros(micros.parse().ok()?), id: Uuid::parse_str(id).ok()? })
    }
}

/// The words of a search, each quoted, for SQLite's FTS5 and Postgres's `plainto_tsquery`
/// alike: every word must occur, in any order, matched whole and case-insensitively. None when
/// the text has no word at all.
pub fn search_terms(q: &str) -> Option<String> {
    let words: Vec<String> =
        q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| format!("\"{w}\"")).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let k = Keyset { at: Timestamp::from_micros(1_700_000_000_123_456), id: Uuid::now_v7() };
        let back = Keyset::decode(&k.encode()).unwrap();
        assert_eq!((back.at, back.id), (k.at, k.id));
        assert!(Keyset::decode("nope").is_none());
        assert!(Keyset::decode("12_notauuid").is_none());
    }

    #[test]
    fn search_terms_keep_only_words() {
        assert_eq!(search_terms("Paris, France!").as_deref(), Some("\"Paris\" \"France\""));
        assert_eq!(search_terms("\" OR 1=1 --").as_deref(), Some("\"OR\" \"1\" \"1\""));
        assert_eq!(search_terms("  ,.; "), None);
    }
}
