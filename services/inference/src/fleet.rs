//! The engine nodes the platform can use, what each has on disk and in memory, whether it is
//! healthy, and which node should take a request for a model.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kit::Timestamp;
use kit::cache::Cache;
use kit::resilience::{BreakerState, CircuitBreaker};
use kit::upstream::Upstream;
use ollama_api::OllamaClient;
use ollama_api::types::{ModelEntry, RunningModel};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// The embedded engine's node id in all-in-one mode.
pub const LOCAL: &str = "local";
/// Where announced URLs are remembered, so that a restarted service resumes them.
const KNOWN_URLS_KEY: &str = "inference:announced-urls";
const KNOWN_URLS_TTL: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The engine in this process.
    Local,
    /// From `inference.nodes`.
    Configured,
    /// Announced on the bus.
    Announced,
}

pub struct Node {
    /// [`LOCAL`], or [`node_id`] of the URL: stable across restarts and the same on every
    /// instance, and usable as one path segment (a URL is not: the gateway refuses `%2F`).
    pub id: String,
    /// Where it is reached; none for the engine in this process.
    pub url: Option<String>,
    pub source: Source,
    /// For requests relayed as they are.
    pub upstream: Upstream,
    /// For typed calls (probes, admin operations).
    pub client: OllamaClient,
    pub capacity: usize,
    in_flight: AtomicUsize,
    breaker: CircuitBreaker,
    seen: RwLock<Seen>,
}

/// What the last probe (or announcement) found.
#[derive(Default)]
struct Seen {
    healthy: bool,
    error: Option<String>,
    models: Vec<ModelEntry>,
    loaded: Vec<RunningModel>,
    announced_at: Option<Instant>,
    probed_at: Option<Timestamp>,
}

/// A node's state as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeStatus {
    /// `local`, or `host:port` of its URL (see [`node_id`]).
    pub id: String,
    /// Absent for the engine in this process.
    pub url: Option<String>,
    pub source: Source,
    /// Its last probe succeeded and no request has failed to reach it since.
    pub healthy: bool,
    /// The circuit breaker fed by real requests: an open one takes the node out of routing.
    pub breaker: Breaker,
    /// Models installed (`/api/tags`), as of the last probe.
    pub models: Vec<String>,
    /// Models in memory (`/api/ps`), as of the last probe.
    pub loaded: Vec<String>,
    /// Requests running on it now.
    pub in_flight: usize,
    /// Generations it may run at once.
    pub capacity: usize,
    pub last_probe_at: Option<Timestamp>,
    /// Why the node is unhealthy (the last probe's or request's failure).
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Breaker {
    Closed,
    Open,
    HalfOpen,
}

impl From<BreakerState> for Breaker {
    fn from(s: BreakerState) -> Self {
        match s {
            BreakerState::Closed => Breaker::Closed,
            BreakerState::Open => Breaker::Open,
            BreakerState::HalfOpen => Breaker::HalfOpen,
        }
    }
}

/// Marks a request running on a node until dropped.
pub struct InFlight {
    node: Arc<Node>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.node.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Node {
    fn new(id: String, url: Option<String>, source: Source, upstream: Upstream, capacity: usize) -> Self {
        Self {
            id,
            url,
            source,
            client: OllamaClient::new(upstream.clone()),
            upstream,
            capacity,
            in_flight: AtomicUsize::new(0),
            breaker: CircuitBreaker::new(3, Duration::from_secs(5)),
            seen: RwLock::new(Seen::default()),
        }
    }

    fn seen(&self) -> std::sync::RwLockReadGuard<'_, Seen> {
        self.seen.read().unwrap_or_else(|e| e.into_inner())
    }

    fn seen_mut(&self) -> std::sync::RwLockWriteGuard<'_, Seen> {
        self.seen.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_healthy(&self) -> bool {
        self.seen().healthy
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { node: self.clone() }
    }

    /// The request reached the node and it answered (whatever the answer).
    pub fn succeeded(&self) {
        self.breaker.record_success();
    }

    /// The node could not be reached: out of rotation until a probe finds it again.
    pub fn failed(&self, error: &str) {
        self.breaker.record_failure();
        let mut seen = self.seen_mut();
        seen.healthy = false;
        seen.error = Some(error.to_owned());
    }

