//! The event bus: RabbitMQ topic exchanges when `AMQP_URL` is set, otherwise in-process.
//!
//! Both implementations share one interface and one delivery contract: a handler sees each
//! message at least once, returns [`HandlerError::Transient`] to have it redelivered, or
//! [`HandlerError::Poison`] to have it dead-lettered. Handlers must therefore be idempotent
//! (use [`Message::id`]).
//!
//! On RabbitMQ, messages are signed with the deployment's secret and checked on delivery (see
//! [`sign`](BusSecret)); the in-process bus has no one else to hear from.

mod local;
mod rabbit;
mod sign;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::sign::{BusSecret, SIGNATURE_HEADER};
use crate::timestamp::Timestamp;

/// Domain events (`user.*`, `catalog.*`, `usage.*`, …).
pub const EVENTS_EXCHANGE: &str = "ollamanet.events";
/// Service and engine announcements (`service.heartbeat`, `inference.*`).
pub const DISCOVERY_EXCHANGE: &str = "service-discovery";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the message broker is not connected")]
    Disconnected,
    #[error("the broker did not confirm the message")]
    NotConfirmed,
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("publish timed out")]
    Timeout,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub routing_key: String,
    pub body: Bytes,
    /// Set when the broker has delivered this message before (a handler failed or crashed).
    pub redelivered: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Try again later (a dependency is down).
    #[error("transient: {0}")]
    Transient(String),
    /// The message can never be handled (bad schema); it goes to the dead-letter queue.
    #[error("poison: {0}")]
    Poison(String),
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError>;
}

/// Who receives a message published to `exchange` with a key matching one of `bindings`
/// (`*` matches one dot-separated word, `#` zero or more).
#[derive(Debug, Clone)]
pub struct Subscription {
    pub exchange: String,
    /// Names the queue. Per-instance subscriptions get `<name>.<instance id>`.
    pub name: String,
    pub bindings: Vec<String>,
    /// Shared: one durable queue for all instances of the service (work queue; any instance
    /// handles each message once). Not shared: every instance gets every message (broadcast).
    pub shared: bool,
}

impl Subscription {
    /// Every instance sees every message: cache invalidation, discovery.
    pub fn broadcast(exchange: &str, name: &str, bindings: &[&str]) -> Self {
        Self {
            exchange: exchange.to_owned(),
            name: name.to_owned(),
            bindings: bindings.iter().map(|b| (*b).to_owned()).collect(),
            shared: false,
        }
    }

    /// One instance handles each message: side effects that must happen once.
    pub fn work_queue(exchange: &str, name: &str, bindings: &[&str]) -> Self {
        Self { shared: true, ..Self::broadcast(exchange, name, bindings) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BusStatus {
    InProcess,
    Connected,
    Disconnected,
}

#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

enum Inner {
    Local(local::LocalBus),
    Rabbit(rabbit::RabbitBus),
}

/// Identifies this process on the bus (queue names, heartbeats).
#[derive(Debug, Clone)]
pub struct Instance {
    /// Prefix for every exchange and queue name, so that tests and tenants can share a broker.
    pub namespace: String,
    pub service: String,
    pub id: String,
}

impl Bus {
    pub fn in_process() -> Self {
        Self { inner: Arc::new(Inner::Local(local::LocalBus::default())) }
    }

    /// Starts a supervisor that connects to RabbitMQ and reconnects with backoff forever; the
    /// bus reports [`BusStatus::Disconnected`] (and publishes fail fast) until it is connected.
    /// With `secret`, every message published is signed and every message delivered is checked.
    pub fn rabbitmq(url: &str, instance: Instance, secret: Option<BusSecret>) -> Self {
        Self { inner: Arc::new(Inner::Rabbit(rabbit::RabbitBus::start(url.to_owned(), instance, secret))) }
    }

    /// Publishes and waits for the broker's confirmation.
    pub async fn publish(&self, exchange: &str, routing_key: &str, id: &str, body: Bytes) -> Result<(), BusError> {
        match &*self.inner {
            Inner::Local(b) => {
                b.publish(exchange, routing_key, id, body);
                Ok(())
            }
            Inner::Rabbit(b) => b.publish(exchange, routing_key, id, body).await,
        }
    }

    pub async fn publish_event(&self, event: &Event) -> Result<(), BusError> {
        let body = serde_json::to_vec(event).expect("events serialize");
        self.publish(EVENTS_EXCHANGE, &event.kind, &event.id.to_string(), body.into()).await
    }

    /// Registers a handler. With RabbitMQ the consumer is (re)started on every connection; when
    /// the broker is connected this returns once the queue is bound, so that messages published
    /// afterwards reach the handler.
    pub async fn subscribe(&self, sub: Subscription, handler: Arc<dyn Handler>) {
        match &*self.inner {
            Inner::Local(b) => b.subscribe(sub, handler),
            Inner::Rabbit(b) => b.subscribe(sub, handler).await,
        }
    }

    pub fn status(&self) -> BusStatus {
        match &*self.inner {
            Inner::Local(_) => BusStatus::InProcess,
            Inner::Rabbit(b) => b.status(),
        }
    }

    /// Resolves once the bus is connected (at once for the in-process bus).
    pub async fn wait_connected(&self) {
        if let Inner::Rabbit(b) = &*self.inner {
            b.wait_connected().await;
        }
    }

    /// Stops consuming and closes the broker connection.
    pub async fn close(&self) {
        if let Inner::Rabbit(b) = &*self.inner {
            b.close().await;
        }
    }
}

/// The envelope of every domain event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub occurred_at: Timestamp,
    pub source: String,
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(kind: &str, source: &str, data: impl Serialize) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            version: 1,
            occurred_at: Timestamp::now(),
            source: source.to_owned(),
            data: serde_json::to_value(data).expect("event data serializes"),
        }
    }

    /// Parses an envelope and its `data`; anything that does not parse is poison.
    pub fn decode<T: serde::de::DeserializeOwned>(msg: &Message) -> Result<(Event, T), HandlerError> {
        let event: Event =
            serde_json::from_slice(&msg.body).map_err(|e| HandlerError::Poison(format!("bad envelope: {e}")))?;
        let data = serde_json::from_value(event.data.clone())
            .map_err(|e| HandlerError::Poison(format!("bad {} data: {e}", event.kind)))?;
        Ok((event, data))
    }
}

/// AMQP topic matching: `*` is exactly one word, `#` is zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(&p[1..], k) || (!k.is_empty() && go(p, &k[1..])),
            (Some(&"*"), Some(_)) => go(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns() {
        assert!(topic_matches("user.*", "user.updated"));
        assert!(!topic_matches("user.*", "user.updated.extra"));
        assert!(topic_matches("user.#", "user.updated.extra"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("catalog.#", "catalog"));
        assert!(!topic_matches("catalog.*", "catalog"));
        assert!(topic_matches("*.changed", "url.changed"));
        assert!(!topic_matches("user.updated", "user.deleted"));
    }
}
