//! The request and response bodies of the conversation API.

use kit::Timestamp;
use ollama_api::types::Options;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::{
    Citation, ConversationRecord, FeedbackRecord, FolderRecord, MessageRecord, MessageStatus, NoteRecord, Role, Usage,
};

// ---- folders ----

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Folder {
    pub id: Uuid,
    /// Null for the root folder.
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<FolderRecord> for Folder {
    fn from(f: FolderRecord) -> Self {
        Folder { id: f.id, parent_id: f.parent_id, name: f.name, created_at: f.created_at, updated_at: f.updated_at }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFolder {
    /// 1–100 characters, no control characters; unique (ignoring case) among its siblings.
    pub name: String,
    /// Default: the root folder.
    pub parent_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFolder {
    pub name: Option<String>,
    /// Move under this folder (not under itself or a descendant).
    pub parent_id: Option<Uuid>,
}

// ---- conversations ----

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Conversation {
    pub id: Uuid,
    pub folder_id: Uuid,
    pub title: String,
    pub model: String,
    pub system_prompt: Option<String>,
    pub pinned: bool,
    pub archived: bool,
    /// The last message of the branch shown (and continued by the next message).
    pub active_message_id: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<ConversationRecord> for Conversation {
    fn from(c: ConversationRecord) -> Self {
        Conversation {
            id: c.id,
            folder_id: c.folder_id,
            title: c.title,
            model: c.model,
            system_prompt: c.system_prompt,
            pinned: c.pinned,
            archived: c.archived,
            active_message_id: c.active_leaf_id,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    /// The model that answers, e.g. `smollm2:135m`.
    pub model: String,
    /// Default: a title made by the model after the first exchange.
    pub title: Option<String>,
    pub system_prompt: Option<String>,
    /// Default: the root folder.
    pub folder_id: Option<Uuid>,
}

/// Every field optional; absent fields keep their value. `system_prompt: ""` removes it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConversation {
    pub title: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub pinned: Option<bool>,
    pub archived: Option<bool>,
    /// Move to this folder.
    pub folder_id: Option<Uuid>,
    /// Show this message's branch: the active message becomes the newest message under it.
    pub active_message_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListConversations {
    /// 1–100, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Words that must all occur in the title or in a message of the conversation.
    pub q: Option<String>,
    pub folder_id: Option<Uuid>,
    pub pinned: Option<bool>,
    /// Default false: archived conversations are listed only when asked for.
    pub archived: Option<bool>,
    pub model: Option<String>,
}

// ---- messages ----

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    /// For replies: the model that wrote it.
    pub model: Option<String>,
    /// For failed replies: why.
    pub error: Option<String>,
    /// For replies: what the engine reported.
    pub usage: Option<Usage>,
    /// Messages of the branch left out of the model's context for this reply.
    pub context_dropped: i64,
    /// For replies: the document chunks the model was given, numbered as it was shown them
    /// (empty when the conversation has no documents).
    pub citations: Vec<Citation>,
    /// The messages with the same parent, this one included, oldest first: the branches a
    /// client can switch between.
    pub sibling_ids: Vec<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Message {
    pub fn from_record(m: MessageRecord, sibling_ids: Vec<Uuid>) -> Self {
        let usage = (m.role == Role::Assistant).then_some(m.usage);
        Message {
            id: m.id,
            conversation_id: m.conversation_id,
            parent_id: m.parent_id,
            role: m.role,
            content: m.content,
            status: m.status,
            model: m.model,
            error: m.error,
            usage,
            context_dropped: m.context_dropped,
            citations: m.citations.unwrap_or_default(),
            sibling_ids,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListMessages {
    /// `path` (default): the active branch, root first. `tree`: every message of every branch.
    pub view: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub content: String,
    /// Continue from this message instead of the active one.
    pub parent_id: Option<Uuid>,
    /// Edit: the new message replaces this user message in a new branch (it gets the same parent).
    pub edit_of: Option<Uuid>,
    /// Default true: the reply as server-sent events. False: one JSON body when it is complete.
    pub stream: Option<bool>,
    /// Ollama's generation options (temperature, num_predict, seed, …).
    #[schema(value_type = Object)]
    pub options: Option<Options>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Regenerate {
    pub stream: Option<bool>,
    #[schema(value_type = Object)]
    pub options: Option<Options>,
}

/// A reply, when it was not streamed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Exchange {
    /// The message sent (absent for a regenerated reply).
    pub message: Option<Message>,
    pub reply: Message,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Stopped {
    pub message_id: Uuid,
    /// Whether a generation was running and has been asked to stop.
    pub stopping: bool,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResumeQuery {
    /// The last event id received, for clients that cannot send `Last-Event-ID`.
    pub last_event_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (default; importable) or `markdown`.
    pub format: Option<String>,
}

/// A conversation with every message of every branch: what export writes and import reads.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationExport {
    /// `ollamanet.conversation.v1`.
    pub format: String,
    pub title: String,
    pub model: String,
    pub system_prompt: Option<String>,
    pub created_at: Timestamp,
    pub active_message_id: Option<Uuid>,
    pub messages: Vec<ExportedMessage>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportedMessage {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub model: Option<String>,
    pub usage: Option<Usage>,
    pub created_at: Timestamp,
}

pub const EXPORT_FORMAT: &str = "ollamanet.conversation.v1";

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Default: the root folder.
    pub folder_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteFolderQuery {
    /// Also delete the subfolders and conversations inside. Without it, only an empty folder
    /// can be deleted.
    pub recursive: Option<bool>,
}

// ---- notes and feedback ----

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Note {
    pub id: Uuid,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    /// The highlighted range of the reply's content, in characters: `[start, end)`.
    pub start: i64,
    pub end: i64,
    pub text: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<NoteRecord> for Note {
    fn from(n: NoteRecord) -> Self {
        Note {
            id: n.id,
            message_id: n.message_id,
            conversation_id: n.conversation_id,
            start: n.start_offset,
            end: n.end_offset,
            text: n.text,
            created_at: n.created_at,
            updated_at: n.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNote {
    /// A reply (assistant message).
    pub message_id: Uuid,
    pub start: i64,
    pub end: i64,
    /// 0–10,000 characters.
    pub text: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNote {
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub text: Option<String>,
}

/// Which annotations to list: give exactly one.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnnotationQuery {
    pub message_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    pub fn to_db(self) -> i16 {
        match self {
            Rating::Up => 1,
            Rating::Down => -1,
        }
    }

    pub fn from_db(v: i16) -> Self {
        if v > 0 { Rating::Up } else { Rating::Down }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Feedback {
    pub id: Uuid,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub rating: Rating,
    pub comment: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<FeedbackRecord> for Feedback {
    fn from(f: FeedbackRecord) -> Self {
        Feedback {
            id: f.id,
            message_id: f.message_id,
            conversation_id: f.conversation_id,
            rating: Rating::from_db(f.rating),
            comment: f.comment,
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFeedback {
    /// A reply (assistant message); one feedback per reply and user.
    pub message_id: Uuid,
    pub rating: Rating,
    /// At most 2,000 characters.
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFeedback {
    pub rating: Option<Rating>,
    /// `""` removes the comment.
    pub comment: Option<String>,
}
