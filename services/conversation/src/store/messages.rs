//! Messages: rows of a tree. A message's parent is the one it answers or follows; editing or
//! regenerating adds a sibling, so every earlier branch stays as it was.

use kit::Timestamp;
use kit::db::BeginWrite;
use kit::with_db;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Store;
use crate::error::ConversationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// Where a message stands. Only an assistant message is ever anything but `complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum MessageStatus {
    /// Being generated; `content` holds what has arrived so far.
    Streaming,
    Complete,
    /// Stopped by the user; `content` is what was generated until then.
    Stopped,
    /// The model could not answer; `error` says why, `content` holds what came before.
    Failed,
}

impl MessageStatus {
    pub fn is_final(self) -> bool {
        self != MessageStatus::Streaming
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Streaming => "streaming",
            MessageStatus::Complete => "complete",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Failed => "failed",
        }
    }
}

/// What the engine reported about a reply. Durations in nanoseconds, as Ollama reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Usage {
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub total_duration_ns: Option<i64>,
    pub load_duration_ns: Option<i64>,
    pub prompt_eval_duration_ns: Option<i64>,
    pub eval_duration_ns: Option<i64>,
    /// From sending the request to the first piece of the reply.
    pub time_to_first_token_ns: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct MessageRecord {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub model: Option<String>,
    pub error: Option<String>,
    #[sqlx(flatten)]
    pub usage: Usage,
    pub context_dropped: i64,
    /// For replies given documents: the chunks they were given.
    #[sqlx(json(nullable))]
    #[serde(default)]
    pub citations: Option<Vec<super::Citation>>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl MessageRecord {
    pub fn new(conversation_id: Uuid, parent_id: Option<Uuid>, role: Role, content: String) -> Self {
        let now = Timestamp::now();
        Self {
            id: Uuid::now_v7(),
            conversation_id,
            parent_id,
            role,
            content,
            status: MessageStatus::Complete,
            model: None,
            error: None,
            usage: Usage::default(),
            context_dropped: 0,
            citations: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl Store {
    pub async fn message(&self, owner: Uuid, id: Uuid) -> Result<MessageRecord, ConversationError> {
        let sql = concat!("SELECT ", message_columns!(), " FROM messages WHERE id = $1 AND owner_id = $2");
        self.owned(sql, id, owner, "message").await
    }

    /// Every message of a conversation, oldest first.
    pub async fn messages(&self, owner: Uuid, conversation: Uuid) -> Result<Vec<MessageRecord>, ConversationError> {
        let sql = concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 AND owner_id = $2 ORDER BY created_at, id"
        );
        Ok(with_db!(&self.db, |pool| sqlx::query_as(sql).bind(conversation).bind(owner).fetch_all(pool).await?))
    }

    /// The messages from the root down to `leaf`, in order.
    pub async fn path(&self, owner: Uuid, leaf: Uuid) -> Result<Vec<MessageRecord>, ConversationError> {
        let sql = concat!(
            "WITH RECURSIVE up(id, parent_id, depth) AS ( \
                 SELECT id, parent_id, 0 FROM messages WHERE id = $1 AND owner_id = $2 \
                 UNION ALL \
                 SELECT m.id, m.parent_id, up.depth + 1 FROM messages m JOIN up ON m.id = up.parent_id \
             ) SELECT ",
            message_columns!(),
            " FROM messages WHERE id IN (SELECT id FROM up) ORDER BY created_at, id"
        );
        Ok(with_db!(&self.db, |pool| sqlx::query_as(sql).bind(leaf).bind(owner).fetch_all(pool).await?))
    }

    /// Adds the user's message (unless the reply regenerates an existing one) and the reply's
    /// placeholder, and makes the reply the conversation's active leaf, in one transaction.
    pub async fn start_exchange(
        &self,
        owner: Uuid,
        prompt: Option<&MessageRecord>,
        reply: &MessageRecord,
    ) -> Result<(), ConversationError> {
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(prompt) = prompt {
                insert_message!(tx, owner, prompt);
            }
            insert_message!(tx, owner, reply);
            sqlx::query(
                "UPDATE conversations SET active_leaf_id = $3, updated_at = $4 WHERE id = $1 AND owner_id = $2",
            )
            .bind(reply.conversation_id)
            .bind(owner)
            .bind(reply.id)
            .bind(reply.created_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Writes what a reply being generated has so far.
    pub async fn save_progress(&self, id: Uuid, content: &str) -> Result<(), sqlx::Error> {
        with_db!(&self.db, |pool| {
            sqlx::query("UPDATE messages SET content = $2, updated_at = $3 WHERE id = $1 AND status = $4")
                .bind(id)
                .bind(content)
                .bind(Timestamp::now())
                .bind(MessageStatus::Streaming)
                .execute(pool)
                .await
                .map(drop)
        })
    }

    /// Writes a reply's end: its whole content, how it ended, and its usage.
    pub async fn finish_reply(
        &self,
        id: Uuid,
        content: &str,
        status: MessageStatus,
        error: Option<&str>,
        usage: &Usage,
    ) -> Result<(), sqlx::Error> {
        with_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE messages SET content = $2, status = $3, error = $4, prompt_tokens = $5, \
                 completion_tokens = $6, total_duration_ns = $7, load_duration_ns = $8, \
                 prompt_eval_duration_ns = $9, eval_duration_ns = $10, time_to_first_token_ns = $11, \
                 updated_at = $12 WHERE id = $1",
            )
            .bind(id)
            .bind(content)
            .bind(status)
            .bind(error)
            .bind(usage.prompt_tokens)
            .bind(usage.completion_tokens)
            .bind(usage.total_duration_ns)
            .bind(usage.load_duration_ns)
            .bind(usage.prompt_eval_duration_ns)
            .bind(usage.eval_duration_ns)
            .bind(usage.time_to_first_token_ns)
            .bind(Timestamp::now())
            .execute(pool)
            .await
            .map(drop)
        })
    }

    /// Replies left `streaming` by a process that stopped before finishing them (they will never
    /// finish): marked failed, keeping what was saved. Only those untouched for `stale_after`.
    pub async fn fail_abandoned_replies(&self, stale_before: Timestamp) -> Result<u64, sqlx::Error> {
        with_db!(&self.db, |pool| {
            sqlx::query("UPDATE messages SET status = $1, error = $2 WHERE status = $3 AND updated_at < $4")
                .bind(MessageStatus::Failed)
                .bind("the reply was interrupted (the server stopped while generating it)")
                .bind(MessageStatus::Streaming)
                .bind(stale_before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
    }

    /// Inserts a whole conversation (an import): its row and every message, parents first.
    pub async fn insert_conversation_with_messages(
        &self,
        conversation: &super::ConversationRecord,
        messages: &[MessageRecord],
    ) -> Result<(), ConversationError> {
        let owner = conversation.owner_id;
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            insert_conversation!(tx, conversation);
            for m in messages {
                insert_message!(tx, owner, m);
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

impl Store {
    /// Whether a reply of this conversation is being generated (here or in another process).
    pub async fn generating(&self, owner: Uuid, conversation: Uuid) -> Result<Option<Uuid>, ConversationError> {
        Ok(with_db!(&self.db, |pool| sqlx::query_scalar(
            "SELECT id FROM messages WHERE conversation_id = $1 AND owner_id = $2 AND status = $3 LIMIT 1"
        )
        .bind(conversation)
        .bind(owner)
        .bind(MessageStatus::Streaming)
        .fetch_optional(pool)
        .await?))
    }
}
