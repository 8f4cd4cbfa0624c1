//! OpenAI ↔ native conversions, following Ollama's own `openai` package: requests become
//! `/api/chat`, `/api/generate` and `/api/embed` requests, and native answers become OpenAI
//! objects or stream chunks.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{Map, Value};

use super::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, Choice, ChoiceLogprobs, ChunkChoice,
    Completion, CompletionChoice, CompletionRequest, ContentPart, Delta, Embedding, EmbeddingList, EmbeddingRequest,
    EmbeddingUsage, EmbeddingVector, EncodingFormat, ErrorResponse, FunctionCall, MessageContent, Model, ModelList,
    ToolCall, Usage,
};
use crate::types::{
    self, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Format, GenerateRequest, GenerateResponse,
    ListResponse, Logprob, Message, Metrics, OneOrMany, Options, ShowResponse, Think, ThinkLevel, ToolCallFunction,
};

/// What Ollama reports in `system_fingerprint`.
pub const SYSTEM_FINGERPRINT: &str = "fp_ollama";

/// A request that cannot be expressed natively; answer it with 400 ([`ConvertError::to_response`]).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("invalid message content type: {role} message has neither content nor tool calls")]
    MissingContent { role: String },
    #[error("invalid image input")]
    InvalidImage,
    #[error("invalid tool call arguments: {0}")]
    InvalidToolArguments(#[source] serde_json::Error),
    #[error(r#"invalid reasoning value: '{0}' (must be "high", "medium", "low", "max" or "none")"#)]
    InvalidReasoning(String),
    #[error("invalid format: json_schema.schema must be an object")]
    InvalidSchema,
    #[error("invalid input")]
    EmptyInput,
}

impl ConvertError {
    pub fn to_response(&self) -> ErrorResponse {
        ErrorResponse::new(400, self.to_string())
    }
}

/// A fresh completion id such as `chatcmpl-0190…`; Ollama's own ids (`chatcmpl-<0..999>`)
/// collide across concurrent requests.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// Seconds since the Unix epoch, for `created`.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Native tool calls as OpenAI tool calls: `arguments` serialized to a string, an id made up
/// when the model gave none (clients answer with `tool_call_id`), `index` counted from `first`.
pub fn tool_calls_to_openai(calls: &[types::ToolCall], first: u32) -> Vec<ToolCall> {
    calls
        .iter()
        .zip(first..)
        .map(|(call, index)| ToolCall {
            id: if call.id.is_empty() { new_id("call") } else { call.id.clone() },
            index: Some(index),
            kind: "function".to_owned(),
            function: FunctionCall {
                name: call.function.name.clone(),
                arguments: Value::Object(call.function.arguments.clone()).to_string(),
            },
        })
        .collect()
}

/// OpenAI tool calls as native ones: each `arguments` string must hold a JSON object (an empty
/// string is read as `{}`, which clients send for functions without parameters).
pub fn tool_calls_from_openai(calls: &[ToolCall]) -> Result<Vec<types::ToolCall>, ConvertError> {
    calls
        .iter()
        .map(|call| {
            let arguments = if call.function.arguments.trim().is_empty() {
                Map::new()
            } else {
                serde_json::from_str(&call.function.arguments).map_err(ConvertError::InvalidToolArguments)?
            };
            Ok(types::ToolCall {
                id: call.id.clone(),
                function: ToolCallFunction {
                    index: call.index.unwrap_or(0),
                    name: call.function.name.clone(),
                    arguments,
                },
            })
        })
        .collect()
}

