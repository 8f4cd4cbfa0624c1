//! `POST /api/chat`: messages, tools, tool calls, chat chunks.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::common::{Format, Logprob, Metrics, Options, Think, is_false, is_zero, nullable, optional_format};
use super::keep_alive::KeepAlive;

/// A chat message, in a request's history or in a response chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    #[serde(default)]
    pub content: String,
    /// The model's reasoning, separate from `content`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// Base64 images, without a `data:` prefix.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On a `tool` message: the tool whose result this is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_call_id: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self { role: role.to_owned(), content: content.into(), ..Self::default() }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A call the model wants made. Unlike OpenAI's, `arguments` is a JSON object, not a string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub function: ToolCallFunction,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    /// Position among the calls of one response (omitted when 0, as Go's `omitempty` does).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub index: u32,
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub arguments: Map<String, Value>,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `function` today.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: ToolFunction,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolFunction {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// JSON Schema of the arguments object.
    #[serde(default, deserialize_with = "nullable")]
    pub parameters: Map<String, Value>,
}

impl Tool {
    pub fn function(function: ToolFunction) -> Self {
        Self { kind: "function".to_owned(), function }
    }
}

/// `POST /api/chat` request. An empty `messages` loads the model; with `keep_alive: 0` it
/// unloads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    #[serde(default, deserialize_with = "nullable")]
    pub messages: Vec<Message>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    #[serde(default, deserialize_with = "optional_format", skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    /// Absent means streaming; see [`ChatRequest::is_streaming`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
    /// Cut the history to fit the context instead of failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// Shift the history at the context limit instead of stopping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<bool>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub logprobs: bool,
    /// 0-20 alternatives per token when `logprobs` is on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub top_logprobs: u32,
}

impl ChatRequest {
    /// Ollama streams unless `stream` is explicitly `false`.
    pub fn is_streaming(&self) -> bool {
        self.stream.unwrap_or(true)
    }
}

fn assistant() -> Message {
    Message::assistant("")
}

/// One `/api/chat` chunk (or the whole answer when not streaming). The last one has `done: true`,
/// a `done_reason` and the metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_host: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Always sent by Ollama (Go field without `omitempty`); an empty assistant message when a
    /// peer leaves it out of the final chunk.
    #[serde(default = "assistant")]
    pub message: Message,
    pub done: bool,
    /// `stop`, `length`, `load`, `unload`; only on the final chunk.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub done_reason: String,
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<Logprob>,
}
