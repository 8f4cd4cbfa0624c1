//! Server-sent events as the OpenAI-compatible endpoints use them: one `data: {json}` frame per
//! chunk, each followed by a blank line, and `data: [DONE]` at the end. The decoder follows the
//! event-stream format (multi-line data, comments, `event:`/`id:` fields) for clients and tests.

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ndjson::LineSplitter;
use crate::openai::ErrorResponse;

pub const CONTENT_TYPE: &str = "text/event-stream";

/// The terminating frame of an OpenAI stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// `data: {json}\n\n`.
pub fn encode<T: Serialize>(item: &T) -> Result<Bytes, serde_json::Error> {
    let mut buf = b"data: ".to_vec();
    serde_json::to_writer(&mut buf, item)?;
    buf.extend_from_slice(b"\n\n");
    Ok(Bytes::from(buf))
}

/// `data: [DONE]\n\n`.
pub fn done() -> Bytes {
    Bytes::from_static(DONE)
}

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// `event:` field; `None` means the default type, `message`.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    pub id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError<E> {
    #[error("stream broke off: {0}")]
    Body(E),
    #[error("event is not UTF-8")]
    NotUtf8,
    #[error("undecodable event data: {0}")]
    Json(#[source] serde_json::Error),
    /// The server sent an OpenAI error object instead of a chunk.
    #[error("{0}")]
    Remote(String),
    #[error("line longer than {} bytes", crate::ndjson::MAX_LINE)]
    LineTooLong,
}

/// Builds events from lines (without their line terminators).
#[derive(Debug, Default)]
struct EventBuilder {
    current: Event,
    has_data: bool,
}

impl EventBuilder {
    /// Feeds one line; a blank line dispatches the event gathered so far, if it has data.
    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let has_data = std::mem::take(&mut self.has_data);
            let event = std::mem::take(&mut self.current);
            return has_data.then_some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = Some(value.to_owned()),
            "id" => self.current.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// Turns a byte stream into events. An event still open when the stream ends is dropped, as the
/// format requires. Ends after the first error.
pub fn decode_events<S, B, E>(body: S) -> impl Stream<Item = Result<Event, DecodeError<E>>> + Send + 'static
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: Buf + Send,
    E: Send + 'static,
{
    let state = (Box::pin(body), LineSplitter::default(), EventBuilder::default(), false);
    futures::stream::unfold(state, |(mut body, mut lines, mut builder, done)| async move {
        if done {
            return None;
        }
        loop {
            while let Some(line) = lines.next_raw_line() {
                let Ok(line) = std::str::from_utf8(&line) else {
                    return Some((Err(DecodeError::NotUtf8), (body, lines, builder, true)));
                };
                if let Some(event) = builder.line(line) {
                    return Some((Ok(event), (body, lines, builder, false)));
                }
            }
            if lines.pending() > crate::ndjson::MAX_LINE {
                return Some((Err(DecodeError::LineTooLong), (body, lines, builder, true)));
            }
            lines.mark_scanned();
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    while chunk.has_remaining() {
                        let n = chunk.chunk().len();
                        lines.push(chunk.chunk());
                        chunk.advance(n);
                    }
                }
                Some(Err(e)) => return Some((Err(DecodeError::Body(e)), (body, lines, builder, true))),
                None => return None,
            }
        }
    })
}

/// Decodes `data:` frames as `T` until `data: [DONE]`. A frame holding an OpenAI error object
/// (`{"error": {"message": …}}`) becomes [`DecodeError::Remote`].
pub fn decode_json<T, S, B, E>(body: S) -> impl Stream<Item = Result<T, DecodeError<E>>> + Send + 'static
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: Buf + Send,
    E: Send + 'static,
{
    decode_events(body).take_while(|event| futures::future::ready(!matches!(event, Ok(e) if e.data == "[DONE]"))).map(
        |event| {
            let event = event?;
            serde_json::from_str(&event.data).map_err(|e| match serde_json::from_str::<ErrorResponse>(&event.data) {
                Ok(err) => DecodeError::Remote(err.error.message),
                Err(_) => DecodeError::Json(e),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &str) -> Vec<Event> {
        let mut b = EventBuilder::default();
        input.split('\n').filter_map(|l| b.line(l.strip_suffix('\r').unwrap_or(l))).collect()
    }

    #[test]
    fn frames() {
        assert_eq!(&encode(&serde_json::json!({"a": 1})).unwrap()[..], b"data: {\"a\":1}\n\n");
        assert_eq!(&done()[..], b"data: [DONE]\n\n");
    }

    #[test]
    fn event_fields() {
        let got = events(": comment\nevent: delta\nid: 7\ndata: a\ndata:b\n\ndata: [DONE]\n\n");
        assert_eq!(got[0], Event { event: Some("delta".into()), data: "a\nb".into(), id: Some("7".into()) });
        assert_eq!(got[1].data, "[DONE]");
        // Events without data are not dispatched; an unterminated event is not either.
        assert_eq!(events("event: ping\n\ndata: x").len(), 0);
    }
}