    fn has(&self, model: &str) -> Option<bool> {
        let seen = self.seen();
        let loaded = seen.loaded.iter().any(|m| same_model(&m.name, model));
        (loaded || seen.models.iter().any(|m| same_model(&m.name, model))).then_some(loaded)
    }

    pub fn models(&self) -> Vec<ModelEntry> {
        self.seen().models.clone()
    }

    pub fn loaded(&self) -> Vec<RunningModel> {
        self.seen().loaded.clone()
    }

    pub fn status(&self) -> NodeStatus {
        let seen = self.seen();
        NodeStatus {
            id: self.id.clone(),
            url: self.url.clone(),
            source: self.source,
            healthy: seen.healthy,
            breaker: self.breaker.state().into(),
            models: seen.models.iter().map(|m| m.name.clone()).collect(),
            loaded: seen.loaded.iter().map(|m| m.name.clone()).collect(),
            in_flight: self.in_flight(),
            capacity: self.capacity,
            last_probe_at: seen.probed_at,
            last_error: seen.error.clone(),
        }
    }

    /// Asks the node what it has; a node that answers is healthy.
    async fn probe(&self) {
        let result = tokio::time::timeout(Duration::from_secs(5), async {
            let tags = self.client.tags().await?;
            let ps = self.client.ps().await?;
            Ok::<_, ollama_api::ClientError>((tags, ps))
        })
        .await;
        let mut seen = self.seen_mut();
        seen.probed_at = Some(Timestamp::now());
        match result {
            Ok(Ok((tags, ps))) => {
                if !seen.healthy {
                    tracing::info!(node = %self.id, "engine node is healthy");
                }
                self.breaker.record_success();
                seen.healthy = true;
                seen.error = None;
                seen.models = tags.models;
                seen.loaded = ps.models;
            }
            Ok(Err(e)) => {
                if seen.healthy {
                    tracing::warn!(node = %self.id, error = %e, "engine node failed its probe");
                }
                seen.healthy = false;
                seen.error = Some(e.to_string());
            }
            Err(_) => {
                seen.healthy = false;
                seen.error = Some("probe timed out".into());
            }
        }
    }
}

/// A node's id from its URL: `host:port`, the port spelled out (`https://abc.ngrok-free.app` is
/// `abc.ngrok-free.app:443`), then `~`-separated path segments for an engine behind a path
/// prefix. The same URL gives the same id on every instance and after every restart; two URLs
/// that reach the same server the same way (`http://h` and `http://H:80/`) give the same id.
pub fn node_id(url: &str) -> String {
    fn clean(s: &str) -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "-._".contains(c) { c } else { '_' }).collect()
    }
    let Ok(uri) = url.trim().parse::<http::Uri>() else { return clean(url) };
    let Some(host) = uri.host() else { return clean(url) };
    // IPv6 hosts lose their brackets, which may not appear in a path.
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let mut id = format!("{host}:{port}");
    for segment in uri.path().split('/').filter(|s| !s.is_empty()) {
        id.push('~');
        id.push_str(&clean(segment));
    }
    id
}

/// A model name with its tag: `llama3.2` is `llama3.2:latest` (a registry's port is not a tag).
pub fn full_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') { name.to_owned() } else { format!("{name}:latest") }
}

/// `llama3.2` and `llama3.2:latest` are the same model.
pub fn same_model(a: &str, b: &str) -> bool {
    full_name(a) == full_name(b)
}

#[derive(Default)]
pub struct Fleet {
    nodes: RwLock<Vec<Arc<Node>>>,
    /// Wakes the watcher when nodes join or leave, so that capacity follows at once rather
    /// than at the next probe.
    changed: tokio::sync::Notify,
    /// Becomes true once the nodes known at start have been probed.
    probed: tokio::sync::watch::Sender<bool>,
    /// What announced nodes are reached with (`inference.engine_key`); configured nodes come with
    /// their own.
    announced_key: Option<http::HeaderValue>,
}

