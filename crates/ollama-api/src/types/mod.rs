//! Ollama's native API (`/api/*`), field for field and unit for unit.
//!
//! Requests never reject unknown fields (Ollama ignores them and clients send extras), accept
//! `null` wherever Go would decode it into an empty value, and leave out on serialization what
//! was not set. Responses send what Ollama's Go structs send: fields without `omitempty` always,
//! the others only when set.

mod chat;
mod common;
mod embed;
mod generate;
mod keep_alive;
mod models;

pub use chat::{ChatRequest, ChatResponse, Message, Tool, ToolCall, ToolCallFunction, ToolFunction};
pub use common::{Format, Logprob, Metrics, OneOrMany, Options, Think, ThinkLevel, TokenLogprob};
pub(crate) use common::{is_false, nullable};
pub use embed::{EmbedInput, EmbedRequest, EmbedResponse, EmbeddingsRequest, EmbeddingsResponse};
pub use generate::{GenerateRequest, GenerateResponse};
pub use keep_alive::{KeepAlive, KeepAliveError, Lifetime};
pub use models::{
    Capability, CopyRequest, CreateRequest, DeleteRequest, ErrorResponse, ListResponse, ModelDetails, ModelEntry,
    ProgressResponse, PsResponse, PullRequest, RunningModel, ShowRequest, ShowResponse, Tensor, VersionResponse,
};
