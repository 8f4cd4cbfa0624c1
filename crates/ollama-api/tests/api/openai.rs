//! The OpenAI-compatible shapes and their conversions to and from the native API.

use ollama_api::openai::convert::{self, ChatStream, CompletionStream, ConvertError};
use ollama_api::openai::*;
use ollama_api::types::{self, ChatResponse, Format, GenerateResponse, ListResponse, Message, Think, ThinkLevel};
use serde_json::{Value, json};

use crate::helpers::{fixture, golden};

fn chat_request(json: Value) -> ChatCompletionRequest {
    serde_json::from_value(json).unwrap()
}

fn chunk(content: &str) -> ChatResponse {
    serde_json::from_value(json!({
        "model": "llama3.2", "created_at": "2023-08-04T08:52:19.385406455-07:00",
        "message": {"role": "assistant", "content": content}, "done": false
    }))
    .unwrap()
}

fn final_chunk() -> ChatResponse {
    serde_json::from_value(json!({
        "model": "llama3.2", "created_at": "2023-08-04T19:22:45.499127Z",
        "message": {"role": "assistant", "content": ""}, "done_reason": "stop", "done": true,
        "total_duration": 4883583458u64, "load_duration": 1334875, "prompt_eval_count": 26,
        "prompt_eval_duration": 342546000, "eval_count": 282, "eval_duration": 4535599000u64
    }))
    .unwrap()
}

#[test]
fn documented_requests_round_trip() {
    for name in ["chat_request", "chat_request_basic", "chat_request_vision", "chat_request_vision_data_url"] {
        golden::<ChatCompletionRequest>(&format!("openai/{name}.json"));
    }
    golden::<CompletionRequest>("openai/completion_request.json");
    golden::<EmbeddingRequest>("openai/embeddings_request.json");
}

#[test]
fn chat_request_maps_options_like_ollama() {
    let req = chat_request(json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 300, "seed": 7, "stop": "END", "frequency_penalty": 0.5, "stream": true,
        "response_format": {"type": "json_object"}, "user": "ignored", "n": 1
    }));
    let native = convert::chat_request(req).unwrap();
    let o = native.options.clone().unwrap();
    assert_eq!(o.num_predict, Some(300));
    assert_eq!(o.seed, Some(7));
    assert_eq!(o.stop.as_deref(), Some(&["END".to_owned()][..]));
    assert_eq!(o.frequency_penalty, Some(0.5));
    // OpenAI's defaults, not the model's.
    assert_eq!((o.temperature, o.top_p), (Some(1.0), Some(1.0)));
    assert_eq!(native.format, Some(Format::Json));
    assert!(native.is_streaming());
    assert_eq!(native.messages, [Message::user("hi")]);
}

#[test]
fn stream_defaults_to_false_on_v1() {
    let native = convert::chat_request(chat_request(json!({"model": "m", "messages": []}))).unwrap();
    assert_eq!(native.stream, Some(false));
}

#[test]
fn json_schema_and_reasoning() {
    let req = chat_request(json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "reasoning_effort": "high"
    }));
    let native = convert::chat_request(req).unwrap();
    assert!(matches!(native.format, Some(Format::Schema(ref s)) if s["type"] == "object"));
    assert_eq!(native.think, Some(Think::Level(ThinkLevel::High)));

    let none = chat_request(json!({"model": "m", "messages": [], "reasoning": {"effort": "none"}}));
    assert_eq!(convert::chat_request(none).unwrap().think, Some(Think::Enabled(false)));
    let bad = chat_request(json!({"model": "m", "messages": [], "reasoning_effort": "extreme"}));
    assert!(matches!(convert::chat_request(bad), Err(ConvertError::InvalidReasoning(_))));
}