/// `/v1/chat/completions` → `/api/chat`.
///
/// As in Ollama, a message made of content parts becomes one native message per part (text or
/// image), with the tool calls on the last; `temperature` and `top_p` default to OpenAI's 1.0
/// rather than the model's defaults.
pub fn chat_request(req: ChatCompletionRequest) -> Result<ChatRequest, ConvertError> {
    let mut messages = Vec::with_capacity(req.messages.len());
    for msg in &req.messages {
        let tool_name = if msg.role.eq_ignore_ascii_case("tool") {
            if msg.name.is_empty() { tool_name_for(&req.messages, &msg.tool_call_id) } else { msg.name.clone() }
        } else {
            String::new()
        };
        let tool_calls = tool_calls_from_openai(&msg.tool_calls)?;
        match &msg.content {
            Some(MessageContent::Text(text)) => messages.push(Message {
                role: msg.role.clone(),
                content: text.clone(),
                thinking: msg.reasoning.clone(),
                tool_calls,
                tool_name,
                tool_call_id: msg.tool_call_id.clone(),
                ..Message::default()
            }),
            Some(MessageContent::Parts(parts)) => {
                let first = messages.len();
                for part in parts {
                    messages.push(match part {
                        ContentPart::Text { text } => Message::new(&msg.role, text.clone()),
                        ContentPart::ImageUrl { image_url } => {
                            Message { images: vec![image_data(image_url.url())?], ..Message::new(&msg.role, "") }
                        }
                    });
                }
                if messages.len() > first
                    && !tool_calls.is_empty()
                    && let Some(last) = messages.last_mut()
                {
                    last.tool_calls = tool_calls;
                    last.tool_name = tool_name;
                    last.tool_call_id = msg.tool_call_id.clone();
                    last.thinking = msg.reasoning.clone();
                }
            }
            None if tool_calls.is_empty() => return Err(ConvertError::MissingContent { role: msg.role.clone() }),
            None => messages.push(Message {
                role: msg.role.clone(),
                thinking: msg.reasoning.clone(),
                tool_calls,
                tool_call_id: msg.tool_call_id.clone(),
                ..Message::default()
            }),
        }
    }

    let options = Options {
        stop: req.stop.map(OneOrMany::into_vec),
        num_predict: req.max_tokens.or(req.max_completion_tokens),
        temperature: Some(req.temperature.unwrap_or(1.0) as f32),
        top_p: Some(req.top_p.unwrap_or(1.0) as f32),
        seed: req.seed,
        frequency_penalty: req.frequency_penalty.map(|v| v as f32),
        presence_penalty: req.presence_penalty.map(|v| v as f32),
        ..Options::default()
    };

    let format = match req.response_format {
        Some(rf) => match rf.kind.trim().to_ascii_lowercase().as_str() {
            "json_object" => Some(Format::Json),
            "json_schema" => match rf.json_schema.and_then(|s| s.schema) {
                Some(Value::Object(schema)) => Some(Format::Schema(schema)),
                Some(_) => return Err(ConvertError::InvalidSchema),
                None => None,
            },
            _ => None,
        },
        None => None,
    };

    let effort = req.reasoning.and_then(|r| r.effort).or(req.reasoning_effort);
    let think = match effort.as_deref() {
        None => None,
        Some("none") => Some(Think::Enabled(false)),
        Some(level) => Some(Think::Level(
            ThinkLevel::parse(level).ok_or_else(|| ConvertError::InvalidReasoning(level.to_owned()))?,
        )),
    };

    Ok(ChatRequest {
        model: req.model,
        messages,
        tools: req.tools,
        format,
        options: Some(options),
        stream: Some(req.stream),
        think,
        logprobs: req.logprobs.unwrap_or(false),
        top_logprobs: req.top_logprobs.unwrap_or(0),
        ..ChatRequest::default()
    })
}

/// The name of the function whose call had this id; the last one wins, as in Ollama.
fn tool_name_for(messages: &[ChatMessage], id: &str) -> String {
    if id.is_empty() {
        return String::new();
    }
    messages
        .iter()
        .rev()
        .flat_map(|m| m.tool_calls.iter())
        .find(|c| c.id == id)
        .map(|c| c.function.name.clone())
        .unwrap_or_default()
}

/// The base64 payload of an image URL. Only inline data is supported (`data:image/…;base64,`,
/// `data:;base64,`, or bare base64); remote URLs are refused, as by Ollama.
fn image_data(url: &str) -> Result<String, ConvertError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media, data) = rest.split_once(',').ok_or(ConvertError::InvalidImage)?;
        let media_ok = media == ";base64"
            || media.strip_suffix(";base64").and_then(|m| m.strip_prefix("image/")).is_some_and(|t| !t.is_empty());
        return if media_ok { Ok(data.to_owned()) } else { Err(ConvertError::InvalidImage) };
    }
    if url.contains("://") || url.is_empty() {
        return Err(ConvertError::InvalidImage);
    }
    Ok(url.to_owned())
}