impl Fleet {
    /// A fleet whose announced nodes are called with `announced_key` (`Bearer <key>`).
    pub fn new(announced_key: Option<http::HeaderValue>) -> Self {
        Self { announced_key, ..Self::default() }
    }

    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Node>> {
        self.nodes().into_iter().find(|n| n.id == id)
    }

    /// Adds the node at `url` (none: the engine in this process) unless it is known; returns
    /// the node either way. An announced node is called with the deployment's engine key.
    pub fn add(&self, url: Option<&str>, source: Source, upstream: Upstream, capacity: usize) -> Arc<Node> {
        let id = url.map_or_else(|| LOCAL.to_owned(), node_id);
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = nodes.iter().find(|n| n.id == id) {
            return n.clone();
        }
        let upstream = match (&self.announced_key, source) {
            (Some(key), Source::Announced) => upstream.with_authorization(key.clone()),
            _ => upstream,
        };
        let node = Arc::new(Node::new(id, url.map(str::to_owned), source, upstream, capacity));
        nodes.push(node.clone());
        self.changed.notify_one();
        node
    }

    pub fn remove(&self, id: &str) {
        self.nodes.write().unwrap_or_else(|e| e.into_inner()).retain(|n| n.id != id);
        self.changed.notify_one();
    }

    /// Returns once the first round of probes is done (at once after that).
    pub async fn first_probe(&self) {
        let _ = self.probed.subscribe().wait_for(|done| *done).await;
    }

    /// Probes one node now.
    pub async fn probe(&self, node: &Node) {
        node.probe().await;
    }

    /// Records an announcement: the node is alive and has these models.
    pub fn announced(&self, node: &Node, models: Option<Vec<String>>) {
        let mut seen = node.seen_mut();
        seen.announced_at = Some(Instant::now());
        if let Some(names) = models
            && !seen.healthy
        {
            // Until the first probe, trust the announcement so that the node is usable at once.
            seen.healthy = true;
            seen.models = names.into_iter().map(placeholder_entry).collect();
        }
    }

