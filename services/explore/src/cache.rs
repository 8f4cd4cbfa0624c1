//! Cached answers: the JSON body and its ETag under a key that names the catalog generation, the
//! caller's visibility and the request, so that a change to the catalog or a caller with other
//! roles never reads another's answer.

use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use kit::cache::Cache;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Bounds how long an answer may outlive a catalog event this instance missed (the bus was down)
/// and how stale "most used" may be.
const TTL: Duration = Duration::from_secs(300);

/// A cached answer.
#[derive(Clone)]
pub struct Answer {
    /// A strong ETag (quoted).
    pub etag: String,
    pub body: Bytes,
}

impl Answer {
    pub fn new(body: Bytes) -> Self {
        let digest = Sha256::digest(&body);
        Self { etag: format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16])), body }
    }

    /// The ETag, a newline, the body.
    fn encode(&self) -> Bytes {
        let mut raw = Vec::with_capacity(self.etag.len() + 1 + self.body.len());
        raw.extend_from_slice(self.etag.as_bytes());
        raw.push(b'\n');
        raw.extend_from_slice(&self.body);
        raw.into()
    }

    fn decode(raw: Bytes) -> Option<Self> {
        let at = raw.iter().position(|b| *b == b'\n')?;
        let etag = std::str::from_utf8(&raw[..at]).ok()?.to_owned();
        Some(Self { etag, body: raw.slice(at + 1..) })
    }
}

pub struct Answers {
    cache: Cache,
    /// Moves on with every catalog event; a fresh instance starts with a generation of its own,
    /// which no stale entry can have.
    generation: ArcSwap<Uuid>,
}

impl Answers {
    pub fn new(cache: Cache) -> Self {
        Self { cache, generation: ArcSwap::from_pointee(Uuid::now_v7()) }
    }

    /// The catalog changed (`event` is the change's event id, the same on every instance, so that
    /// instances sharing Redis share entries again once they have all seen it).
    pub fn invalidate(&self, event: Uuid) {
        self.generation.store(std::sync::Arc::new(event));
    }

    fn key(&self, request: &str) -> String {
        format!("explore:{}:{request}", self.generation.load())
    }

    /// The answer to `request` (a key naming the visibility and the request), computed by
    /// `compute` on a miss. The generation is read before computing: an event that arrives
    /// meanwhile makes the stored answer unreachable rather than stale.
    pub async fn get_or_compute<E>(
        &self,
        request: &str,
        compute: impl AsyncFnOnce() -> Result<Bytes, E>,
    ) -> Result<Answer, E> {
        let key = self.key(request);
        if let Some(hit) = self.cache.get(&key).await.and_then(Answer::decode) {
            metrics::counter!("explore_cache_total", "result" => "hit").increment(1);
            return Ok(hit);
        }
        metrics::counter!("explore_cache_total", "result" => "miss").increment(1);
        let answer = Answer::new(compute().await?);
        self.cache.set(&key, answer.encode(), TTL).await;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_makes_earlier_answers_unreachable() {
        let answers = Answers::new(Cache::memory(100));
        let body = |s: &'static str| async move { Ok::<_, ()>(Bytes::from(s)) };
        let first = answers.get_or_compute("q", || body("one")).await.unwrap();
        let cached = answers.get_or_compute("q", || body("two")).await.unwrap();
        assert_eq!((first.body.clone(), cached.body), (Bytes::from("one"), Bytes::from("one")));
        answers.invalidate(Uuid::now_v7());
        let fresh = answers.get_or_compute("q", || body("two")).await.unwrap();
        assert_eq!(fresh.body, Bytes::from("two"));
        assert_ne!(fresh.etag, first.etag);
    }
}
