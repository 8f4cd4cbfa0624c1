//! Sending one request to the best node for its model, and streaming the answer back.
//!
//! The request is tried on the best candidate; if that node cannot be reached or says it is busy
//! before it has answered, once more on the next. Once a node has answered, the answer — success
//! or error — is the client's: nothing is retried after bytes have flowed. The answer's body is
//! passed through unbuffered; a guard travelling with it holds the admission slot and the node's
//! in-flight count, measures time to first token, and reads the final counters from the last
//! line for the usage record. Dropping the body (the client went away) drops the node's body, so
//! the engine stops generating.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures::Stream;
use http::{Method, Request, Response, StatusCode, header};
use http_body::Body as _;
use kit::authn::Identity;
use ollama_api::types::Metrics;
use serde::Deserialize;

use crate::admission::Permit;
use crate::fleet::{InFlight, Node};
use crate::usage::{Usage, UsageSink};

/// How much of the end of a stream is kept to read its final line.
const TAIL: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("model {0:?} not found, try pulling it first")]
    NoNode(String),
    #[error("no engine could take the request: {0}")]
    Unavailable(String),
    #[error("the engine did not start answering in time")]
    Timeout,
}

/// A request for one model, ready to send to any node.
pub struct Job {
    pub path: &'static str,
    pub model: String,
    pub body: Bytes,
    pub identity: Identity,
    /// Which public face it came through, for the usage record.
    pub face: &'static str,
}

/// A node's answer with everything that must live as long as its body.
pub struct Relayed {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: RelayedBody,
}

pub async fn send(
    candidates: Vec<Arc<Node>>,
    job: Job,
    permit: Option<Permit>,
    first_byte_timeout: Duration,
    usage: UsageSink,
) -> Result<Relayed, RelayError> {
    if candidates.is_empty() {
        return Err(RelayError::NoNode(job.model));
    }
    let started = Instant::now();
    let mut last_error = String::new();
    for node in candidates.iter().take(2) {
        let in_flight = node.start();
        let req = Request::builder()
            .method(Method::POST)
            .uri(job.path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(job.body.clone()))
            .expect("static request parts are valid");
        let answer = match tokio::time::timeout(first_byte_timeout, node.upstream.call(req)).await {
            Err(_) => return Err(RelayError::Timeout),
            Ok(Err(e)) => {
                // Not reached, or failed before answering: the next node may serve it.
                node.failed(&e.to_string());
                last_error = e.to_string();
                continue;
            }
            Ok(Ok(res)) => res,
        };
        node.succeeded();
        if answer.status() == StatusCode::SERVICE_UNAVAILABLE {
            last_error = format!("{} is busy", node.id);
            continue;
        }
        let (parts, body) = answer.into_parts();
        let meter = Meter {
            started,
            first_at: None,
            tail: Vec::new(),
            record: (parts.status == StatusCode::OK).then(|| Usage::new(&job, &node.id)),
            sink: usage.clone(),
        };
        return Ok(Relayed {
            status: parts.status,
            headers: parts.headers,
            body: RelayedBody { inner: body, meter, _permit: permit, _in_flight: in_flight },
        });
    }
    Err(RelayError::Unavailable(last_error))
}

/// A node's body passing through, with its guards.
pub struct RelayedBody {
    inner: Body,
    meter: Meter,
    _permit: Option<Permit>,
    _in_flight: InFlight,
}

struct Meter {
    started: Instant,
    first_at: Option<Instant>,
    tail: Vec<u8>,
    record: Option<Usage>,
    sink: UsageSink,
}

#[derive(Deserialize)]
struct FinalLine {
    #[serde(default)]
    done: bool,
    #[serde(flatten)]
    metrics: Metrics,
}

impl Meter {
    fn saw(&mut self, chunk: &Bytes) {
        if self.first_at.is_none() && !chunk.is_empty() {
            self.first_at = Some(Instant::now());
        }
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > 2 * TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
    }

    /// The counters of the stream's last line, if it is a final (`done: true`) one.
    fn final_metrics(&self) -> Option<Metrics> {
        let text = std::str::from_utf8(&self.tail).ok()?;
        let last = text.trim_end().rsplit('\n').next()?;
        let line: FinalLine = serde_json::from_str(last).ok()?;
        line.done.then_some(line.metrics)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.finish(self.final_metrics(), self.first_at.map(|at| at - self.started), self.started.elapsed());
            self.sink.record(record);
        }
    }
}

impl RelayedBody {
    /// The body as a stream of bytes (for the OpenAI face, which re-frames it).
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, axum::Error>> + Send + 'static {
        self
    }

    pub fn into_body(self) -> Body {
        Body::from_stream(self)
    }
}

impl Stream for RelayedBody {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let this = &mut *self;
            return match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.meter.saw(&data);
                        Poll::Ready(Some(Ok(data)))
                    }
                    // Trailers carry nothing for these APIs.
                    Err(_) => continue,
                },
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

/// A node's status as the platform answers it: a node's own failure (500, 501, …) is the
/// platform's 502, since something outside the platform failed; 502, 503 and 504 stay.
pub fn gateway_status(node: StatusCode) -> StatusCode {
    match node {
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => node,
        s if s.is_server_error() => StatusCode::BAD_GATEWAY,
        s => s,
    }
}

/// The response a relayed answer becomes on the Ollama face: what the node sent (a 5xx of its
/// own as 502, see [`gateway_status`]).
pub fn passthrough(relayed: Relayed) -> Response<Body> {
    let mut res = Response::new(relayed.body.into_body());
    *res.status_mut() = gateway_status(relayed.status);
    if let Some(ct) = relayed.headers.get(header::CONTENT_TYPE) {
        res.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_own_failure_is_a_bad_gateway() {
        let cases = [
            (StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY),
            (StatusCode::NOT_IMPLEMENTED, StatusCode::BAD_GATEWAY),
            (StatusCode::BAD_GATEWAY, StatusCode::BAD_GATEWAY),
            (StatusCode::SERVICE_UNAVAILABLE, StatusCode::SERVICE_UNAVAILABLE),
            (StatusCode::GATEWAY_TIMEOUT, StatusCode::GATEWAY_TIMEOUT),
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
            (StatusCode::OK, StatusCode::OK),
        ];
        for (node, platform) in cases {
            assert_eq!(gateway_status(node), platform, "{node}");
        }
    }
}
