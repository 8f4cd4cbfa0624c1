//! Conversations: their settings, where they are filed, and which branch is active.

use kit::Timestamp;
use kit::db::{Backend, BeginWrite};
use kit::with_db;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Keyset, Store};
use crate::error::ConversationError;

/// Selects [`ConversationRecord`]s (as `c`); the argument is the rest after `WHERE`.
macro_rules! select_conversations {
    ($($rest:tt)+) => {
        concat!(
            "SELECT c.id, c.owner_id, c.folder_id, c.title, c.title_pending, c.model, c.system_prompt, c.pinned, \
             c.archived, c.active_leaf_id, c.created_at, c.updated_at FROM conversations c WHERE ",
            $($rest)+
        )
    };
}

/// The filters of a list; `None` means "any". The keyset, filters and limit are bound as $2–$9.
macro_rules! list_conversations {
    ($search:literal) => {
        select_conversations!(concat!(
            "c.owner_id = $1 AND ($2 IS NULL OR c.folder_id = $2) AND ($3 IS NULL OR c.pinned = $3) \
             AND c.archived = $4 AND ($5 IS NULL OR c.model = $5) \
             AND ($6 IS NULL OR c.updated_at < $6 OR (c.updated_at = $6 AND c.id < $7)) ",
            $search,
            " ORDER BY c.updated_at DESC, c.id DESC LIMIT $8"
        ))
    };
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct ConversationRecord {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub folder_id: Uuid,
    pub title: String,
    pub title_pending: bool,
    pub model: String,
    pub system_prompt: Option<String>,
    pub pinned: bool,
    pub archived: bool,
    pub active_leaf_id: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Default, Clone)]
pub struct ConversationFilter {
    pub folder_id: Option<Uuid>,
    pub pinned: Option<bool>,
    pub archived: bool,
    pub model: Option<String>,
    /// Words that must all occur in the title or in a message (see [`super::search_terms`]).
    pub search: Option<String>,
}

impl Store {
    pub async fn insert_conversation(&self, c: &ConversationRecord) -> Result<(), ConversationError> {
        with_db!(&self.db, |pool| {
            let mut conn = pool.acquire().await?;
            insert_conversation!(conn, c);
        });
        Ok(())
    }

    /// How many conversations the user has.
    pub async fn count_conversations(&self, owner: Uuid) -> Result<u64, ConversationError> {
        let n: i64 =
            with_db!(&self.db, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM conversations WHERE owner_id = $1")
                .bind(owner)
                .fetch_one(pool)
                .await?);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub async fn conversation(&self, owner: Uuid, id: Uuid) -> Result<ConversationRecord, ConversationError> {
        let sql = select_conversations!("c.id = $1 AND c.owner_id = $2");
        self.owned(sql, id, owner, "conversation").await
    }

    /// A page of the user's conversations, most recently active first; `limit + 1` rows so the
    /// caller can tell whether another page follows.
    pub async fn conversations(
        &self,
        owner: Uuid,
        filter: &ConversationFilter,
        after: Option<Keyset>,
        limit: i64,
    ) -> Result<Vec<ConversationRecord>, ConversationError> {
        let sql = match (self.db.backend(), filter.search.is_some()) {
            (_, false) => list_conversations!("AND $9 IS NULL"),
            (Backend::Sqlite, true) => list_conversations!(
                "AND (c.seq IN (SELECT rowid FROM conversations_fts WHERE conversations_fts MATCH $9) \
                 OR c.id IN (SELECT m.conversation_id FROM messages m JOIN messages_fts f ON f.rowid = m.seq \
                             WHERE messages_fts MATCH $9 AND m.owner_id = $1))"
            ),
            (Backend::Postgres, true) => list_conversations!(
                "AND (to_tsvector('simple', c.title) @@ plainto_tsquery('simple', $9) \
                 OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
                            AND to_tsvector('simple', m.content) @@ plainto_tsquery('simple', $9)))"
            ),
        };
        Ok(with_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(owner)
            .bind(filter.folder_id)
            .bind(filter.pinned)
            .bind(filter.archived)
            .bind(&filter.model)
            .bind(after.map(|k| k.at))
            .bind(after.map(|k| k.id))
            .bind(limit + 1)
            .bind(&filter.search)
            .fetch_all(pool)
            .await?))
    }

    /// Writes a conversation's settings back (the caller read and changed it).
    pub async fn update_conversation(&self, c: &ConversationRecord) -> Result<(), ConversationError> {
        let done = with_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE conversations SET folder_id = $3, title = $4, title_pending = $5, model = $6, \
                 system_prompt = $7, pinned = $8, archived = $9, active_leaf_id = $10, updated_at = $11 \
                 WHERE id = $1 AND owner_id = $2",
            )
            .bind(c.id)
            .bind(c.owner_id)
            .bind(c.folder_id)
            .bind(&c.title)
            .bind(c.title_pending)
            .bind(&c.model)
            .bind(&c.system_prompt)
            .bind(c.pinned)
            .bind(c.archived)
            .bind(c.active_leaf_id)
            .bind(c.updated_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if done == 0 {
            return Err(ConversationError::NotFound("conversation"));
        }
        Ok(())
    }

    /// Sets a generated title, unless the user has named the conversation meanwhile.
    pub async fn set_generated_title(&self, owner: Uuid, id: Uuid, title: &str) -> Result<bool, ConversationError> {
        let done = with_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE conversations SET title = $3, title_pending = $4 \
                 WHERE id = $1 AND owner_id = $2 AND title_pending = $5",
            )
            .bind(id)
            .bind(owner)
            .bind(title)
            .bind(false)
            .bind(true)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Deletes a conversation with everything in it; the digests of its documents' files, which
    /// may now be unused.
    pub async fn delete_conversation(&self, owner: Uuid, id: Uuid) -> Result<Vec<String>, ConversationError> {
        let (done, files) = with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let files: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT sha256 FROM documents WHERE conversation_id = $1 AND owner_id = $2",
            )
            .bind(id)
            .bind(owner)
            .fetch_all(&mut *tx)
            .await?;
            let n = sqlx::query("DELETE FROM conversations WHERE id = $1 AND owner_id = $2")
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            (n, files)
        });
        if done == 0 {
            return Err(ConversationError::NotFound("conversation"));
        }
        Ok(files)
    }
}
