//! The service registry: every service instance announces itself on the `service-discovery`
//! exchange (`service.heartbeat`), and callers balance over the instances heard from recently.
//! It needs a shared bus (RabbitMQ); with the in-process bus it only ever sees its own process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, DISCOVERY_EXCHANGE, Handler, HandlerError, Message, Subscription};

pub const HEARTBEAT: &str = "service.heartbeat";
/// Asks every instance to announce itself now (sent by a registry that has just started).
pub const DISCOVER: &str = "service.discover";
/// How often an instance announces itself.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// An instance not heard from for this long is considered gone.
const EXPIRY: Duration = Duration::from_secs(16);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Heartbeat {
    /// The service's name (`auth`, `gateway`, …).
    pub name: String,
    pub instance_id: String,
    /// Where the instance takes requests, e.g. `http://10.0.0.2:8081`.
    pub base_url: String,
    pub version: String,
    pub capabilities: Vec<String>,
    /// Sent once on shutdown, so that callers stop using the instance at once.
    #[serde(default)]
    pub leaving: bool,
}

/// Publishes `hb` every [`INTERVAL`], and at once when a registry asks, until `shutdown`; then a
/// last one with `leaving: true`. Await the handle before closing the bus, or that last heartbeat
/// may not go out.
pub async fn announce(bus: Bus, hb: Heartbeat, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let asked = Arc::new(Notify::new());
    let sub = Subscription::broadcast(DISCOVERY_EXCHANGE, &format!("announce-{}", hb.name), &[DISCOVER]);
    bus.subscribe(sub, Arc::new(Asked(asked.clone()))).await;
    tokio::spawn(async move {
        loop {
            publish(&bus, HEARTBEAT, &hb).await;
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = asked.notified() => {}
                _ = shutdown.cancelled() => break,
            }
        }
        publish(&bus, HEARTBEAT, &Heartbeat { leaving: true, ..hb }).await;
    })
}

async fn publish(bus: &Bus, key: &str, body: &impl Serialize) {
    let body = serde_json::to_vec(body).expect("discovery messages serialize");
    let id = uuid::Uuid::now_v7().to_string();
    if let Err(e) = bus.publish(DISCOVERY_EXCHANGE, key, &id, body.into()).await {
        tracing::debug!(key, error = %e, "discovery message not published");
    }
}

struct Asked(Arc<Notify>);

#[async_trait]
impl Handler for Asked {
    async fn handle(&self, _: &Message) -> Result<(), HandlerError> {
        self.0.notify_one();
        Ok(())
    }
}

struct Seen {
    base_url: String,
    at: Instant,
}

/// The live instances of every service, from their heartbeats.
#[derive(Default)]
pub struct Registry {
    services: RwLock<HashMap<String, HashMap<String, Seen>>>,
}

impl Registry {
    /// A registry fed by `bus`. It asks every instance to announce itself, so that it knows the
    /// deployment at once rather than after a heartbeat interval.
    pub async fn listen(bus: &Bus) -> Arc<Self> {
        let registry = Arc::new(Registry::default());
        let sub = Subscription::broadcast(DISCOVERY_EXCHANGE, "registry", &[HEARTBEAT]);
        bus.subscribe(sub, Arc::new(Feed(registry.clone()))).await;
        publish(bus, DISCOVER, &serde_json::json!({})).await;
        registry
    }

    pub fn record(&self, hb: &Heartbeat) {
        let mut services = self.services.write().unwrap_or_else(|e| e.into_inner());
        let instances = services.entry(hb.name.clone()).or_default();
        if hb.leaving {
            instances.remove(&hb.instance_id);
        } else {
            instances.insert(hb.instance_id.clone(), Seen { base_url: hb.base_url.clone(), at: Instant::now() });
        }
    }

    /// Base URLs of the instances of `service` heard from recently, in a stable order.
    pub fn live(&self, service: &str) -> Vec<String> {
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        let mut urls: Vec<String> = services
            .get(service)
            .map(|m| m.values().filter(|s| s.at.elapsed() < EXPIRY).map(|s| s.base_url.clone()).collect())
            .unwrap_or_default();
        urls.sort();
        urls.dedup();
        urls
    }
}

struct Feed(Arc<Registry>);

#[async_trait]
impl Handler for Feed {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        let hb: Heartbeat =
            serde_json::from_slice(&msg.body).map_err(|e| HandlerError::Poison(format!("bad heartbeat: {e}")))?;
        if !(hb.base_url.starts_with("http://") || hb.base_url.starts_with("https://")) {
            return Err(HandlerError::Poison(format!("heartbeat with a non-HTTP base URL: {}", hb.base_url)));
        }
        self.0.record(&hb);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(id: &str, url: &str, leaving: bool) -> Heartbeat {
        Heartbeat {
            name: "auth".into(),
            instance_id: id.into(),
            base_url: url.into(),
            version: "1".into(),
            capabilities: vec![],
            leaving,
        }
    }

    #[test]
    fn tracks_instances_until_they_leave() {
        let r = Registry::default();
        r.record(&hb("a", "http://10.0.0.1:1", false));
        r.record(&hb("b", "http://10.0.0.2:1", false));
        assert_eq!(r.live("auth"), ["http://10.0.0.1:1", "http://10.0.0.2:1"]);
        r.record(&hb("a", "", true));
        assert_eq!(r.live("auth"), ["http://10.0.0.2:1"]);
        assert!(r.live("explore").is_empty());
    }

    #[tokio::test]
    async fn heartbeats_travel_over_the_bus() {
        let bus = Bus::in_process();
        let registry = Registry::listen(&bus).await;
        let stop = CancellationToken::new();
        announce(bus.clone(), hb("x", "http://127.0.0.1:9", false), stop.clone()).await;
        for _ in 0..100 {
            if !registry.live("auth").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(registry.live("auth"), ["http://127.0.0.1:9"]);
        stop.cancel();
        for _ in 0..100 {
            if registry.live("auth").is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("a leaving instance is dropped at once");
    }
}
