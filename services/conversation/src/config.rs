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
}

impl Default for ConversationConfig {
    fn default() -> Self {
        Self {
            history_tokens: 3072,
            persist_interval: Duration::from_millis(250),
            generate_titles: true,
            max_message_chars: 100_000,
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
        Ok(())
    }
}