#[test]
fn content_parts_become_messages_with_images() {
    let req: ChatCompletionRequest =
        serde_json::from_str(&fixture("openai/chat_request_vision_data_url.json")).unwrap();
    let native = convert::chat_request(req).unwrap();
    assert_eq!(native.messages.len(), 2, "one native message per part, as Ollama does");
    assert_eq!(native.messages[0].content, "What's in this image?");
    assert!(native.messages[1].images[0].starts_with("iVBORw0KGgo"), "data: prefix stripped");
    assert_eq!(native.options.unwrap().num_predict, Some(300));

    let remote = chat_request(json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": "https://example.com/cat.png"}]}]}));
    assert!(matches!(convert::chat_request(remote), Err(ConvertError::InvalidImage)));
}

#[test]
fn tool_calls_round_trip_between_string_and_object() {
    // Native → OpenAI: the object becomes a JSON string.
    let resp: ChatResponse = serde_json::from_str(&fixture("ollama/chat_response_tools.json")).unwrap();
    let completion = convert::chat_completion("chatcmpl-1", resp.clone());
    let choice = &completion.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    let call = &choice.message.tool_calls[0];
    assert_eq!(call.kind, "function");
    assert!(call.id.starts_with("call-"), "an id is made up for clients to answer with");
    let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
    assert_eq!(args, json!({"format": "celsius", "location": "Paris, FR"}));

    // OpenAI → native: the assistant's call and the tool's answer, named through the id.
    let req = chat_request(json!({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call.id, "content": "22°C"}
    ]}));
    let native = convert::chat_request(req).unwrap();
    let back = &native.messages[1].tool_calls[0];
    assert_eq!(back.function.name, "get_current_weather");
    assert_eq!(Value::Object(back.function.arguments.clone()), args);
    assert_eq!(back.function.arguments, resp.message.tool_calls[0].function.arguments);
    assert_eq!(native.messages[2].tool_name, "get_current_weather");
    assert_eq!(native.messages[2].tool_call_id, call.id);
}

