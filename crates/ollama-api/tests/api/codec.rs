//! NDJSON and SSE under any chunking.

use std::convert::Infallible;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use ollama_api::ndjson::{self, DecodeError};
use ollama_api::openai::ChatCompletionChunk;
use ollama_api::sse;
use ollama_api::types::{GenerateResponse, ProgressResponse};
use proptest::prelude::*;
use serde_json::Value;

use crate::helpers::{fixture, normalize};

/// The items of a stream, waited for on this thread.
fn blocking<S: Stream>(s: S) -> impl Iterator<Item = S::Item> {
    futures::executor::block_on_stream(Box::pin(s))
}

/// `data` cut at `cuts` (positions, in any order, possibly repeated).
fn chunks(data: &[u8], cuts: &[usize]) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut parts = Vec::new();
    let mut last = 0;
    for c in cuts.into_iter().chain([data.len()]) {
        parts.push(Ok(Bytes::copy_from_slice(&data[last..c])));
        last = c;
    }
    futures::stream::iter(parts)
}

fn decode_all<T: serde::de::DeserializeOwned + Send + 'static>(
    data: &[u8],
    cuts: &[usize],
) -> Vec<Result<T, DecodeError<Infallible>>> {
    blocking(ndjson::decode::<T, _, _, _>(chunks(data, cuts))).collect()
}

#[test]
fn decodes_a_documented_stream() {
    let items: Vec<GenerateResponse> =
        decode_all(fixture("ollama/generate_stream.ndjson").as_bytes(), &[]).into_iter().map(Result::unwrap).collect();
    assert_eq!(items.len(), 7);
    let text: String = items.iter().map(|c| c.response.as_str()).collect();
    assert_eq!(text, "That's a fantastic question!");
    assert!(items[..6].iter().all(|c| !c.done));
    assert_eq!((items[6].done, items[6].done_reason.as_str()), (true, "stop"));
}

