//! Every request and response example of Ollama's API documentation (fixtures/README.md says
//! where each comes from) parses into the crate's types and is written back as it was, or as the
//! server writes it where the example is out of date.

use ollama_api::types::*;
use serde_json::json;

use crate::helpers::{golden, golden_adjusted, remove, set};

#[test]
fn generate() {
    for name in [
        "generate_request_stream",
        "generate_request_no_stream",
        "generate_request_suffix",
        "generate_request_structured",
        "generate_request_json_mode",
        "generate_request_images",
        "generate_request_raw",
        "generate_request_seed",
        "generate_request_options",
        "generate_request_load",
        "generate_request_unload",
        "openapi_generate_request_options",
    ] {
        golden::<GenerateRequest>(&format!("ollama/{name}.json"));
    }
    for name in [
        "generate_stream_chunk",
        "generate_stream_final",
        "generate_response_no_stream",
        "generate_response_structured",
        "generate_response_images",
        "generate_response_seed",
        "generate_response_load",
        "generate_response_unload",
        "openapi_generate_response",
    ] {
        golden::<GenerateResponse>(&format!("ollama/{name}.json"));
    }
}

#[test]
fn generate_fields_have_ollamas_units() {
    let chunk: GenerateResponse =
        serde_json::from_str(&crate::helpers::fixture("ollama/generate_stream_chunk.json")).unwrap();
    assert_eq!(chunk.created_at.offset().whole_hours(), -7);
    assert_eq!(chunk.created_at.nanosecond(), 385_406_455);
    let last: GenerateResponse =
        serde_json::from_str(&crate::helpers::fixture("ollama/generate_stream_final.json")).unwrap();
    assert!(last.done);
    assert_eq!(last.metrics.total_duration, Some(10_706_818_083));
    assert_eq!(last.metrics.eval_count, Some(259));
    assert_eq!(last.context, [1, 2, 3]);

    let options: GenerateRequest =
        serde_json::from_str(&crate::helpers::fixture("ollama/generate_request_options.json")).unwrap();
    let o = options.options.clone().unwrap();
    assert_eq!((o.num_ctx, o.num_predict, o.use_mmap), (Some(1024), Some(100), Some(true)));
    assert_eq!(o.stop.unwrap(), ["\n", "user:"]);
    assert!(o.extra.is_empty(), "every documented option is typed: {:?}", o.extra);
    assert!(!options.is_streaming());

    let unload: GenerateRequest =
        serde_json::from_str(&crate::helpers::fixture("ollama/generate_request_unload.json")).unwrap();
    assert_eq!(unload.keep_alive.as_ref().unwrap().duration(), Some(std::time::Duration::ZERO));
    assert!(unload.is_streaming(), "absent stream means streaming");
}

#[test]
fn chat() {
    for name in [
        "chat_request_stream",
        "chat_request_no_stream",
        "chat_request_structured",
        "chat_request_history",
        "chat_request_images",
        "chat_request_seed",
        "chat_request_tools",
        "chat_request_load",
        "chat_request_unload",
        "openapi_chat_request_thinking",
    ] {
        golden::<ChatRequest>(&format!("ollama/{name}.json"));
    }
    for name in [
        "chat_response_no_stream",
        "chat_response_structured",
        "chat_response_tools",
        "chat_response_load",
        "chat_response_unload",
        "openapi_chat_response",
    ] {
        golden::<ChatResponse>(&format!("ollama/{name}.json"));
    }
}

#[test]
fn chat_examples_older_than_the_server() {
    // `images` is `omitempty` in Ollama's Message today; the 2023 examples show `"images": null`.
    golden_adjusted::<ChatResponse>("ollama/chat_stream_chunk.json", |e| remove(e, "/message/images"));
    golden_adjusted::<ChatResponse>("ollama/chat_response_images.json", |e| remove(e, "/message/images"));
    // The final chunk's `message` has no `omitempty`, so the server sends an empty one.
    golden_adjusted::<ChatResponse>("ollama/chat_stream_final.json", |e| {
        set(e, "/message", json!({"role": "assistant", "content": ""}))
    });
}

#[test]
fn tool_calls_carry_arguments_as_an_object() {
    let resp: ChatResponse = serde_json::from_str(&crate::helpers::fixture("ollama/chat_response_tools.json")).unwrap();
    let call = &resp.message.tool_calls[0];
    assert_eq!(call.function.name, "get_current_weather");
    assert_eq!(call.function.arguments["location"], "Paris, FR");
    let req: ChatRequest = serde_json::from_str(&crate::helpers::fixture("ollama/chat_request_tools.json")).unwrap();
    assert_eq!(req.tools[0].kind, "function");
    assert_eq!(req.tools[0].function.parameters["required"], json!(["location", "format"]));
}