#[test]
fn bad_tool_arguments_are_a_400_in_openais_shape() {
    let req = chat_request(json!({"model": "m", "messages": [{"role": "assistant", "content": "",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}));
    let err = convert::chat_request(req).unwrap_err();
    assert!(matches!(err, ConvertError::InvalidToolArguments(_)));
    let body = serde_json::to_value(err.to_response()).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], Value::Null);
    assert_eq!(body["error"]["code"], Value::Null);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("invalid tool call arguments"));

    let empty = chat_request(json!({"model": "m", "messages": [{"role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]}]}));
    assert!(convert::chat_request(empty).unwrap().messages[0].tool_calls[0].function.arguments.is_empty());

    let no_content = chat_request(json!({"model": "m", "messages": [{"role": "user"}]}));
    assert!(matches!(convert::chat_request(no_content), Err(ConvertError::MissingContent { .. })));
}

#[test]
fn error_types_by_status() {
    let types = [400, 404, 500, 503].map(|s| ErrorResponse::new(s, "x").error.kind);
    assert_eq!(types, ["invalid_request_error", "not_found_error", "api_error", "api_error"]);
}

#[test]
fn chat_stream_chunks() {
    let mut stream = ChatStream::new("chatcmpl-7".into(), 1_700_000_000, true);
    let mut out = Vec::new();
    for c in [chunk("The"), chunk(""), chunk(" sky"), final_chunk()] {
        out.extend(stream.convert(&c));
    }
    // The empty interim chunk produced nothing; the final one two (finish + usage).
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|c| c.id == "chatcmpl-7" && c.created == 1_700_000_000));
    assert!(out.iter().all(|c| c.object == "chat.completion.chunk" && c.system_fingerprint == "fp_ollama"));
    let first = serde_json::to_value(&out[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": "The"}));
    assert_eq!(first["choices"][0]["finish_reason"], Value::Null);
    assert!(first.get("usage").is_none());
    assert_eq!(serde_json::to_value(&out[1]).unwrap()["choices"][0]["delta"], json!({"content": " sky"}));
    let last = serde_json::to_value(&out[2]).unwrap();
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    let usage = serde_json::to_value(&out[3]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], json!({"prompt_tokens": 26, "completion_tokens": 282, "total_tokens": 308}));
}

#[test]
fn chat_stream_without_usage_and_with_tool_calls() {
    let mut stream = ChatStream::new(convert::new_id("chatcmpl"), convert::unix_now(), false);
    let mut call = chunk("");
    call.message.tool_calls = vec![types::ToolCall {
        function: types::ToolCallFunction { name: "f".into(), ..Default::default() },
        ..Default::default()
    }];
    let mut out = stream.convert(&call);
    out.extend(stream.convert(&final_chunk()));
    assert_eq!(out.len(), 2, "no usage chunk unless asked");
    let delta = &out[0].choices[0].delta;
    assert_eq!((delta.role.as_deref(), delta.tool_calls[0].index), (Some("assistant"), Some(0)));
    assert_eq!(delta.tool_calls[0].function.arguments, "{}");
    assert_eq!(out[1].choices[0].finish_reason.as_deref(), Some("tool_calls"));
    assert!(stream.id().starts_with("chatcmpl-"));
}

#[test]
fn non_streamed_chat_completion() {
    let resp: ChatResponse = serde_json::from_str(&fixture("ollama/chat_response_no_stream.json")).unwrap();
    let c = serde_json::to_value(convert::chat_completion("chatcmpl-1", resp)).unwrap();
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["created"], 1_702_390_423);
    assert_eq!(c["choices"][0]["message"], json!({"role": "assistant", "content": "Hello! How are you today?"}));
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["usage"], json!({"prompt_tokens": 26, "completion_tokens": 298, "total_tokens": 324}));
}

#[test]
fn completions() {
    let req: CompletionRequest = serde_json::from_str(&fixture("openai/completion_request.json")).unwrap();
    let native = convert::completion_request(req);
    assert_eq!((native.prompt.as_str(), native.stream), ("Say this is a test", Some(false)));

    let resp: GenerateResponse = serde_json::from_str(&fixture("ollama/generate_response_seed.json")).unwrap();
    let c = serde_json::to_value(convert::completion("cmpl-1", resp.clone())).unwrap();
    assert_eq!(c["object"], "text_completion");
    assert_eq!(c["choices"][0]["text"], resp.response);
    assert_eq!(c["usage"]["total_tokens"], 124);

    let mut stream = CompletionStream::new("cmpl-2".into(), 5, true);
    let chunks: Vec<_> =
        [GenerateResponse { done: false, ..resp.clone() }, GenerateResponse { response: String::new(), ..resp }]
            .iter()
            .flat_map(|r| stream.convert(r))
            .collect();
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[1].choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(chunks[2].choices.is_empty() && chunks[2].usage.is_some());
}

#[test]
fn models() {
    let tags: ListResponse = serde_json::from_str(&fixture("ollama/openapi_tags_response.json")).unwrap();
    let list = serde_json::to_value(convert::model_list(&tags)).unwrap();
    assert_eq!(
        list,
        json!({"object": "list", "data": [
            {"id": "gemma4", "object": "model", "created": 1_759_559_643, "owned_by": "library"}
        ]})
    );
    let show: types::ShowResponse = serde_json::from_str(&fixture("ollama/openapi_show_response.json")).unwrap();
    let model = convert::model("someone/gemma4:latest", &show);
    assert_eq!((model.owned_by.as_str(), model.created), ("someone", 1_755_211_783));
}

#[test]
fn embeddings() {
    let req: EmbeddingRequest = serde_json::from_str(&fixture("openai/embeddings_request.json")).unwrap();
    let native = convert::embed_request(req).unwrap();
    assert_eq!(native.input.as_ref().unwrap().texts().count(), 2);

    let empty: EmbeddingRequest = serde_json::from_value(json!({"model": "m", "input": ""})).unwrap();
    assert_eq!(convert::embed_request(empty).unwrap().input.unwrap().into_vec(), [""]);
    let none: EmbeddingRequest = serde_json::from_value(json!({"model": "m", "input": []})).unwrap();
    assert!(matches!(convert::embed_request(none), Err(ConvertError::EmptyInput)));
    let tokens = serde_json::from_value::<EmbeddingRequest>(json!({"model": "m", "input": [[1, 2]]}));
    assert!(tokens.is_err(), "token arrays are not supported");

    let resp: types::EmbedResponse = serde_json::from_str(&fixture("ollama/embed_response.json")).unwrap();
    let floats =
        serde_json::to_value(convert::embedding_list("all-minilm", resp.clone(), EncodingFormat::Float)).unwrap();
    assert_eq!(floats["data"][0]["object"], "embedding");
    assert_eq!(floats["data"][0]["embedding"].as_array().unwrap().len(), 10);
    assert_eq!(floats["usage"], json!({"prompt_tokens": 8, "total_tokens": 8}));
    let b64 = convert::embedding_list("all-minilm", resp, EncodingFormat::Base64);
    match &b64.data[0].embedding {
        EmbeddingVector::Base64(s) => assert_eq!(s.len(), 56, "40 bytes of f32s"),
        other => panic!("{other:?}"),
    }
}