fn usage(m: &Metrics) -> Usage {
    let prompt = m.prompt_eval_count.unwrap_or(0);
    let completion = m.eval_count.unwrap_or(0);
    Usage { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
}

fn logprobs(l: &[Logprob]) -> Option<ChoiceLogprobs> {
    (!l.is_empty()).then(|| ChoiceLogprobs { content: l.to_vec() })
}

/// The final reason: tool calls win, then the native `done_reason`, else `stop`.
fn finish_reason(tool_calls: bool, done_reason: &str) -> String {
    if tool_calls {
        "tool_calls".to_owned()
    } else if done_reason.is_empty() {
        "stop".to_owned()
    } else {
        done_reason.to_owned()
    }
}

/// A non-streamed `/api/chat` answer as a `chat.completion`.
pub fn chat_completion(id: &str, resp: ChatResponse) -> ChatCompletion {
    let tool_calls = tool_calls_to_openai(&resp.message.tool_calls, 0);
    let finish = finish_reason(!tool_calls.is_empty(), &resp.done_reason);
    let role = if resp.message.role.is_empty() { "assistant".to_owned() } else { resp.message.role };
    ChatCompletion {
        id: id.to_owned(),
        object: "chat.completion".to_owned(),
        created: resp.created_at.unix_timestamp(),
        model: resp.model,
        system_fingerprint: SYSTEM_FINGERPRINT.to_owned(),
        choices: vec![Choice {
            index: 0,
            message: ChatMessage {
                role,
                content: Some(MessageContent::Text(resp.message.content)),
                reasoning: resp.message.thinking,
                tool_calls,
                ..ChatMessage::default()
            },
            finish_reason: Some(finish),
            logprobs: logprobs(&resp.logprobs),
        }],
        usage: usage(&resp.metrics),
    }
}

/// Turns the chunks of one streamed `/api/chat` answer into `chat.completion.chunk`s with one
/// `id` and `created`: the first carries `role`, the last content chunk `finish_reason`, and with
/// `include_usage` a final chunk has `choices: []` and the usage. Frame each with
/// [`crate::sse::encode`] and end the stream with [`crate::sse::DONE`].
#[derive(Debug, Clone)]
pub struct ChatStream {
    id: String,
    created: i64,
    include_usage: bool,
    started: bool,
    tool_calls_sent: u32,
}

impl ChatStream {
    pub fn new(id: String, created: i64, include_usage: bool) -> Self {
        Self { id, created, include_usage, started: false, tool_calls_sent: 0 }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The OpenAI chunks for one native chunk: none for an empty interim chunk, one usually,
    /// two for a final chunk with `include_usage`.
    pub fn convert(&mut self, resp: &ChatResponse) -> Vec<ChatCompletionChunk> {
        let msg = &resp.message;
        let tool_calls = tool_calls_to_openai(&msg.tool_calls, self.tool_calls_sent);
        self.tool_calls_sent += tool_calls.len() as u32;
        let first = !std::mem::replace(&mut self.started, true);
        let has_delta = !msg.content.is_empty() || !msg.thinking.is_empty() || !tool_calls.is_empty();
        if !(first || has_delta || resp.done) {
            return Vec::new();
        }
        let delta = Delta {
            role: first.then(|| "assistant".to_owned()),
            // OpenAI's first chunk carries `"content": ""` even when there is nothing yet.
            content: (first || !msg.content.is_empty()).then(|| msg.content.clone()),
            reasoning: (!msg.thinking.is_empty()).then(|| msg.thinking.clone()),
            tool_calls,
        };
        let finish = resp.done.then(|| finish_reason(self.tool_calls_sent > 0, &resp.done_reason));
        let mut out = vec![self.chunk(
            resp,
            vec![ChunkChoice { index: 0, delta, finish_reason: finish, logprobs: logprobs(&resp.logprobs) }],
        )];
        if resp.done && self.include_usage {
            let mut last = self.chunk(resp, Vec::new());
            last.usage = Some(usage(&resp.metrics));
            out.push(last);
        }
        out
    }

    fn chunk(&self, resp: &ChatResponse, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: resp.model.clone(),
            system_fingerprint: SYSTEM_FINGERPRINT.to_owned(),
            choices,
            usage: None,
        }
    }
}

/// `/v1/completions` → `/api/generate` (same option mapping as chat).
pub fn completion_request(req: CompletionRequest) -> GenerateRequest {
    let options = Options {
        stop: req.stop.map(OneOrMany::into_vec),
        num_predict: req.max_tokens,
        temperature: Some(req.temperature.unwrap_or(1.0) as f32),
        top_p: Some(req.top_p.unwrap_or(1.0) as f32),
        seed: req.seed,
        frequency_penalty: req.frequency_penalty.map(|v| v as f32),
        presence_penalty: req.presence_penalty.map(|v| v as f32),
        ..Options::default()
    };
    GenerateRequest {
        model: req.model,
        prompt: req.prompt,
        suffix: req.suffix,
        options: Some(options),
        stream: Some(req.stream),
        ..GenerateRequest::default()
    }
}

/// A non-streamed `/api/generate` answer as a `text_completion`.
pub fn completion(id: &str, resp: GenerateResponse) -> Completion {
    Completion {
        id: id.to_owned(),
        object: "text_completion".to_owned(),
        created: resp.created_at.unix_timestamp(),
        system_fingerprint: SYSTEM_FINGERPRINT.to_owned(),
        choices: vec![CompletionChoice {
            text: resp.response,
            index: 0,
            finish_reason: Some(finish_reason(false, &resp.done_reason)),
            logprobs: logprobs(&resp.logprobs),
        }],
        usage: Some(usage(&resp.metrics)),
        model: resp.model,
    }
}

/// Like [`ChatStream`], for `/v1/completions`.
#[derive(Debug, Clone)]
pub struct CompletionStream {
    id: String,
    created: i64,
    include_usage: bool,
}

impl CompletionStream {
    pub fn new(id: String, created: i64, include_usage: bool) -> Self {
        Self { id, created, include_usage }
    }

    pub fn convert(&mut self, resp: &GenerateResponse) -> Vec<Completion> {
        if resp.response.is_empty() && !resp.done {
            return Vec::new();
        }
        let choice = CompletionChoice {
            text: resp.response.clone(),
            index: 0,
            finish_reason: resp.done.then(|| finish_reason(false, &resp.done_reason)),
            logprobs: logprobs(&resp.logprobs),
        };
        let mut out = vec![self.chunk(resp, vec![choice])];
        if resp.done && self.include_usage {
            let mut last = self.chunk(resp, Vec::new());
            last.usage = Some(usage(&resp.metrics));
            out.push(last);
        }
        out
    }

    fn chunk(&self, resp: &GenerateResponse, choices: Vec<CompletionChoice>) -> Completion {
        Completion {
            id: self.id.clone(),
            object: "text_completion".to_owned(),
            created: self.created,
            model: resp.model.clone(),
            system_fingerprint: SYSTEM_FINGERPRINT.to_owned(),
            choices,
            usage: None,
        }
    }
}

/// The namespace of `[host/][namespace/]model[:tag]`, `library` when there is none.
fn owner(name: &str) -> String {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.len() {
        0 | 1 => "library".to_owned(),
        n => parts[n - 2].to_owned(),
    }
}

/// `/api/tags` as `/v1/models`.
pub fn model_list(list: &ListResponse) -> ModelList {
    ModelList {
        object: "list".to_owned(),
        data: list
            .models
            .iter()
            .map(|m| Model {
                id: m.name.clone(),
                object: "model".to_owned(),
                created: m.modified_at.unix_timestamp(),
                owned_by: owner(&m.name),
            })
            .collect(),
    }
}

/// `/api/show` of `name` as `/v1/models/{name}`.
pub fn model(name: &str, show: &ShowResponse) -> Model {
    Model {
        id: name.to_owned(),
        object: "model".to_owned(),
        created: show.modified_at.map_or(0, |t| t.unix_timestamp()),
        owned_by: owner(name),
    }
}

/// `/v1/embeddings` → `/api/embed`. An empty string embeds `""`; an empty list is refused.
pub fn embed_request(req: EmbeddingRequest) -> Result<EmbedRequest, ConvertError> {
    let input = match req.input {
        OneOrMany::Many(v) if v.is_empty() => return Err(ConvertError::EmptyInput),
        OneOrMany::One(s) if s.is_empty() => OneOrMany::Many(vec![String::new()]),
        input => input,
    };
    Ok(EmbedRequest { model: req.model, input: Some(input), dimensions: req.dimensions, ..EmbedRequest::default() })
}

/// An `/api/embed` answer as an OpenAI embedding list.
pub fn embedding_list(model: &str, resp: EmbedResponse, format: EncodingFormat) -> EmbeddingList {
    let prompt_tokens = resp.prompt_eval_count.unwrap_or(0);
    EmbeddingList {
        object: "list".to_owned(),
        data: resp
            .embeddings
            .into_iter()
            .zip(0..)
            .map(|(v, index)| Embedding {
                object: "embedding".to_owned(),
                embedding: match format {
                    EncodingFormat::Float => EmbeddingVector::Float(v),
                    EncodingFormat::Base64 => EmbeddingVector::Base64(base64_f32(&v)),
                },
                index,
            })
            .collect(),
        model: model.to_owned(),
        usage: EmbeddingUsage { prompt_tokens, total_tokens: prompt_tokens },
    }
}

/// Little-endian `f32`s, base64 (what OpenAI clients decode with `np.frombuffer(…, float32)`).
fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert_eq!(owner("llama3.2"), "library");
        assert_eq!(owner("llama3.2:1b"), "library");
        assert_eq!(owner("mattw/pygmalion:latest"), "mattw");
        assert_eq!(owner("hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M"), "bartowski");
    }

    #[test]
    fn image_urls() {
        assert_eq!(image_data("data:image/png;base64,iVBOR").unwrap(), "iVBOR");
        assert_eq!(image_data("data:;base64,iVBOR").unwrap(), "iVBOR");
        assert_eq!(image_data("iVBOR").unwrap(), "iVBOR");
        for bad in ["https://example.com/a.png", "data:text/plain;base64,aGk=", "data:image/png,raw", ""] {
            assert!(image_data(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_is_little_endian_f32() {
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }
}
