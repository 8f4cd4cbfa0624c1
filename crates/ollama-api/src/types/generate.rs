//! `POST /api/generate`: completion from a prompt.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::chat::ToolCall;
use super::common::{Format, Logprob, Metrics, Options, Think, is_false, is_zero, nullable, optional_format};
use super::keep_alive::KeepAlive;

/// `POST /api/generate` request. An empty `prompt` loads the model; with `keep_alive: 0` it
/// unloads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prompt: String,
    /// Text after the insertion point (fill-in-the-middle).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suffix: String,
    /// Replaces the model's system prompt.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system: String,
    /// Replaces the model's prompt template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template: String,
    /// Deprecated: the `context` of a previous response.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<i64>,
    /// Absent means streaming; see [`GenerateRequest::is_streaming`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// No templating: the prompt goes to the model as is, and no context is returned.
    #[serde(default, skip_serializing_if = "is_false")]
    pub raw: bool,
    #[serde(default, deserialize_with = "optional_format", skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
    /// Base64 images, without a `data:` prefix.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<bool>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub logprobs: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub top_logprobs: u32,
}

impl GenerateRequest {
    /// Ollama streams unless `stream` is explicitly `false`.
    pub fn is_streaming(&self) -> bool {
        self.stream.unwrap_or(true)
    }
}

/// One `/api/generate` chunk (or the whole answer when not streaming). When streamed, the final
/// chunk has an empty `response`, `done: true`, `done_reason` and the metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateResponse {
    pub model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_host: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default)]
    pub response: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    pub done: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub done_reason: String,
    /// Deprecated: token ids to send back as the next request's `context`.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<i64>,
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<Logprob>,
}
