//! The effective configuration: defaults, then a TOML file, then `OLLAMANET_…` environment
//! variables (`__` separates sections: `OLLAMANET_GATEWAY__BODY_LIMIT`), then the usual
//! `DATABASE_URL`, `REDIS_URL` and `AMQP_URL`, then command-line flags.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use kit::config::InfraConfig;
use ollamanet_auth::AuthConfig;
use ollamanet_conversation::ConversationConfig;
use ollamanet_engine::EngineConfig;
use ollamanet_gateway::GatewayConfig;
use ollamanet_inference::InferenceConfig;
use serde::{Deserialize, Deserializer, Serialize};

/// The configuration file read when `--config` and `OLLAMANET_CONFIG` are not given, if present.
pub const DEFAULT_FILE: &str = "ollamanet.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AppConfig {
    /// Address the process listens on.
    pub listen: String,
    /// The URL other processes reach this one at, announced on the bus so that gateways and
    /// services find it without `[upstreams]`. Default: `http://<listen address>` unless that is
    /// a wildcard address (0.0.0.0, ::).
    pub advertise_url: Option<String>,
    #[serde(flatten)]
    pub infra: InfraConfig,
    /// Where services that do not run in this process are reached: `auth = ["http://10.0.0.2:8081"]`.
    pub upstreams: BTreeMap<String, Urls>,
    /// How connections are served and shut down.
    pub server: kit::server::ServerConfig,
    pub auth: AuthConfig,
    pub gateway: GatewayConfig,
    pub inference: InferenceConfig,
    pub engine: EngineConfig,
    pub conversation: ConversationConfig,
    pub web: ollamanet_web::WebConfig,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            advertise_url: None,
            infra: InfraConfig::default(),
            upstreams: BTreeMap::new(),
            server: kit::server::ServerConfig::default(),
            auth: AuthConfig::default(),
            gateway: GatewayConfig::default(),
            inference: InferenceConfig::default(),
            engine: EngineConfig::default(),
            conversation: ConversationConfig::default(),
            web: ollamanet_web::WebConfig::default(),
        }
    }
}

/// One URL or several: `"http://a"`, `"http://a,http://b"` or `["http://a", "http://b"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Urls(pub Vec<String>);

impl<'de> Deserialize<'de> for Urls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        Ok(Urls(match Form::deserialize(d)? {
            Form::One(s) => s.split(',').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect(),
            Form::Many(v) => v,
        }))
    }
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("unknown configuration key(s): {0}")]
    UnknownKeys(String),
}

/// Loads the configuration. `file` is `--config`; without it `OLLAMANET_CONFIG`, then
/// `./ollamanet.toml` if it exists.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<AppConfig, ConfigError> {
    let known = top_level_keys();
    let mut figment = Figment::from(Serialized::defaults(AppConfig::default()));
    let file = file.map(Path::to_path_buf).or_else(|| std::env::var_os("OLLAMANET_CONFIG").map(PathBuf::from));
    match file {
        Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path)),
        Some(path) => figment = figment.merge(Toml::file(path)),
        None if Path::new(DEFAULT_FILE).exists() => figment = figment.merge(Toml::file(DEFAULT_FILE)),
        None => {}
    }
    // Only variables that name a configuration key: OLLAMANET_CONFIG and the test harness's
    // variables share the prefix but are not configuration.
    let env_known = known.clone();
    figment = figment.merge(
        Env::prefixed("OLLAMANET_")
            .split("__")
            .filter(move |k| env_known.contains(&first_segment(k.as_str()).to_ascii_lowercase())),
    );
    for (var, key) in [("DATABASE_URL", "database_url"), ("REDIS_URL", "redis_url"), ("AMQP_URL", "amqp_url")] {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            figment = figment.merge(Serialized::default(key, v));
        }
    }
    if let Some(listen) = &overrides.listen {
        figment = figment.merge(Serialized::default("listen", listen));
    }
    if let Some(dir) = &overrides.data_dir {
        figment = figment.merge(Serialized::default("data_dir", dir));
    }
    let given: BTreeMap<String, figment::value::Value> =
        figment.extract().map_err(|e| ConfigError::Figment(Box::new(e)))?;
    let unknown: Vec<_> = given.keys().filter(|k| !known.contains(k.as_str())).cloned().collect();
    if !unknown.is_empty() {
        return Err(ConfigError::UnknownKeys(unknown.join(", ")));
    }
    figment.extract().map_err(|e| ConfigError::Figment(Box::new(e)))
}

fn first_segment(key: &str) -> &str {
    key.split("__").next().and_then(|k| k.split('.').next()).unwrap_or_default()
}

fn top_level_keys() -> BTreeSet<String> {
    match serde_json::to_value(AppConfig::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

/// The configuration as TOML; with `redacted`, secrets are replaced by `***` (for printing).
pub fn to_toml(config: &AppConfig, redacted: bool) -> String {
    let mut value = serde_json::to_value(config).expect("config serializes");
    if redacted {
        kit::config::redact(&mut value);
    }
    strip_nulls(&mut value);
    toml::to_string_pretty(&value).unwrap_or_else(|e| format!("# cannot render: {e}"))
}

/// TOML has no null: unset options are simply absent.
fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
