//! Sending messages and getting replies: the branch a message continues, the history the model
//! is sent, the generation that runs apart from the request, stopping it and following it again.

use std::collections::HashMap;
use std::sync::Arc;

use kit::bus::Bus;
use ollama_api::types::{ChatRequest, Options};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ConversationService, text};
use crate::error::ConversationError;
use crate::generation::{Generation, Start, TitleJob};
use crate::history;
use crate::inference::Caller;
use crate::models::{Message, Regenerate, SendMessage, Stopped};
use crate::store::{ConversationRecord, MessageRecord, MessageStatus, Role};

/// Broadcast to every instance: stop the generation of this reply, wherever it runs.
pub const STOP_EVENT: &str = "conversation.generation.stop";

#[derive(Debug, Serialize, Deserialize)]
pub struct StopGeneration {
    pub message_id: Uuid,
}

/// A reply under way.
pub struct Reply {
    pub generation: Arc<Generation>,
    /// The message it answers, when the request sent one.
    pub message: Option<MessageRecord>,
}

/// Where a new reply goes and what it answers.
struct Plan {
    conversation: ConversationRecord,
    /// The user's new message, if the request sends one.
    prompt: Option<MessageRecord>,
    /// The branch up to and including the message being answered.
    path: Vec<MessageRecord>,
    options: Option<Options>,
}

impl ConversationService {
    /// The active branch (`tree` false) or every message, each with the ids of its siblings.
    pub async fn messages(
        &self,
        owner: Uuid,
        conversation: Uuid,
        tree: bool,
    ) -> Result<Vec<Message>, ConversationError> {
        let c = self.store.conversation(owner, conversation).await?;
        let all = self.store.messages(owner, conversation).await?;
        let mut siblings: HashMap<Option<Uuid>, Vec<Uuid>> = HashMap::new();
        for m in &all {
            siblings.entry(m.parent_id).or_default().push(m.id);
        }
        let shown: Vec<MessageRecord> = if tree {
            all
        } else {
            let by_id: HashMap<Uuid, &MessageRecord> = all.iter().map(|m| (m.id, m)).collect();
            let mut path = Vec::new();
            let mut at = c.active_leaf_id;
            while let Some(m) = at.and_then(|id| by_id.get(&id)) {
                path.push((*m).clone());
                at = m.parent_id;
            }
            path.reverse();
            path
        };
        Ok(shown
            .into_iter()
            .map(|m| {
                let ids = siblings.get(&m.parent_id).cloned().unwrap_or_default();
                Message::from_record(m, ids)
            })
            .collect())
    }

    /// Adds the caller's message to the conversation and starts the reply.
    pub async fn send(
        &self,
        owner: Uuid,
        caller: Caller,
        conversation: Uuid,
        req: SendMessage,
    ) -> Result<Reply, ConversationError> {
        let content = text("content", &req.content, 1, self.config.max_message_chars, true)?;
        if content.trim().is_empty() {
            return Err(ConversationError::field("content", "required", "the message is empty"));
        }
        let c = self.store.conversation(owner, conversation).await?;
        let parent = match (req.edit_of, req.parent_id) {
            (Some(_), Some(_)) => {
                return Err(ConversationError::field("edit_of", "conflict", "give edit_of or parent_id, not both"));
            }
            (Some(edited), None) => {
                let m = self.message_in(owner, conversation, edited).await?;
                if m.role != Role::User {
                    return Err(ConversationError::field(
                        "edit_of",
                        "not_a_user_message",
                        "only your messages can be edited",
                    ));
                }
                m.parent_id
            }
            (None, Some(parent)) => {
                let m = self.message_in(owner, conversation, parent).await?;
                if m.role != Role::Assistant {
                    return Err(ConversationError::field("parent_id", "not_a_reply", "a message follows a reply"));
                }
                Some(parent)
            }
            (None, None) => c.active_leaf_id,
        };
        let mut path = match parent {
            Some(p) => self.path(owner, p).await?,
            None => Vec::new(),
        };
        let prompt = MessageRecord::new(conversation, parent, Role::User, content);
        path.push(prompt.clone());
        self.start_reply(owner, caller, Plan { conversation: c, prompt: Some(prompt), path, options: req.options })
            .await
    }

    /// A new reply to the message `message` answers (or to `message` itself, when it is the
    /// user's), in a branch of its own.
    pub async fn regenerate(
        &self,
        owner: Uuid,
        caller: Caller,
        conversation: Uuid,
        message: Uuid,
        req: Regenerate,
    ) -> Result<Reply, ConversationError> {
        let c = self.store.conversation(owner, conversation).await?;
        let m = self.message_in(owner, conversation, message).await?;
        let answered = match m.role {
            Role::User => m.id,
            Role::Assistant => m.parent_id.ok_or(ConversationError::NotFound("message"))?,
        };
        let path = self.path(owner, answered).await?;
        self.start_reply(owner, caller, Plan { conversation: c, prompt: None, path, options: req.options }).await
    }

