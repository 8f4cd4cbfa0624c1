//! Engines announcing themselves on the `service-discovery` exchange.
//!
//! Two messages: the original design's `inference.url.changed` — `{newUrl, timestamp, serviceId,
//! version}`, published by a notebook that has just opened a tunnel — and
//! `inference.node.heartbeat` — `{url, models, load, capacity}` — sent periodically by
//! `ollamanet serve --only engine --announce` and `ollamanet announce`. Every inference instance
//! consumes them on a queue of its own (the original design's shared queue let one service
//! instance swallow updates meant for all).
//!
//! On RabbitMQ every message is signed with the deployment's `bus_secret` (kit's bus drops
//! unsigned, stale and replayed ones before they get here), so only a holder of the secret can
//! announce an engine; the announced URL is still checked against `announce_policy`, and the
//! connections to the node resolve and check its name again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kit::bus::{Bus, DISCOVERY_EXCHANGE, Handler, HandlerError, Message, Subscription};
use kit::config::Platform;
use kit::upstream::Upstream;
use ollama_api::OllamaClient;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::InferenceConfig;
use crate::fleet::{self, Fleet, Source};
use crate::validate::UrlPolicy;

/// How often an announcing engine sends its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

pub const URL_CHANGED: &str = "inference.url.changed";
pub const NODE_HEARTBEAT: &str = "inference.node.heartbeat";

/// The original announcement. Field names as the original publisher sent them (camelCase), with
/// the C# service's PascalCase accepted too.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UrlChanged {
    #[serde(alias = "NewUrl")]
    pub new_url: String,
    #[serde(default, alias = "Timestamp")]
    pub timestamp: Option<String>,
    #[serde(default, alias = "ServiceId")]
    pub service_id: Option<String>,
    #[serde(default, alias = "Version")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeHeartbeat {
    pub url: String,
    /// Model names the node has, `name:tag`.
    #[serde(default)]
    pub models: Vec<String>,
    /// Generations running on the node now.
    #[serde(default)]
    pub load: usize,
    /// Generations it can run at once.
    #[serde(default)]
    pub capacity: Option<usize>,
    /// Sent once when the node shuts down.
    #[serde(default)]
    pub leaving: bool,
}

/// Adds the nodes announced before the last restart (validated again: the policy may have
/// changed since).
pub async fn resume(fleet: &Fleet, platform: &Platform, config: &InferenceConfig) {
    for url in fleet::remembered(&platform.cache).await {
        if let Ok(url) = config.announce_policy.check(&url).await
            && let Ok(upstream) =
                Upstream::http_resolving(std::slice::from_ref(&url), config.announce_policy.connector())
        {
            let node = fleet.add(Some(&url), Source::Announced, upstream, config.node_capacity);
            fleet.announced(&node, None);
        }
    }
}

/// Consumes announcements on a queue of this instance's own.
pub async fn listen(fleet: Arc<Fleet>, platform: &Platform, config: &InferenceConfig) {
    let handler = Announcements {
        fleet,
        policy: config.announce_policy.clone(),
        capacity: config.node_capacity,
        cache: platform.cache.clone(),
    };
    let sub = Subscription::broadcast(DISCOVERY_EXCHANGE, "inference-nodes", &[URL_CHANGED, NODE_HEARTBEAT]);
    platform.bus.subscribe(sub, Arc::new(handler)).await;
}

struct Announcements {
    fleet: Arc<Fleet>,
    policy: UrlPolicy,
    capacity: usize,
    cache: kit::cache::Cache,
}

impl Announcements {
    async fn accept(
        &self,
        url: &str,
        capacity: Option<usize>,
        models: Option<Vec<String>>,
    ) -> Result<(), HandlerError> {
        let url = self.policy.check(url).await.map_err(|e| {
            tracing::warn!(url, error = %e, "engine announcement refused");
            HandlerError::Poison(format!("announced URL refused: {e}"))
        })?;
        let known = self.fleet.get(&fleet::node_id(&url)).is_some();
        let upstream = Upstream::http_resolving(std::slice::from_ref(&url), self.policy.connector())
            .map_err(|e| HandlerError::Poison(e.to_string()))?;
        let node = self.fleet.add(Some(&url), Source::Announced, upstream, capacity.unwrap_or(self.capacity));
        self.fleet.announced(&node, models);
        if !known {
            tracing::info!(node = %url, "engine node announced");
            // Probe at once rather than at the next round, so that it serves within a second.
            self.fleet.probe(&node).await;
            let urls: Vec<String> = self
                .fleet
                .nodes()
                .iter()
                .filter(|n| n.source == Source::Announced)
                .filter_map(|n| n.url.clone())
                .collect();
            fleet::remember(&self.cache, &urls).await;
        }
        Ok(())
    }
}

