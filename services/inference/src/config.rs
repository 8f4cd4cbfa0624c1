//! The inference service's settings (`[inference]` in the configuration file).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::access::Uncatalogued;
use crate::limits::LoadLimits;
use crate::validate::UrlPolicy;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceConfig {
    /// Engine nodes known from the start (Ollama servers or `ollamanet serve --only engine`), as
    /// `OLLAMA_HOSTS` lists them: `["http://gpu-1:11434", "http://gpu-2:11434"]`, or with the
    /// engine's key: `[{ url = "http://gpu-1:11434", key = "…" }]`. Configured nodes are trusted
    /// as given; only announced ones are checked against `announce_policy`.
    pub nodes: Vec<NodeConfig>,
    /// What an engine announced over the bus may point at.
    pub announce_policy: UrlPolicy,
    /// The key presented to announced engines (`Authorization: Bearer <key>`): the `engine.key`
    /// of the deployment's `serve --only engine --announce` processes.
    pub engine_key: Option<String>,
    /// How often every node is probed (`/api/tags`, `/api/ps`).
    #[serde(with = "kit::config::duration")]
    pub probe_interval: Duration,
    /// An announced node not heard from for this long is dropped.
    #[serde(with = "kit::config::duration")]
    pub announce_expiry: Duration,
    /// Generations one node runs at once unless it announces its own capacity.
    pub node_capacity: usize,
    /// Generations (or embeddings) one user may have running or waiting.
    pub per_user_concurrency: usize,
    /// Requests that may wait for a free slot across the platform; more is a 503.
    pub queue: usize,
    /// How long a request may wait in that queue.
    #[serde(with = "kit::config::duration")]
    pub queue_wait: Duration,
    /// Time for a node to start answering (headers) before the request tries another node.
    #[serde(with = "kit::config::duration")]
    pub first_byte_timeout: Duration,
    /// What a request may do to an engine's memory (`keep_alive`, `num_ctx`, …); admins are not
    /// limited.
    pub limits: LoadLimits,
    /// Who may use a model some engine has but the catalog does not describe: `users` (every
    /// signed-in account) or `admins`. Unset: `users` when the process listens on a loopback
    /// address, else `admins` (see [`InferenceConfig::uncatalogued_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncatalogued: Option<Uncatalogued>,
}

impl InferenceConfig {
    /// `uncatalogued`, or when unset what suits the process's listener: only one that no other
    /// machine can reach (`exposed` false: loopback) leaves uncatalogued models open to every
    /// account; any other keeps them for admins until an admin catalogues them.
    pub fn uncatalogued_for(&self, exposed: bool) -> Uncatalogued {
        self.uncatalogued.unwrap_or(if exposed { Uncatalogued::Admins } else { Uncatalogued::Users })
    }
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            announce_policy: UrlPolicy::default(),
            engine_key: None,
            probe_interval: Duration::from_secs(2),
            announce_expiry: Duration::from_secs(30),
            node_capacity: 4,
            per_user_concurrency: 4,
            queue: 256,
            queue_wait: Duration::from_secs(120),
            first_byte_timeout: Duration::from_secs(300),
            limits: LoadLimits::default(),
            uncatalogued: None,
        }
    }
}

/// A configured engine node: its URL, and the key it wants if it is an OllamaNet engine with
/// one (an Ollama server wants none). A plain URL in the configuration is a node without a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub url: String,
    pub key: Option<String>,
}

impl From<String> for NodeConfig {
    fn from(url: String) -> Self {
        Self { url, key: None }
    }
}

impl From<&str> for NodeConfig {
    fn from(url: &str) -> Self {
        url.to_owned().into()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NodeForm {
    Url(String),
    Keyed {
        url: String,
        #[serde(default)]
        key: Option<String>,
    },
}

impl Serialize for NodeConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.key {
            None => NodeForm::Url(self.url.clone()),
            Some(key) => NodeForm::Keyed { url: self.url.clone(), key: Some(key.clone()) },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for NodeConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match NodeForm::deserialize(d)? {
            NodeForm::Url(url) => Self { url, key: None },
            NodeForm::Keyed { url, key } => Self { url, key },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncatalogued_models_are_for_admins_unless_only_this_machine_listens() {
        let config = InferenceConfig::default();
        assert_eq!(config.uncatalogued_for(false), Uncatalogued::Users);
        assert_eq!(config.uncatalogued_for(true), Uncatalogued::Admins);
        let open = InferenceConfig { uncatalogued: Some(Uncatalogued::Users), ..InferenceConfig::default() };
        assert_eq!(open.uncatalogued_for(true), Uncatalogued::Users);
        let closed = InferenceConfig { uncatalogued: Some(Uncatalogued::Admins), ..InferenceConfig::default() };
        assert_eq!(closed.uncatalogued_for(false), Uncatalogued::Admins);
    }

    #[test]
    fn nodes_are_urls_or_urls_with_a_key() {
        let config: InferenceConfig = serde_json::from_value(serde_json::json!({
            "nodes": ["http://a:11434", {"url": "http://b:11434", "key": "0123456789abcdef"}]
        }))
        .unwrap();
        assert_eq!(config.nodes[0], NodeConfig::from("http://a:11434"));
        assert_eq!(config.nodes[1].key.as_deref(), Some("0123456789abcdef"));
        let again: InferenceConfig = serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
        assert_eq!(again.nodes, config.nodes);
    }
}
