//! The conversation service's settings (`[conversation]` in the configuration file).

use std::path::PathBuf;
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
    /// What one user may keep and hold open (`[conversation.quotas]`).
    pub quotas: QuotasConfig,
}

/// Per-user caps; see `docs/conversations.md`, "Quotas". Each is checked by the instance that
/// takes the request: concurrent requests of one user on several instances may pass a count by
/// as many as there are instances, never more.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasConfig {
    /// Conversations a user may have (imports included).
    pub conversations_per_user: u64,
    /// Documents one conversation may hold.
    pub documents_per_conversation: u64,
    /// Documents a user may have in all.
    pub documents_per_user: u64,
    /// Bytes of uploaded files a user may have stored (each document counted, even when another
    /// has the same bytes).
    pub stored_bytes_per_user: u64,
    /// Replies a user may follow at once on one instance: streams of events and waits for a
    /// whole reply (`stream: false`).
    pub open_streams_per_user: usize,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        Self {
            conversations_per_user: 10_000,
            documents_per_conversation: 100,
            documents_per_user: 1_000,
            stored_bytes_per_user: 2 * 1024 * 1024 * 1024,
            open_streams_per_user: 16,
        }
    }
}

impl QuotasConfig {
    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("conversations_per_user", self.conversations_per_user),
            ("documents_per_conversation", self.documents_per_conversation),
            ("documents_per_user", self.documents_per_user),
            ("stored_bytes_per_user", self.stored_bytes_per_user),
            ("open_streams_per_user", self.open_streams_per_user as u64),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((key, _)) => Err(format!("conversation.quotas.{key} must be positive")),
            None => Ok(()),
        }
    }
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
    /// Most bytes inflating one document may produce: a zip's entries, a PDF's streams (each,
    /// and the ones the text comes from together), and the text itself.
    pub max_inflated_bytes: u64,
    /// Address space of the process a document is read in (`RLIMIT_AS`), in bytes.
    pub extract_memory: u64,
    /// Time a document may take to read (also its reader's CPU time); then it is killed.
    #[serde(with = "kit::config::duration")]
    pub extract_timeout: Duration,
    /// The program documents are read with (`<program> extract-document`): this server's own
    /// binary, which is the default.
    pub extract_program: Option<PathBuf>,
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
            max_inflated_bytes: 50 * 1024 * 1024,
            extract_memory: 512 * 1024 * 1024,
            extract_timeout: Duration::from_secs(60),
            extract_program: None,
        }
    }
}

/// Less address space than this and the reader cannot even start (its binary and libraries are
/// mapped into it).
const MIN_EXTRACT_MEMORY: u64 = 128 * 1024 * 1024;

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
        if self.max_inflated_bytes < 1024 * 1024 {
            return Err("conversation.documents.max_inflated_bytes must be at least 1 MiB".into());
        }
        if self.extract_memory < MIN_EXTRACT_MEMORY {
            return Err(format!(
                "conversation.documents.extract_memory must be at least {} MiB (the reader's own code needs it)",
                MIN_EXTRACT_MEMORY >> 20
            ));
        }
        if self.extract_timeout < Duration::from_secs(1) {
            return Err("conversation.documents.extract_timeout must be at least 1s".into());
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
            quotas: QuotasConfig::default(),
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
        self.documents.validate()?;
        self.quotas.validate()
    }
}
