//! The Ollama API and its OpenAI-compatible face, for OllamaNet's engine (which serves it), its
//! inference router (which calls engines and serves it again) and anything else that speaks it.
//!
//! - [`types`]: the native `/api/*` requests and responses, field for field as Ollama's Go
//!   structs encode them. Units are Ollama's: durations are `u64` **nanoseconds**, sizes bytes,
//!   timestamps RFC 3339 with fractional seconds and the zone ([`time::OffsetDateTime`]);
//!   `keep_alive` is seconds or a Go duration string ([`types::KeepAlive`]).
//! - [`openai`]: the `/v1/*` shapes and the conversions to and from the native API.
//! - [`ndjson`] and [`sse`]: the streaming formats. Native endpoints stream one JSON object per
//!   line (`application/x-ndjson`), the last with `"done": true`, and report a late error as a
//!   last `{"error": "…"}` line; `/v1` endpoints stream `data: {json}` SSE frames ending with
//!   `data: [DONE]`. The decoders take any byte chunking and yield typed items.
//! - [`strict`]: request bodies read once and refused where an Ollama server (Go's
//!   `encoding/json`) could read them differently: keys that differ from a field only in case,
//!   repeated keys.
//! - [`client`]: [`OllamaClient`], typed calls to an engine through [`kit::upstream::Upstream`],
//!   in-process or over HTTP. Streaming calls resolve once the status is known (so a failed
//!   node can still be skipped) and then yield items; dropping the stream closes the body and
//!   with it the generation.

pub mod client;
pub mod ndjson;
pub mod openai;
pub mod sse;
pub mod strict;
pub mod types;

pub use client::{ClientError, ItemStream, OllamaClient};

/// OllamaNet's extension of streamed generations: with this request header set to `1`, the
/// inference service sends `{"queue_position": n}` lines while the request waits for an engine.
pub const QUEUE_EVENTS: &str = "x-ollamanet-queue-events";
