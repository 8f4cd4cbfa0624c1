//! Conversations: create, read, list and search, change, delete, export and import.

use std::collections::{HashMap, HashSet};

use kit::Timestamp;
use uuid::Uuid;

use super::folders::bad_cursor;
use super::{ConversationService, text};
use crate::error::ConversationError;
use crate::models::{
    Conversation, ConversationExport, CreateConversation, EXPORT_FORMAT, ExportedMessage, ListConversations,
    UpdateConversation,
};
use crate::store::{ConversationFilter, ConversationRecord, Keyset, MessageRecord, MessageStatus, Role, search_terms};

pub const TITLE_MAX: usize = 200;
const MODEL_MAX: usize = 200;
const SYSTEM_PROMPT_MAX: usize = 20_000;
pub const PLACEHOLDER_TITLE: &str = "New conversation";
/// Messages an import may hold.
const IMPORT_MAX_MESSAGES: usize = 10_000;

fn model_name(value: &str) -> Result<String, ConversationError> {
    let model = text("model", value, 1, MODEL_MAX, false)?;
    if model.chars().any(char::is_whitespace) {
        return Err(ConversationError::field("model", "invalid_format", "a model name has no spaces"));
    }
    Ok(model)
}

fn system_prompt(value: Option<&str>) -> Result<Option<String>, ConversationError> {
    let prompt = value.map(|p| text("system_prompt", p, 0, SYSTEM_PROMPT_MAX, true)).transpose()?;
    Ok(prompt.filter(|p| !p.trim().is_empty()))
}

impl ConversationService {
    /// Refuses a new conversation past the user's quota.
    async fn check_conversation_quota(&self, owner: Uuid) -> Result<(), ConversationError> {
        let most = self.config.quotas.conversations_per_user;
        if self.store.count_conversations(owner).await? >= most {
            return Err(ConversationError::Quota(
                "too_many_conversations",
                format!("you may keep {most} conversations; delete one first"),
            ));
        }
        Ok(())
    }