#[test]
fn a_mid_stream_error_line_is_an_error_item_and_ends_the_stream() {
    let items = decode_all::<GenerateResponse>(fixture("ollama/generate_stream_error.ndjson").as_bytes(), &[17, 200]);
    assert_eq!(items.len(), 5);
    assert!(items[..4].iter().all(Result::is_ok));
    match &items[4] {
        Err(DecodeError::Remote(m)) => assert_eq!(m, "an error was encountered while running the model"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn progress_lines_encode_back_byte_for_byte() {
    for name in ["ollama/pull_stream.ndjson", "ollama/create_stream.ndjson"] {
        let text = fixture(name);
        let items: Vec<ProgressResponse> =
            decode_all(text.as_bytes(), &[3, 40, 41, 500]).into_iter().map(Result::unwrap).collect();
        assert!(items.last().unwrap().is_success());
        let encoded: Vec<u8> = items.iter().flat_map(|i| ndjson::encode(i).unwrap().to_vec()).collect();
        assert_eq!(String::from_utf8(encoded).unwrap(), text, "{name}");
    }
}

#[test]
fn tolerates_crlf_blank_lines_and_a_missing_final_newline() {
    let data = b"{\"status\":\"a\"}\r\n\n  \n{\"status\":\"success\"}";
    let items: Vec<ProgressResponse> = decode_all(data, &[]).into_iter().map(Result::unwrap).collect();
    assert_eq!(items.iter().map(|i| i.status.as_str()).collect::<Vec<_>>(), ["a", "success"]);
}

#[test]
fn garbage_is_a_decode_error_with_the_line() {
    let items = decode_all::<ProgressResponse>(b"{\"status\":\"a\"}\nnot json\n{\"status\":\"b\"}\n", &[]);
    assert_eq!(items.len(), 2, "the stream ends at the bad line");
    assert!(matches!(&items[1], Err(DecodeError::Json { line, .. }) if line == "not json"));
}

#[test]
fn a_body_error_is_an_item() {
    let body = futures::stream::iter([Ok(Bytes::from_static(b"{\"status\":\"a\"}\n{\"sta")), Err("reset")]);
    let items: Vec<_> = blocking(ndjson::decode::<ProgressResponse, _, _, _>(body)).collect();
    assert!(items[0].is_ok());
    assert!(matches!(items[1], Err(DecodeError::Body("reset"))));
}

#[test]
fn encoder_writes_one_line() {
    let line = ndjson::encode(&ProgressResponse::status("success")).unwrap();
    assert_eq!(&line[..], b"{\"status\":\"success\"}\n");
    assert_eq!(ndjson::CONTENT_TYPE, "application/x-ndjson");
    assert_eq!(sse::CONTENT_TYPE, "text/event-stream");
}

proptest! {
    #[test]
    fn ndjson_split_anywhere_decodes_the_same(cuts in proptest::collection::vec(any::<usize>(), 0..40)) {
        let text = fixture("ollama/generate_stream.ndjson");
        let whole: Vec<Value> = decode_all::<Value>(text.as_bytes(), &[]).into_iter().map(Result::unwrap).collect();
        let split: Vec<Value> = decode_all::<Value>(text.as_bytes(), &cuts).into_iter().map(Result::unwrap).collect();
        prop_assert_eq!(whole.len(), 7);
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn sse_split_anywhere_decodes_the_same(cuts in proptest::collection::vec(any::<usize>(), 0..40)) {
        let frames = sse_frames();
        let items: Vec<ChatCompletionChunk> =
            blocking(sse::decode_json::<ChatCompletionChunk, _, _, _>(chunks(&frames, &cuts)))
                .map(Result::unwrap)
                .collect();
        prop_assert_eq!(items.len(), 3);
        prop_assert_eq!(items[0].choices[0].delta.content.as_deref(), Some("Hel"));
        prop_assert_eq!(items[2].choices[0].finish_reason.as_deref(), Some("stop"));
    }
}

/// Three chunks framed as Ollama frames them, with the terminator and a trailing comment.
fn sse_frames() -> Vec<u8> {
    let chunk = |content: &str, finish: Value| {
        serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
        })
    };
    let mut out = Vec::new();
    for c in [chunk("Hel", Value::Null), chunk("lo", Value::Null), chunk("", "stop".into())] {
        out.extend_from_slice(&sse::encode(&c).unwrap());
    }
    out.extend_from_slice(sse::DONE);
    out.extend_from_slice(b": after the end\n\n");
    out
}

#[test]
fn sse_decoder_stops_at_done_and_reports_error_objects() {
    let items: Vec<_> =
        blocking(sse::decode_json::<ChatCompletionChunk, _, _, _>(chunks(&sse_frames(), &[]))).collect();
    assert_eq!(items.len(), 3);

    let err = b"data: {\"error\":{\"message\":\"model not found\",\"type\":\"not_found_error\",\"param\":null,\"code\":null}}\n\n";
    let items: Vec<_> = blocking(sse::decode_json::<ChatCompletionChunk, _, _, _>(chunks(err, &[5]))).collect();
    assert!(matches!(&items[0], Err(sse::DecodeError::Remote(m)) if m == "model not found"));
}

#[test]
fn sse_events_across_crlf() {
    let data = b"event: x\r\ndata: one\r\ndata: two\r\n\r\n";
    let events: Vec<_> = blocking(sse::decode_events(chunks(data, &[9, 10]))).map(Result::unwrap).collect();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].event.as_deref(), events[0].data.as_str()), (Some("x"), "one\ntwo"));
}

#[test]
fn decoded_items_match_the_fixture_values() {
    // Each decoded line equals the line parsed on its own (no field lost or invented).
    let text = fixture("ollama/generate_stream.ndjson");
    let items = decode_all::<GenerateResponse>(text.as_bytes(), &[100]);
    for (item, line) in items.into_iter().zip(text.lines()) {
        let written = normalize(serde_json::to_value(item.unwrap()).unwrap());
        assert_eq!(written, normalize(serde_json::from_str(line).unwrap()));
    }
}

#[test]
fn streams_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let s = ndjson::decode::<Value, _, _, _>(futures::stream::empty::<Result<Bytes, Infallible>>());
    is_send(&s);
    drop(s.boxed());
}