#[test]
fn thinking_levels() {
    let req: ChatRequest =
        serde_json::from_str(&crate::helpers::fixture("ollama/openapi_chat_request_thinking.json")).unwrap();
    assert_eq!(req.think, Some(Think::Level(ThinkLevel::Low)));
}

#[test]
fn embeddings() {
    for name in [
        "embed_request",
        "embed_request_multiple",
        "openapi_embed_request_dimensions",
        "openapi_embed_request_truncate",
    ] {
        golden::<EmbedRequest>(&format!("ollama/{name}.json"));
    }
    golden::<EmbedResponse>("ollama/embed_response.json");
    golden::<EmbedResponse>("ollama/embed_response_multiple.json");
    golden::<EmbeddingsRequest>("ollama/embeddings_request.json");
    golden::<EmbeddingsResponse>("ollama/embeddings_response.json");

    let many: EmbedRequest =
        serde_json::from_str(&crate::helpers::fixture("ollama/embed_request_multiple.json")).unwrap();
    assert_eq!(many.input.unwrap().texts().count(), 2);
}

#[test]
fn model_management() {
    golden::<ShowRequest>("ollama/show_request.json");
    golden::<ShowRequest>("ollama/openapi_show_request_verbose.json");
    golden::<ShowResponse>("ollama/show_response.json");
    golden::<ShowResponse>("ollama/openapi_show_response.json");
    golden::<PsResponse>("ollama/ps_response.json");
    golden::<PsResponse>("ollama/openapi_ps_response.json");
    golden::<PullRequest>("ollama/pull_request.json");
    golden::<PullRequest>("ollama/openapi_pull_request_no_stream.json");
    golden::<ProgressResponse>("ollama/pull_progress_downloading.json");
    golden::<ProgressResponse>("ollama/pull_response_no_stream.json");
    golden::<CreateRequest>("ollama/openapi_create_request.json");
    golden::<CreateRequest>("ollama/openapi_create_request_quantize.json");
    golden::<CopyRequest>("ollama/copy_request.json");
    golden::<CopyRequest>("ollama/openapi_copy_request.json");
    golden::<DeleteRequest>("ollama/delete_request.json");
    golden::<VersionResponse>("ollama/openapi_version_response.json");
    golden::<ErrorResponse>("ollama/error_response.json");
}

#[test]
fn model_examples_older_than_the_server() {
    // `parent_model` has no `omitempty` in ModelDetails, nor `model` in the list entry; the
    // examples leave them out, the server sends them.
    golden_adjusted::<ListResponse>("ollama/tags_response.json", |e| {
        for i in 0..2 {
            set(e, &format!("/models/{i}/model"), json!(""));
            set(e, &format!("/models/{i}/details/parent_model"), json!(""));
        }
    });
    golden_adjusted::<ListResponse>("ollama/openapi_tags_response.json", |e| {
        set(e, "/models/0/details/parent_model", json!(""))
    });
}

#[test]
fn model_details_are_typed() {
    let show: ShowResponse =
        serde_json::from_str(&crate::helpers::fixture("ollama/openapi_show_response.json")).unwrap();
    assert_eq!(show.capabilities, [Capability::Completion, Capability::Vision]);
    assert_eq!(show.model_info["gemma4.context_length"], 131072);
    assert!(show.model_info["tokenizer.ggml.tokens"].is_null(), "left out without verbose");
    assert!(show.modified_at.is_some());
    let ps: PsResponse = serde_json::from_str(&crate::helpers::fixture("ollama/openapi_ps_response.json")).unwrap();
    let m = &ps.models[0];
    assert!(m.size_vram < m.size, "part of this model runs on the CPU");
    assert_eq!(m.context_length, Some(4096));
    let tags: ListResponse = serde_json::from_str(&crate::helpers::fixture("ollama/tags_response.json")).unwrap();
    assert_eq!(tags.models[0].details.families, None);
    assert_eq!(tags.models[0].size, 7_365_960_935);
}

#[test]
fn requests_ignore_unknown_fields() {
    let req: ChatRequest =
        serde_json::from_str(r#"{"model":"m","messages":[],"user":"x","tool_choice":"auto","stream":false}"#).unwrap();
    assert_eq!(req.stream, Some(false));
    let req: GenerateRequest = serde_json::from_str(r#"{"model":"m","prompt":"p","frobnicate":{"a":1}}"#).unwrap();
    assert_eq!(req.prompt, "p");
}

#[test]
fn requests_as_ollamas_go_client_sends_them() {
    // The Go client writes every field without `omitempty`: empty strings and null options.
    let req: GenerateRequest = serde_json::from_str(
        r#"{"model":"m","prompt":"hi","suffix":"","system":"","template":"","options":null,"format":null,"images":null}"#,
    )
    .unwrap();
    assert_eq!((req.options, req.format, req.images.len()), (None, None, 0));
    let req: DeleteRequest = serde_json::from_str(r#"{"model":"","name":"old:7b"}"#).unwrap();
    assert_eq!(req.model, "old:7b");
}