    pub async fn create_conversation(
        &self,
        owner: Uuid,
        req: CreateConversation,
    ) -> Result<Conversation, ConversationError> {
        let model = model_name(&req.model)?;
        let title = req.title.as_deref().map(|t| text("title", t, 1, TITLE_MAX, false)).transpose()?;
        let system_prompt = system_prompt(req.system_prompt.as_deref())?;
        let folder_id = match req.folder_id {
            Some(id) => self.store.folder(owner, id).await?.id,
            None => self.store.root_folder(owner).await?.id,
        };
        self.check_conversation_quota(owner).await?;
        let now = Timestamp::now();
        let record = ConversationRecord {
            id: Uuid::now_v7(),
            owner_id: owner,
            folder_id,
            title_pending: title.is_none(),
            title: title.unwrap_or_else(|| PLACEHOLDER_TITLE.to_owned()),
            model,
            system_prompt,
            pinned: false,
            archived: false,
            active_leaf_id: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_conversation(&record).await?;
        Ok(record.into())
    }

    pub async fn get_conversation(&self, owner: Uuid, id: Uuid) -> Result<Conversation, ConversationError> {
        Ok(self.conversation(owner, id).await?.into())
    }

    pub async fn list_conversations(
        &self,
        owner: Uuid,
        query: &ListConversations,
        limit: i64,
    ) -> Result<Vec<ConversationRecord>, ConversationError> {
        let after = query.cursor.as_deref().map(|c| Keyset::decode(c).ok_or_else(bad_cursor)).transpose()?;
        if let Some(folder) = query.folder_id {
            self.store.folder(owner, folder).await?;
        }
        let search = match query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            Some(q) if q.chars().count() > 200 => {
                return Err(ConversationError::field("q", "too_long", "at most 200 characters"));
            }
            // A search with no word in it matches nothing.
            Some(q) => match search_terms(q) {
                Some(terms) => Some(terms),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let filter = ConversationFilter {
            folder_id: query.folder_id,
            pinned: query.pinned,
            archived: query.archived.unwrap_or(false),
            model: query.model.clone(),
            search,
        };
        self.store.conversations(owner, &filter, after, limit).await
    }

    pub async fn update_conversation(
        &self,
        owner: Uuid,
        id: Uuid,
        req: UpdateConversation,
    ) -> Result<Conversation, ConversationError> {
        let mut c = self.store.conversation(owner, id).await?;
        if let Some(title) = &req.title {
            c.title = text("title", title, 1, TITLE_MAX, false)?;
            c.title_pending = false;
        }
        if let Some(model) = &req.model {
            c.model = model_name(model)?;
        }
        if let Some(prompt) = &req.system_prompt {
            c.system_prompt = system_prompt(Some(prompt))?;
        }
        if let Some(pinned) = req.pinned {
            c.pinned = pinned;
        }
        if let Some(archived) = req.archived {
            c.archived = archived;
        }
        if let Some(folder) = req.folder_id {
            c.folder_id = self.store.folder(owner, folder).await?.id;
        }
        if let Some(message) = req.active_message_id {
            let all = self.store.messages(owner, id).await?;
            if !all.iter().any(|m| m.id == message) {
                return Err(ConversationError::NotFound("message"));
            }
            c.active_leaf_id = Some(newest_leaf_under(&all, message));
        }
        c.updated_at = Timestamp::now();
        self.save_conversation(&c).await?;
        Ok(c.into())
    }

    pub async fn delete_conversation(&self, owner: Uuid, id: Uuid) -> Result<(), ConversationError> {
        if let Some(g) = self.jobs.get(id).filter(|g| g.owner == owner) {
            g.stop();
        }
        let files = self.store.delete_conversation(owner, id).await?;
        self.forget_conversation(id).await;
        self.remove_unused_files(files).await;
        Ok(())
    }

    pub async fn export(&self, owner: Uuid, id: Uuid) -> Result<ConversationExport, ConversationError> {
        let c = self.conversation(owner, id).await?;
        let messages = self.store.messages(owner, id).await?;
        Ok(ConversationExport {
            format: EXPORT_FORMAT.to_owned(),
            title: c.title,
            model: c.model,
            system_prompt: c.system_prompt,
            created_at: c.created_at,
            active_message_id: c.active_leaf_id,
            messages: messages
                .into_iter()
                .map(|m| ExportedMessage {
                    id: m.id,
                    parent_id: m.parent_id,
                    usage: (m.role == Role::Assistant).then_some(m.usage),
                    role: m.role,
                    content: m.content,
                    status: m.status,
                    model: m.model,
                    created_at: m.created_at,
                })
                .collect(),
        })
    }

    /// The active branch as Markdown: the title, the system prompt, then each message under a
    /// heading naming who wrote it.
    pub async fn export_markdown(&self, owner: Uuid, id: Uuid) -> Result<(String, String), ConversationError> {
        let c = self.conversation(owner, id).await?;
        let path = match c.active_leaf_id {
            Some(leaf) => self.store.path(owner, leaf).await?,
            None => Vec::new(),
        };
        let mut md = format!("# {}\n\n_Model: {}_\n\n", c.title, c.model);
        if let Some(prompt) = &c.system_prompt {
            md.push_str(&format!("> **System:** {}\n\n", prompt.replace('\n', "\n> ")));
        }
        for m in &path {
            let who = match m.role {
                Role::User => "You",
                Role::Assistant => "Assistant",
            };
            md.push_str(&format!("## {who}\n\n{}\n\n", m.content.trim_end()));
        }
        Ok((c.title, md))
    }

    /// Imports an export: a new conversation (new ids) with the same messages and branches.
    pub async fn import(
        &self,
        owner: Uuid,
        folder: Option<Uuid>,
        export: ConversationExport,
    ) -> Result<Conversation, ConversationError> {
        if export.format != EXPORT_FORMAT {
            return Err(ConversationError::field("format", "unsupported", format!("expected {EXPORT_FORMAT}")));
        }
        if export.messages.len() > IMPORT_MAX_MESSAGES {
            return Err(ConversationError::field("messages", "too_many", format!("at most {IMPORT_MAX_MESSAGES}")));
        }
        let title = text("title", &export.title, 1, TITLE_MAX, false)?;
        let model = model_name(&export.model)?;
        let system_prompt = system_prompt(export.system_prompt.as_deref())?;
        let folder_id = match folder {
            Some(id) => self.store.folder(owner, id).await?.id,
            None => self.store.root_folder(owner).await?.id,
        };
        self.check_conversation_quota(owner).await?;
        let conversation_id = Uuid::now_v7();
        // Fresh ids, and parents before children; a message whose parent is not in the file (or
        // comes after it) makes the file invalid.
        let mut ids: HashMap<Uuid, Uuid> = HashMap::new();
        let mut messages = Vec::with_capacity(export.messages.len());
        let mut seen = HashSet::new();
        for (i, m) in export.messages.into_iter().enumerate() {
            let field = format!("messages[{i}]");
            if !seen.insert(m.id) {
                return Err(ConversationError::field(&field, "duplicate", "a message id appears twice"));
            }
            let parent_id = match m.parent_id {
                Some(p) => Some(*ids.get(&p).ok_or_else(|| {
                    ConversationError::field(&field, "unknown_parent", "the parent must come earlier in the file")
                })?),
                None => None,
            };
            let content = text(&format!("{field}.content"), &m.content, 0, self.config.max_message_chars, true)?;
            let new_id = Uuid::now_v7();
            ids.insert(m.id, new_id);
            messages.push(MessageRecord {
                id: new_id,
                conversation_id,
                parent_id,
                role: m.role,
                content,
                // A reply that was still being generated when exported is as far as it got.
                status: if m.status == MessageStatus::Streaming { MessageStatus::Stopped } else { m.status },
                model: m.model,
                error: None,
                usage: m.usage.unwrap_or_default(),
                context_dropped: 0,
                // They name documents of the exported conversation, which are not imported.
                citations: None,
                created_at: m.created_at,
                updated_at: m.created_at,
            });
        }
        let active_leaf_id =
            export.active_message_id.and_then(|a| ids.get(&a).copied()).or(messages.last().map(|m| m.id));
        let now = Timestamp::now();
        let record = ConversationRecord {
            id: conversation_id,
            owner_id: owner,
            folder_id,
            title,
            title_pending: false,
            model,
            system_prompt,
            pinned: false,
            archived: false,
            active_leaf_id,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_conversation_with_messages(&record, &messages).await?;
        Ok(record.into())
    }
}

/// The newest message reached by always following the newest child, from `from`.
pub(super) fn newest_leaf_under(all: &[MessageRecord], from: Uuid) -> Uuid {
    let mut at = from;
    // `all` is oldest first, so the last child found is the newest.
    while let Some(child) = all.iter().rev().find(|m| m.parent_id == Some(at)) {
        at = child.id;
    }
    at
}
