//! A key-value cache: Redis when configured (shared by every instance), otherwise in memory.
//!
//! The cache is never a source of truth. Every failure degrades to a miss and is logged; a
//! circuit breaker keeps a dead Redis from adding latency to every request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::Expiry;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::resilience::CircuitBreaker;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis url is invalid: {0}")]
    InvalidUrl(RedisError),
    #[error("cache unavailable (circuit open)")]
    CircuitOpen,
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
}

#[derive(Clone)]
pub struct Cache {
    backend: Arc<Backend>,
}

enum Backend {
    Memory(moka::future::Cache<String, Entry>),
    Redis(Redis),
}

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: std::time::Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: std::time::Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A Redis connection behind a circuit breaker, with every key under one prefix.
pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
    breaker: CircuitBreaker,
}

impl Redis {
    pub fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Runs one Redis operation unless the breaker is open, and feeds its outcome to the breaker.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if !self.breaker.allow() {
            return Err(CacheError::CircuitOpen);
        }
        match op(self.conn.clone()).await {
            Ok(v) => {
                self.breaker.record_success();
                Ok(v)
            }
            Err(e) => {
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
                    self.breaker.record_failure();
                }
                Err(e.into())
            }
        }
    }
}

impl Cache {
    pub fn memory(max_entries: u64) -> Self {
        let cache = moka::future::Cache::builder().max_capacity(max_entries).expire_after(PerEntryTtl).build();
        Self { backend: Arc::new(Backend::Memory(cache)) }
    }

    /// A Redis-backed cache. Connects lazily: a Redis that is down at start-up makes the cache
    /// degrade to misses until it comes up, rather than failing the service.
    pub fn redis(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(CacheError::InvalidUrl)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(CacheError::InvalidUrl)?;
        let breaker = CircuitBreaker::new(3, Duration::from_secs(2));
        Ok(Self { backend: Arc::new(Backend::Redis(Redis { conn, prefix: prefix.to_owned(), breaker })) })
    }

    /// The Redis connection when this cache is Redis-backed, for atomic scripts (rate limits).
    pub fn redis_backend(&self) -> Option<&Redis> {
        match &*self.backend {
            Backend::Redis(r) => Some(r),
            Backend::Memory(_) => None,
        }
    }

    /// True when other processes see the same entries (Redis).
    pub fn is_shared(&self) -> bool {
        self.redis_backend().is_some()
    }

    pub async fn get(&self, key: &str) -> Option<Bytes> {
        match &*self.backend {
            Backend::Memory(c) => c.get(key).await.map(|e| e.value),
            Backend::Redis(r) => {
                let k = r.key(key);
                let res: Result<Option<Vec<u8>>, _> = r.run(|mut c| async move { c.get(k).await }).await;
                degrade(key, "get", res).flatten().map(Bytes::from)
            }
        }
    }

    pub async fn set(&self, key: &str, value: impl Into<Bytes>, ttl: Duration) {
        let value = value.into();
        match &*self.backend {
            Backend::Memory(c) => c.insert(key.to_owned(), Entry { value, ttl }).await,
            Backend::Redis(r) => {
                let k = r.key(key);
                let ms = ttl.as_millis().max(1) as u64;
                let res: Result<(), _> = r.run(|mut c| async move { c.pset_ex(k, value.as_ref(), ms).await }).await;
                degrade(key, "set", res);
            }
        }
    }

    pub async fn delete(&self, key: &str) {
        match &*self.backend {
            Backend::Memory(c) => c.invalidate(key).await,
            Backend::Redis(r) => {
                let k = r.key(key);
                let res: Result<(), _> = r.run(|mut c| async move { c.del(k).await }).await;
                degrade(key, "delete", res);
            }
        }
    }

    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let raw = self.get(key).await?;
        match serde_json::from_slice(&raw) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(key, error = %e, "discarding undecodable cache entry");
                None
            }
        }
    }

    pub async fn set_json<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        match serde_json::to_vec(value) {
            Ok(raw) => self.set(key, raw, ttl).await,
            Err(e) => tracing::warn!(key, error = %e, "value not cached: it does not serialize"),
        }
    }

    /// Checks that the backend answers; for readiness reports.
    pub async fn ping(&self) -> Result<(), CacheError> {
        match &*self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(r) => r.run(|mut c| async move { redis::cmd("PING").query_async::<()>(&mut c).await }).await,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match &*self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }
}

fn degrade<T>(key: &str, op: &str, res: Result<T, CacheError>) -> Option<T> {
    match res {
        Ok(v) => Some(v),
        Err(CacheError::CircuitOpen) => None,
        Err(e) => {
            metrics::counter!("cache_errors_total", "op" => op.to_owned()).increment(1);
            tracing::warn!(key, op, error = %e, "cache degraded to a miss");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_entries_expire_after_their_ttl() {
        let c = Cache::memory(100);
        c.set("a", &b"1"[..], Duration::from_millis(50)).await;
        c.set_json("b", &42u32, Duration::from_secs(60)).await;
        assert_eq!(c.get("a").await.as_deref(), Some(&b"1"[..]));
        assert_eq!(c.get_json::<u32>("b").await, Some(42));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(c.get("a").await, None);
        c.delete("b").await;
        assert_eq!(c.get_json::<u32>("b").await, None);
    }

    #[tokio::test]
    async fn unreachable_redis_degrades_to_misses() {
        // Port 1 refuses connections: every call must fail fast and behave as a miss.
        let c = Cache::redis("redis://127.0.0.1:1/", "t:").unwrap();
        c.set("k", &b"v"[..], Duration::from_secs(5)).await;
        assert_eq!(c.get("k").await, None);
        assert!(c.ping().await.is_err());
    }
}