#[async_trait]
impl Handler for Announcements {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        match msg.routing_key.as_str() {
            URL_CHANGED => {
                let m: UrlChanged =
                    serde_json::from_slice(&msg.body).map_err(|e| HandlerError::Poison(e.to_string()))?;
                self.accept(&m.new_url, None, None).await
            }
            NODE_HEARTBEAT => {
                let m: NodeHeartbeat =
                    serde_json::from_slice(&msg.body).map_err(|e| HandlerError::Poison(e.to_string()))?;
                if m.leaving {
                    let id = fleet::node_id(m.url.trim_end_matches('/'));
                    // Only a node that came by announcement leaves by one: configured nodes and
                    // the embedded engine stay whatever the bus says.
                    if self.fleet.get(&id).is_some_and(|n| n.source == Source::Announced) {
                        tracing::info!(node = %id, "engine node left");
                        self.fleet.remove(&id);
                    }
                    return Ok(());
                }
                self.accept(&m.url, m.capacity, Some(m.models)).await
            }
            other => Err(HandlerError::Poison(format!("unexpected routing key {other}"))),
        }
    }
}

/// Announces an engine reachable at `url`: the original `inference.url.changed` once, then a
/// heartbeat with its models every [`HEARTBEAT_INTERVAL`], and a leaving heartbeat on shutdown.
/// `engine` is how this process reaches it (in-process for `serve --only engine --announce`,
/// HTTP for `ollamanet announce --url`).
pub fn announce(
    bus: Bus,
    url: String,
    engine: OllamaClient,
    capacity: Option<usize>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let changed = UrlChanged {
            new_url: url.clone(),
            timestamp: time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).ok(),
            service_id: Some("ollamanet-engine".into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        };
        publish(&bus, URL_CHANGED, &changed).await;
        loop {
            match engine.tags().await {
                Ok(list) => {
                    let models = list.models.into_iter().map(|m| m.name).collect();
                    let hb = NodeHeartbeat { url: url.clone(), models, load: 0, capacity, leaving: false };
                    publish(&bus, NODE_HEARTBEAT, &hb).await;
                }
                // A heartbeat vouches for a live engine: skip it while the engine is down.
                Err(e) => tracing::warn!(error = %e, "the announced engine does not answer; heartbeat skipped"),
            }
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        let bye = NodeHeartbeat { url, models: Vec::new(), load: 0, capacity, leaving: true };
        publish(&bus, NODE_HEARTBEAT, &bye).await;
    })
}

async fn publish(bus: &Bus, key: &str, body: &impl Serialize) {
    let bytes = serde_json::to_vec(body).expect("announcements serialize");
    if let Err(e) = bus.publish(DISCOVERY_EXCHANGE, key, &uuid::Uuid::now_v7().to_string(), bytes.into()).await {
        tracing::warn!(key, error = %e, "announcement not published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_original_announcement_in_either_casing() {
        let camel: UrlChanged = serde_json::from_str(
            r#"{"newUrl":"https://x.ngrok-free.app","timestamp":"2025-07-01T10:00:00Z","serviceId":"inference-engine","version":"1.0"}"#,
        )
        .unwrap();
        let pascal: UrlChanged = serde_json::from_str(
            r#"{"NewUrl":"https://x.ngrok-free.app","Timestamp":"2025-07-01T10:00:00Z","ServiceId":"inference-engine","Version":"1.0"}"#,
        )
        .unwrap();
        assert_eq!(camel, pascal);
        assert_eq!(camel.new_url, "https://x.ngrok-free.app");
    }
}
