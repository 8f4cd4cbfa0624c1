//! A request body that stops at a byte limit while streaming, and remembers that it did so the
//! gateway can answer 413 whatever the upstream made of the truncated body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

#[derive(Debug, thiserror::Error)]
#[error("request body exceeds {0} bytes")]
pub struct TooLarge(u64);

pub struct LimitedBody {
    inner: Body,
    remaining: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl LimitedBody {
    pub fn new(inner: Body, limit: u64) -> (Self, Arc<AtomicBool>) {
        let exceeded = Arc::new(AtomicBool::new(false));
        (Self { inner, remaining: limit, limit, exceeded: exceeded.clone() }, exceeded)
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge(this.limit)))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            other => other.map(|o| o.map(|r| r.map_err(|e| Box::new(e) as axum::BoxError))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn stops_at_the_limit_and_flags_it() {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from(vec![0u8; 600])), Ok(Bytes::from(vec![0u8; 600]))];
        let (body, exceeded) = LimitedBody::new(Body::from_stream(futures::stream::iter(chunks)), 1000);
        assert!(body.collect().await.is_err());
        assert!(exceeded.load(Ordering::Relaxed));

        let (body, exceeded) = LimitedBody::new(Body::from(vec![1u8; 1000]), 1000);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 1000);
        assert!(!exceeded.load(Ordering::Relaxed));
    }
}