    /// The nodes that can take a request for `model`, best first: healthy, breaker closed, with
    /// the model loaded before those with it only on disk, least loaded first.
    pub fn candidates(&self, model: &str) -> Vec<Arc<Node>> {
        let mut ranked: Vec<(bool, f64, Arc<Node>)> = self
            .nodes()
            .into_iter()
            .filter(|n| n.is_healthy())
            .filter_map(|n| n.has(model).map(|loaded| (loaded, n)))
            .filter(|(_, n)| n.breaker.state() != kit::resilience::BreakerState::Open)
            .map(|(loaded, n)| (loaded, n.in_flight() as f64 / n.capacity.max(1) as f64, n))
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)));
        ranked.into_iter().map(|(_, _, n)| n).collect()
    }

    /// Generations the healthy part of the fleet can run at once.
    pub fn capacity(&self) -> usize {
        self.nodes().iter().filter(|n| n.is_healthy()).map(|n| n.capacity).sum()
    }

    /// Every model some healthy node has, with the nodes that have it.
    pub fn models(&self) -> BTreeMap<String, (ModelEntry, Vec<String>)> {
        let mut out: BTreeMap<String, (ModelEntry, Vec<String>)> = BTreeMap::new();
        for node in self.nodes().iter().filter(|n| n.is_healthy()) {
            for m in node.models() {
                out.entry(m.name.clone()).or_insert_with(|| (m, Vec::new())).1.push(node.id.clone());
            }
        }
        out
    }

    /// Drops announced nodes not heard from for `expiry`.
    pub fn expire(&self, expiry: Duration) -> Vec<String> {
        let stale: Vec<String> = self
            .nodes()
            .iter()
            .filter(|n| n.source == Source::Announced)
            .filter(|n| n.seen().announced_at.is_none_or(|at| at.elapsed() > expiry))
            .map(|n| n.id.clone())
            .collect();
        for id in &stale {
            tracing::info!(node = %id, "announced engine node expired");
            self.remove(id);
        }
        stale
    }

    /// Probes every node every `every`, and expires silent announced nodes.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        expiry: Duration,
        on_change: impl Fn(&Fleet),
        stop: CancellationToken,
    ) {
        loop {
            let nodes = self.nodes();
            futures::future::join_all(nodes.iter().map(|n| n.probe())).await;
            self.expire(expiry);
            on_change(&self);
            self.probed.send_replace(true);
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.changed.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

fn placeholder_entry(name: String) -> ModelEntry {
    ModelEntry {
        model: name.clone(),
        name,
        remote_model: String::new(),
        remote_host: String::new(),
        modified_at: time::OffsetDateTime::UNIX_EPOCH,
        size: 0,
        digest: String::new(),
        details: Default::default(),
        capabilities: Vec::new(),
    }
}

/// Announced URLs, remembered in the cache so that a restart resumes them.
pub async fn remember(cache: &Cache, urls: &[String]) {
    cache.set_json(KNOWN_URLS_KEY, &urls, KNOWN_URLS_TTL).await;
}

pub async fn remembered(cache: &Cache) -> Vec<String> {
    cache.get_json(KNOWN_URLS_KEY).await.unwrap_or_default()
}

/// Tells the catalog's readers which models the fleet has ([`ollamanet_catalog::MODELS_INSTALLED`]):
/// whenever the set changes, when a reader asks ([`ollamanet_catalog::MODELS_WANTED`]), and every
/// `again` in any case, until `stop`.
pub async fn announce_installed(
    fleet: Arc<Fleet>,
    bus: kit::bus::Bus,
    every: Duration,
    again: Duration,
    stop: CancellationToken,
) {
    let wanted = Arc::new(tokio::sync::Notify::new());
    let subscription = kit::bus::Subscription::broadcast(
        kit::bus::EVENTS_EXCHANGE,
        "inference.models-wanted",
        &[ollamanet_catalog::MODELS_WANTED],
    );
    bus.subscribe(subscription, Arc::new(Wanted(wanted.clone()))).await;
    let mut last: Option<(Vec<String>, tokio::time::Instant)> = None;
    let mut asked = false;
    loop {
        let mut models: Vec<String> =
            fleet.models().into_keys().map(|m| ollamanet_catalog::normalize_name(&m).unwrap_or(m)).collect();
        models.sort();
        models.dedup();
        let due = asked || last.as_ref().is_none_or(|(sent, at)| *sent != models || at.elapsed() >= again);
        if due {
            let event = kit::bus::Event::new(
                ollamanet_catalog::MODELS_INSTALLED,
                crate::NAME,
                ollamanet_catalog::Installed { models: models.clone() },
            );
            match bus.publish_event(&event).await {
                Ok(()) => last = Some((models, tokio::time::Instant::now())),
                Err(e) => tracing::debug!(error = %e, "could not announce the installed models"),
            }
        }
        asked = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            _ = wanted.notified() => true,
            _ = stop.cancelled() => return,
        };
    }
}

/// A reader asks for the installed models.
struct Wanted(Arc<tokio::sync::Notify>);

#[async_trait::async_trait]
impl kit::bus::Handler for Wanted {
    async fn handle(&self, _: &kit::bus::Message) -> Result<(), kit::bus::HandlerError> {
        self.0.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_path_segments_stable_for_a_url() {
        assert_eq!(node_id("http://gpu-1:11434"), "gpu-1:11434");
        assert_eq!(node_id("https://abc.ngrok-free.app"), "abc.ngrok-free.app:443");
        assert_eq!(node_id("http://GPU-1"), node_id("http://gpu-1:80/"));
        assert_eq!(node_id("http://[::1]:11434"), "::1:11434");
        assert_eq!(node_id("https://proxy.example.com/ollama/a"), "proxy.example.com:443~ollama~a");
        for url in ["http://gpu-1:11434", "https://h/p/q", "http://[fe80::1]", "not a url/x"] {
            let id = node_id(url);
            assert!(!id.contains('/') && !id.contains('[') && !id.contains('%'), "{id}");
        }
    }

    #[test]
    fn model_names_compare_with_their_default_tag() {
        assert!(same_model("llama3.2", "llama3.2:latest"));
        assert!(same_model("smollm2:135m", "smollm2:135m"));
        assert!(!same_model("smollm2:135m", "smollm2"));
        assert!(same_model("registry.example.com:5000/team/m", "registry.example.com:5000/team/m:latest"));
    }
}
