//! The conversation service's settings (`[conversation]` in the configuration file).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationConfig {
    /// The history sent with a message is cut to this many tokens (estimated at four characters
    /// a token), dropping the oldest turns first; the system prompt and the new message are always
    /// kept. How many were dropped is reported with the reply.
    pub history_tokens: usize,
    /// How often a reply being generated is written to the database, so that a crash or a
    /// disconnect loses at most this much of it.
    #[serde(with = "kit::config::duration")]
    pub persist_interval: Duration,
    /// Ask the model for a title after the first exchange of a conversation.
    pub generate_titles: bool,
    /// Characters a message may have.
    pub max_message_chars: usize,
    /// Documents and retrieval (`[conversation.documents]`).
    pub documents: DocumentsConfig,
}

/// Uploaded documents and retrieval from them; see `docs/documents.md`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentsConfig {
    /// Largest file accepted, in bytes. The gateway's route for uploads has its own body limit,
    /// which must be a little larger.
    pub max_upload_bytes: u64,
    /// Most characters in a chunk.
    pub chunk_size: usize,
    /// Characters consecutive chunks of a page share.
    pub chunk_overlap: usize,
    /// The embedding model, reached through the inference service.
    pub embed_model: String,
    /// Chunks retrieved for a message (and the default of a search).
    pub top_k: usize,
    /// Documents read (parsed, inflated, chunked) at once; the rest wait.
    pub max_concurrent_extractions: usize,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 20 * 1024 * 1024,
            chunk_size: 800,
            chunk_overlap: 120,
            embed_model: "all-minilm".into(),
            top_k: 4,
            max_concurrent_extractions: 2,
        }
    }
}

impl DocumentsConfig {
    fn validate(&self) -> Result<(), String> {
        if self.max_upload_bytes == 0 {
            return Err("conversation.documents.max_upload_bytes must be positive".into());
        }
        if !(100..=8000).contains(&self.chunk_size) {
            return Err("conversation.documents.chunk_size must be 100 to 8000 characters".into());
        }
        if self.chunk_overlap * 2 > self.chunk_size {
            return Err("conversation.documents.chunk_overlap must be at most half of chunk_size".into());
        }
        if self.embed_model.trim().is_empty() {
            return Err("conversation.documents.embed_model must name a model".into());
        }
        if !(1..=20).contains(&self.top_k) {
            return Err("conversation.documents.top_k must be 1 to 20".into());
        }
        if self.max_concurrent_extractions == 0 {
            return Err("conversation.documents.max_concurrent_extractions must be positive".into());
        }
        Ok(())
    }
}

impl Default for ConversationConfig {
    fn default() -> Self {
        Self {
            history_tokens: 3072,
            persist_interval: Duration::from_millis(250),
            generate_titles: true,
            max_message_chars: 100_000,
            documents: DocumentsConfig::default(),
        }
    }
}

impl ConversationConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.history_tokens < 64 {
            return Err("conversation.history_tokens must be at least 64".into());
        }
        if self.persist_interval.is_zero() {
            return Err("conversation.persist_interval must be positive".into());
        }
        if self.max_message_chars == 0 {
            return Err("conversation.max_message_chars must be positive".into());
        }
        self.documents.validate()
    }
}
