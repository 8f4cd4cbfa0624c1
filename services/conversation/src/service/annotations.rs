//! Notes on replies (a highlighted range and a text) and feedback (a rating and an optional
//! comment, one per reply and user).

use kit::Timestamp;
use uuid::Uuid;

use super::{ConversationService, text};
use crate::error::ConversationError;
use crate::models::{AnnotationQuery, CreateFeedback, CreateNote, Feedback, Note, UpdateFeedback, UpdateNote};
use crate::store::{FeedbackRecord, MessageRecord, NoteRecord, Role, Scope};

const NOTE_MAX: usize = 10_000;
const COMMENT_MAX: usize = 2_000;

impl ConversationService {
    /// A reply of the caller's: notes and feedback are about what the model said.
    async fn reply_of(&self, owner: Uuid, id: Uuid) -> Result<MessageRecord, ConversationError> {
        let m = self.store.message(owner, id).await?;
        if m.role != Role::Assistant {
            return Err(ConversationError::field("message_id", "not_a_reply", "notes and feedback are for replies"));
        }
        Ok(m)
    }

    async fn scope(&self, owner: Uuid, q: &AnnotationQuery) -> Result<Scope, ConversationError> {
        match (q.message_id, q.conversation_id) {
            (Some(m), None) => Ok(Scope::Message(self.store.message(owner, m).await?.id)),
            (None, Some(c)) => Ok(Scope::Conversation(self.store.conversation(owner, c).await?.id)),
            _ => Err(ConversationError::BadRequest(
                "invalid_query",
                "give exactly one of message_id and conversation_id".into(),
            )),
        }
    }

    pub async fn create_note(&self, owner: Uuid, req: CreateNote) -> Result<Note, ConversationError> {
        let reply = self.reply_of(owner, req.message_id).await?;
        let text = text("text", &req.text, 0, NOTE_MAX, true)?;
        check_range(&reply, req.start, req.end)?;
        let now = Timestamp::now();
        let note = NoteRecord {
            id: Uuid::now_v7(),
            message_id: reply.id,
            conversation_id: reply.conversation_id,
            start_offset: req.start,
            end_offset: req.end,
            text,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_note(owner, &note).await?;
        Ok(note.into())
    }

    pub async fn note(&self, owner: Uuid, id: Uuid) -> Result<Note, ConversationError> {
        Ok(self.store.note(owner, id).await?.into())
    }

    pub async fn notes(&self, owner: Uuid, q: &AnnotationQuery) -> Result<Vec<Note>, ConversationError> {
        let scope = self.scope(owner, q).await?;
        Ok(self.store.notes(owner, scope).await?.into_iter().map(Note::from).collect())
    }

    pub async fn update_note(&self, owner: Uuid, id: Uuid, req: UpdateNote) -> Result<Note, ConversationError> {
        let mut note = self.store.note(owner, id).await?;
        if let Some(t) = &req.text {
            note.text = text("text", t, 0, NOTE_MAX, true)?;
        }
        if req.start.is_some() || req.end.is_some() {
            note.start_offset = req.start.unwrap_or(note.start_offset);
            note.end_offset = req.end.unwrap_or(note.end_offset);
            let reply = self.store.message(owner, note.message_id).await?;
            check_range(&reply, note.start_offset, note.end_offset)?;
        }
        note.updated_at = Timestamp::now();
        self.store.update_note(owner, &note).await?;
        Ok(note.into())
    }

    pub async fn delete_note(&self, owner: Uuid, id: Uuid) -> Result<(), ConversationError> {
        self.store.delete_note(owner, id).await
    }

    pub async fn create_feedback(&self, owner: Uuid, req: CreateFeedback) -> Result<Feedback, ConversationError> {
        let reply = self.reply_of(owner, req.message_id).await?;
        let comment = comment(req.comment.as_deref())?;
        let now = Timestamp::now();
        let feedback = FeedbackRecord {
            id: Uuid::now_v7(),
            message_id: reply.id,
            conversation_id: reply.conversation_id,
            rating: req.rating.to_db(),
            comment,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_feedback(owner, &feedback).await?;
        Ok(feedback.into())
    }

    pub async fn feedback(&self, owner: Uuid, id: Uuid) -> Result<Feedback, ConversationError> {
        Ok(self.store.feedback(owner, id).await?.into())
    }

    pub async fn feedback_list(&self, owner: Uuid, q: &AnnotationQuery) -> Result<Vec<Feedback>, ConversationError> {
        let scope = self.scope(owner, q).await?;
        Ok(self.store.feedback_list(owner, scope).await?.into_iter().map(Feedback::from).collect())
    }

    pub async fn update_feedback(
        &self,
        owner: Uuid,
        id: Uuid,
        req: UpdateFeedback,
    ) -> Result<Feedback, ConversationError> {
        let mut feedback = self.store.feedback(owner, id).await?;
        if let Some(rating) = req.rating {
            feedback.rating = rating.to_db();
        }
        if let Some(c) = &req.comment {
            feedback.comment = comment(Some(c))?;
        }
        feedback.updated_at = Timestamp::now();
        self.store.update_feedback(owner, &feedback).await?;
        Ok(feedback.into())
    }

    pub async fn delete_feedback(&self, owner: Uuid, id: Uuid) -> Result<(), ConversationError> {
        self.store.delete_feedback(owner, id).await
    }
}

/// A highlight must be a non-empty range inside the reply's text (in characters).
fn check_range(reply: &MessageRecord, start: i64, end: i64) -> Result<(), ConversationError> {
    let len = i64::try_from(reply.content.chars().count()).unwrap_or(i64::MAX);
    if start < 0 || end <= start || end > len {
        return Err(ConversationError::field(
            "start",
            "invalid_range",
            format!("start and end must satisfy 0 <= start < end <= {len} (the reply's length)"),
        ));
    }
    Ok(())
}

fn comment(value: Option<&str>) -> Result<Option<String>, ConversationError> {
    let c = value.map(|c| text("comment", c, 0, COMMENT_MAX, true)).transpose()?;
    Ok(c.filter(|c| !c.trim().is_empty()))
}
