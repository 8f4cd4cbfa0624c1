//! Notes (a highlighted range of a reply, with text) and feedback (a rating of a reply).

use kit::Timestamp;
use kit::with_db;
use uuid::Uuid;

use super::Store;
use crate::error::ConversationError;

macro_rules! select_notes {
    ($rest:literal) => {
        concat!(
            "SELECT n.id, n.message_id, m.conversation_id, n.start_offset, n.end_offset, n.text, n.created_at, \
             n.updated_at FROM notes n JOIN messages m ON m.id = n.message_id WHERE ",
            $rest
        )
    };
}

macro_rules! select_feedback {
    ($rest:literal) => {
        concat!(
            "SELECT f.id, f.message_id, m.conversation_id, f.rating, f.comment, f.created_at, f.updated_at \
             FROM feedback f JOIN messages m ON m.id = f.message_id WHERE ",
            $rest
        )
    };
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoteRecord {
    pub id: Uuid,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub start_offset: i64,
    pub end_offset: i64,
    pub text: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedbackRecord {
    pub id: Uuid,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub rating: i16,
    pub comment: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Which annotations a list wants: those of one message, or of a whole conversation.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Message(Uuid),
    Conversation(Uuid),
}

impl Scope {
    pub(super) fn ids(self) -> (Option<Uuid>, Option<Uuid>) {
        match self {
            Scope::Message(id) => (Some(id), None),
            Scope::Conversation(id) => (None, Some(id)),
        }
    }
}

impl Store {
    pub async fn insert_note(&self, owner: Uuid, n: &NoteRecord) -> Result<(), ConversationError> {
        with_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO notes (id, owner_id, message_id, start_offset, end_offset, text, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(n.id)
            .bind(owner)
            .bind(n.message_id)
            .bind(n.start_offset)
            .bind(n.end_offset)
            .bind(&n.text)
            .bind(n.created_at)
            .bind(n.updated_at)
            .execute(pool)
            .await
            .map(drop)?
        });
        Ok(())
    }

    pub async fn note(&self, owner: Uuid, id: Uuid) -> Result<NoteRecord, ConversationError> {
        let sql = select_notes!("n.id = $1 AND n.owner_id = $2");
        self.owned(sql, id, owner, "note").await
    }

    pub async fn notes(&self, owner: Uuid, scope: Scope) -> Result<Vec<NoteRecord>, ConversationError> {
        let sql = select_notes!(
            "n.owner_id = $1 AND ($2 IS NULL OR n.message_id = $2) AND ($3 IS NULL OR m.conversation_id = $3) \
             ORDER BY n.id LIMIT 1000"
        );
        self.in_scope(sql, owner, scope).await
    }

    pub async fn update_note(&self, owner: Uuid, n: &NoteRecord) -> Result<(), ConversationError> {
        let done = with_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE notes SET start_offset = $3, end_offset = $4, text = $5, updated_at = $6 \
                 WHERE id = $1 AND owner_id = $2",
            )
            .bind(n.id)
            .bind(owner)
            .bind(n.start_offset)
            .bind(n.end_offset)
            .bind(&n.text)
            .bind(n.updated_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if done == 0 { Err(ConversationError::NotFound("note")) } else { Ok(()) }
    }

    pub async fn delete_note(&self, owner: Uuid, id: Uuid) -> Result<(), ConversationError> {
        self.change_owned("DELETE FROM notes WHERE id = $1 AND owner_id = $2", id, owner, "note").await
    }

    pub async fn insert_feedback(&self, owner: Uuid, f: &FeedbackRecord) -> Result<(), ConversationError> {
        with_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO feedback (id, owner_id, message_id, rating, comment, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(f.id)
            .bind(owner)
            .bind(f.message_id)
            .bind(f.rating)
            .bind(&f.comment)
            .bind(f.created_at)
            .bind(f.updated_at)
            .execute(pool)
            .await
            .map(drop)
            .map_err(|e| match kit::db::unique_violation(&e) {
                Some(_) => ConversationError::FeedbackExists,
                None => e.into(),
            })?
        });
        Ok(())
    }

    pub async fn feedback(&self, owner: Uuid, id: Uuid) -> Result<FeedbackRecord, ConversationError> {
        let sql = select_feedback!("f.id = $1 AND f.owner_id = $2");
        self.owned(sql, id, owner, "feedback").await
    }

    pub async fn feedback_list(&self, owner: Uuid, scope: Scope) -> Result<Vec<FeedbackRecord>, ConversationError> {
        let sql = select_feedback!(
            "f.owner_id = $1 AND ($2 IS NULL OR f.message_id = $2) AND ($3 IS NULL OR m.conversation_id = $3) \
             ORDER BY f.id LIMIT 1000"
        );
        self.in_scope(sql, owner, scope).await
    }

    pub async fn update_feedback(&self, owner: Uuid, f: &FeedbackRecord) -> Result<(), ConversationError> {
        let done = with_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE feedback SET rating = $3, comment = $4, updated_at = $5 WHERE id = $1 AND owner_id = $2",
            )
            .bind(f.id)
            .bind(owner)
            .bind(f.rating)
            .bind(&f.comment)
            .bind(f.updated_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if done == 0 { Err(ConversationError::NotFound("feedback")) } else { Ok(()) }
    }

    pub async fn delete_feedback(&self, owner: Uuid, id: Uuid) -> Result<(), ConversationError> {
        self.change_owned("DELETE FROM feedback WHERE id = $1 AND owner_id = $2", id, owner, "feedback").await
    }
}
