//! Newline-delimited JSON, Ollama's streaming format: one compact JSON object per line, no
//! framing and no terminator (the last object has `"done": true`, or `"status": "success"` for
//! pull and create). An error after the first byte arrives as one last `{"error": "…"}` line.

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::ErrorResponse;

pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// Longest line accepted. Chat and progress lines are small; this only stops a peer that never
/// sends a newline from growing the buffer without bound.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError<E> {
    /// The byte stream itself failed (connection reset, body error).
    #[error("stream broke off: {0}")]
    Body(E),
    /// A line that is not the expected JSON object.
    #[error("undecodable line: {source}")]
    Json {
        #[source]
        source: serde_json::Error,
        /// The line (cut to 200 bytes) for the log.
        line: String,
    },
    /// The server reported an error mid-stream (`{"error": "…"}`).
    #[error("{0}")]
    Remote(String),
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// One object as an NDJSON line: its compact JSON followed by `\n`.
pub fn encode<T: Serialize>(item: &T) -> Result<Bytes, serde_json::Error> {
    let mut buf = serde_json::to_vec(item)?;
    buf.push(b'\n');
    Ok(Bytes::from(buf))
}

/// Splits bytes into lines, whatever the chunking: a line may span chunks and a chunk may hold
/// several lines. Blank lines are skipped and a trailing `\r` is dropped.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    buf: BytesMut,
    /// How far `buf` is known to hold no newline, so each byte is scanned once.
    scanned: usize,
}

impl LineSplitter {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete non-blank line, if the buffer holds one.
    pub fn next_line(&mut self) -> Option<Bytes> {
        loop {
            let line = self.next_raw_line()?;
            if !is_blank(&line) {
                return Some(line);
            }
        }
    }

    /// The next complete line, blank or not, without its `\n` or `\r\n`.
    pub fn next_raw_line(&mut self) -> Option<Bytes> {
        let at = self.buf[self.scanned..].iter().position(|&b| b == b'\n')?;
        let mut line = self.buf.split_to(self.scanned + at + 1).freeze();
        self.scanned = 0;
        line.truncate(line.len() - 1);
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        Some(line)
    }

    /// At end of input: what is left after the last newline, if anything.
    pub fn finish(&mut self) -> Option<Bytes> {
        let mut rest = self.buf.split().freeze();
        self.scanned = 0;
        if rest.last() == Some(&b'\r') {
            rest.truncate(rest.len() - 1);
        }
        (!is_blank(&rest)).then_some(rest)
    }

    /// Bytes held that are not yet a complete line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Call when [`next_raw_line`](Self::next_raw_line) found nothing: the held bytes need not
    /// be scanned again when more arrive.
    pub fn mark_scanned(&mut self) {
        self.scanned = self.buf.len();
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Parses one line as `T`; a line that is not a `T` but is `{"error": "…"}` is the server's
/// mid-stream error.
pub fn decode_line<T: DeserializeOwned, E>(line: &[u8]) -> Result<T, DecodeError<E>> {
    serde_json::from_slice(line).map_err(|source| match serde_json::from_slice::<ErrorResponse>(line) {
        Ok(e) => DecodeError::Remote(e.error),
        Err(_) => DecodeError::Json { source, line: excerpt(line) },
    })
}

fn excerpt(line: &[u8]) -> String {
    let cut = &line[..line.len().min(200)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Turns a byte stream into a stream of `T`. The stream ends after the first error item, since
/// nothing after a broken or failed line can be trusted. Dropping it drops `body`.
pub fn decode<T, S, B, E>(body: S) -> impl Stream<Item = Result<T, DecodeError<E>>> + Send + 'static
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: Buf + Send,
    E: Send + 'static,
{
    let state = State { body: Box::pin(body), lines: LineSplitter::default(), done: false };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let item = st.next_item().await?;
        st.done = item.is_err();
        Some((item, st))
    })
}

struct State<S> {
    body: std::pin::Pin<Box<S>>,
    lines: LineSplitter,
    done: bool,
}

impl<S, B, E> State<S>
where
    S: Stream<Item = Result<B, E>>,
    B: Buf,
{
    async fn next_item<T: DeserializeOwned>(&mut self) -> Option<Result<T, DecodeError<E>>> {
        loop {
            if let Some(line) = self.lines.next_line() {
                return Some(decode_line(&line));
            }
            if self.lines.pending() > MAX_LINE {
                return Some(Err(DecodeError::LineTooLong));
            }
            self.lines.mark_scanned();
            match self.body.next().await {
                Some(Ok(mut chunk)) => {
                    while chunk.has_remaining() {
                        let part = chunk.chunk();
                        let n = part.len();
                        self.lines.push(part);
                        chunk.advance(n);
                    }
                }
                Some(Err(e)) => return Some(Err(DecodeError::Body(e))),
                None => return self.lines.finish().map(|line| decode_line(&line)),
            }
        }
    }
}