    async fn start_reply(&self, owner: Uuid, caller: Caller, plan: Plan) -> Result<Reply, ConversationError> {
        let Plan { conversation: c, prompt, path, options } = plan;
        let answered = path.last().map(|m| m.id);
        // Refused before the documents are searched (an embedding call); checked again below
        // once this reply holds the conversation, against one started meanwhile.
        if self.jobs.get(c.id).is_some() || self.store.generating(owner, c.id).await?.is_some() {
            return Err(ConversationError::GenerationInProgress);
        }
        let context = match path.last() {
            Some(m) => self.document_context(owner, &caller, c.id, &m.content).await,
            None => None,
        };
        // The documents' excerpts take their share of the history's budget.
        let budget = self
            .config
            .history_tokens
            .saturating_sub(context.as_ref().map_or(0, |(m, _)| m.content.chars().count().div_ceil(4)));
        let (mut messages, dropped) = history::build(c.system_prompt.as_deref(), &path, budget);
        let citations = match context {
            Some((message, citations)) => {
                // Right after the conversation's own system prompt (see docs/documents.md).
                let at = usize::from(messages.first().is_some_and(|m| m.role == "system"));
                messages.insert(at, message);
                citations
            }
            None => Vec::new(),
        };
        let mut reply = MessageRecord::new(c.id, answered, Role::Assistant, String::new());
        reply.citations = (!citations.is_empty()).then(|| citations.clone());
        reply.status = MessageStatus::Streaming;
        reply.model = Some(c.model.clone());
        reply.context_dropped = i64::try_from(dropped).unwrap_or(i64::MAX);
        let start = Start {
            conversation_id: c.id,
            message_id: reply.id,
            parent_id: answered,
            model: c.model.clone(),
            context_dropped: reply.context_dropped,
        };
        let generation = Generation::new(start, owner, citations);
        if !self.jobs.begin(generation.clone()) || self.store.generating(owner, c.id).await?.is_some() {
            self.jobs.end(&generation);
            return Err(ConversationError::GenerationInProgress);
        }
        if let Err(e) = self.store.start_exchange(owner, prompt.as_ref(), &reply).await {
            self.jobs.end(&generation);
            return Err(e);
        }
        self.forget_conversation(c.id).await;
        // The first exchange of a conversation still called by its placeholder names it.
        let title = (self.config.generate_titles && c.title_pending && path.len() == 1)
            .then(|| TitleJob { prompt: path[0].content.clone() });
        let request = ChatRequest { model: c.model.clone(), messages, options, ..Default::default() };
        let runner = self.runner.clone();
        let g = generation.clone();
        tokio::spawn(async move { runner.run(g, caller, request, title).await });
        Ok(Reply { generation, message: prompt })
    }

    async fn message_in(&self, owner: Uuid, conversation: Uuid, id: Uuid) -> Result<MessageRecord, ConversationError> {
        let m = self.store.message(owner, id).await?;
        if m.conversation_id != conversation {
            return Err(ConversationError::NotFound("message"));
        }
        Ok(m)
    }

    /// Stops the conversation's reply being generated, here or (through the bus) elsewhere; what
    /// was generated so far is kept.
    pub async fn stop(&self, owner: Uuid, bus: &Bus, conversation: Uuid) -> Result<Stopped, ConversationError> {
        let c = self.store.conversation(owner, conversation).await?;
        if let Some(g) = self.jobs.get(conversation).filter(|g| g.owner == owner) {
            g.stop();
            return Ok(Stopped { message_id: g.start.message_id, stopping: true });
        }
        if let Some(reply) = self.store.generating(owner, conversation).await? {
            let event = kit::bus::Event::new(STOP_EVENT, crate::NAME, StopGeneration { message_id: reply });
            if let Err(e) = bus.publish_event(&event).await {
                tracing::warn!(error = %e, "could not ask the other instances to stop a generation");
                return Err(ConversationError::Unavailable("the message bus is not reachable; retry shortly"));
            }
            return Ok(Stopped { message_id: reply, stopping: true });
        }
        Ok(Stopped { message_id: c.active_leaf_id.unwrap_or_default(), stopping: false })
    }

    /// The events of a reply after `last_event_id` (`<reply id>:<offset>`), or of the active
    /// reply from its start.
    pub async fn resume(
        &self,
        owner: Uuid,
        conversation: Uuid,
        last_event_id: Option<&str>,
    ) -> Result<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>> + Send + use<>,
        ConversationError,
    > {
        let c = self.store.conversation(owner, conversation).await?;
        let (reply, offset) = match last_event_id {
            Some(id) => parse_event_id(id)?,
            None => (c.active_leaf_id.ok_or(ConversationError::NotFound("reply"))?, 0),
        };
        let live = self.jobs.get(conversation).filter(|g| g.owner == owner && g.start.message_id == reply);
        let m = self.message_in(owner, conversation, reply).await?;
        if m.role != Role::Assistant {
            return Err(ConversationError::NotFound("reply"));
        }
        // `is_char_boundary` is false past the end.
        let valid = live.as_ref().map_or(m.content.is_char_boundary(offset), |g| g.has_offset(offset));
        if !valid {
            return Err(invalid_event_id());
        }
        let (start, progress) = match live {
            Some(g) => (g.start.clone(), g.progress()),
            None => {
                let start = Start {
                    conversation_id: conversation,
                    message_id: reply,
                    parent_id: m.parent_id,
                    model: m.model.clone().unwrap_or_else(|| c.model.clone()),
                    context_dropped: m.context_dropped,
                };
                (start, self.mirrors.follow(&self.store, owner, &m))
            }
        };
        Ok(crate::generation::events(start, progress, offset))
    }

    /// The stored reply of a generation that has ended, with its siblings.
    pub async fn reply_record(&self, owner: Uuid, generation: &Generation) -> Result<MessageRecord, ConversationError> {
        self.store.message(owner, generation.start.message_id).await
    }
}

fn invalid_event_id() -> ConversationError {
    ConversationError::BadRequest("invalid_event_id", "the event id is not one this reply sent".into())
}

fn parse_event_id(id: &str) -> Result<(Uuid, usize), ConversationError> {
    let (reply, offset) = id.split_once(':').ok_or_else(invalid_event_id)?;
    Ok((Uuid::parse_str(reply).map_err(|_| invalid_event_id())?, offset.parse().map_err(|_| invalid_event_id())?))
}
