//! Infrastructure settings shared by every service, the runtime handles built from them, and
//! secret redaction for `ollamanet config print`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::bus::{Bus, BusSecret, Instance};
use crate::cache::{Cache, CacheError};
use crate::db::{Db, DbError, Migrations, PoolOptions};
use crate::telemetry::LogFormat;

/// Not `deny_unknown_fields`: the binary flattens it into its own config, which checks keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct InfraConfig {
    /// Where SQLite databases, keys and models live when nothing else is configured.
    pub data_dir: PathBuf,
    /// `postgres://…` (shared by all services of the process) or `sqlite://…`. Unset: one SQLite
    /// file per service under `data_dir`.
    pub database_url: Option<String>,
    pub database_max_connections: u32,
    /// `redis://…`. Unset: an in-memory cache per process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this deployment writes.
    pub cache_prefix: String,
    /// `amqp://…`. Unset: an in-process bus.
    pub amqp_url: Option<String>,
    /// Prefix of every exchange and queue name (several deployments on one broker).
    pub bus_namespace: String,
    /// The secret every process of the deployment signs and checks its RabbitMQ messages with
    /// (at least 32 characters, the same on every host). Required with `amqp_url`: on a shared
    /// broker, an unsigned message could come from anyone who can publish.
    pub bus_secret: Option<BusSecret>,
    pub log: LogConfig,
    /// Access-token issuer and audience.
    pub tokens: crate::tokens::TokenConfig,
    /// The bearer token that reads `/metrics` and the details of `/ready`. Unset: nobody can
    /// over the network (`/health` and `/ready`'s status stay open for probes).
    pub ops_token: Option<String>,
}

impl Default for InfraConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 16,
            redis_url: None,
            cache_prefix: "ollamanet:".into(),
            amqp_url: None,
            bus_namespace: String::new(),
            bus_secret: None,
            log: LogConfig::default(),
            tokens: crate::tokens::TokenConfig::default(),
            ops_token: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,ollamanet_gateway=debug`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        // sqlx, lapin and llama.cpp narrate routine work (queries, channels, every model load)
        // at info; their warnings still show.
        Self { format: LogFormat::Pretty, level: "info,sqlx=warn,lapin=warn,llama-cpp-2=warn".into() }
    }
}

/// The shared runtime handles of one process: every service in it uses the same cache and bus.
#[derive(Clone)]
pub struct Platform {
    pub config: InfraConfig,
    pub cache: Cache,
    pub bus: Bus,
    pub instance_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("cache: {0}")]
    Cache(#[from] CacheError),
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(
        "AMQP_URL is set but bus_secret is not: on a shared broker every message is signed with a secret \
         the deployment's processes share. Set bus_secret (OLLAMANET_BUS_SECRET) to the same random value on \
         every host, e.g. the output of `openssl rand -hex 32`"
    )]
    NoBusSecret,
    #[error("{0}")]
    WeakBusSecret(String),
}

impl Platform {
    /// Builds the cache and bus. Neither needs its server to be up: both degrade and recover.
    pub fn new(config: InfraConfig, bus_service: &str) -> Result<Self, PlatformError> {
        let bus_secret = match (&config.amqp_url, &config.bus_secret) {
            (None, _) => None,
            (Some(_), None) => return Err(PlatformError::NoBusSecret),
            (Some(_), Some(secret)) => {
                Some(secret.check().map(|()| secret.clone()).map_err(PlatformError::WeakBusSecret)?)
            }
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|e| PlatformError::DataDir(config.data_dir.clone(), e))?;
        // Metrics recorded before the recorder exists are lost: install it first.
        crate::telemetry::metrics();
        let instance_id = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
        let cache = match &config.redis_url {
            Some(url) => Cache::redis(url, &config.cache_prefix)?,
            None => Cache::memory(100_000),
        };
        let bus = match &config.amqp_url {
            Some(url) => Bus::rabbitmq(
                url,
                Instance {
                    namespace: config.bus_namespace.clone(),
                    service: bus_service.to_owned(),
                    id: instance_id.clone(),
                },
                bus_secret,
            ),
            None => Bus::in_process(),
        };
        Ok(Self { config, cache, bus, instance_id })
    }

    /// The database URL a service uses: the configured one, or its own SQLite file.
    pub fn database_url(&self, service: &str) -> String {
        match &self.config.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.config.data_dir.join(format!("{service}.db")).display()),
        }
    }

    /// Connects a service's database and applies its migrations.
    pub async fn database(&self, service: &str, migrations: &Migrations) -> Result<Db, DbError> {
        let opts = PoolOptions { max_connections: self.config.database_max_connections, ..PoolOptions::default() };
        Db::connect(&self.database_url(service), service, migrations, &opts).await
    }
}

/// Parses durations written like `15m`, `30s`, `500ms`, `7d`, `2h`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn parse(s: &str) -> Option<Duration> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit())?;
        let (n, unit) = s.split_at(split);
        let n: u64 = n.parse().ok()?;
        Some(match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86_400),
            _ => return None,
        })
    }

    pub fn format(d: &Duration) -> String {
        let ms = d.as_millis();
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if ms >= size && ms.is_multiple_of(size) {
                return format!("{}{unit}", ms / size);
            }
        }
        format!("{ms}ms")
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid duration {s:?} (use e.g. 500ms, 30s, 15m, 7d)")))
    }

    /// The same for an optional setting (`#[serde(default, with = "kit::config::duration::option")]`).
    pub mod option {
        use std::time::Duration;

        use serde::{Deserializer, Serializer};

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

/// Replaces secrets in a serialized config: values of keys that name a secret, and passwords in
/// URLs (`postgres://user:pass@host` → `postgres://user:***@host`).
pub fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let k = k.to_ascii_lowercase();
                let secret = k == "password"
                    || k.ends_with("_password")
                    || k.contains("secret")
                    || k == "key"
                    || k.ends_with("_key")
                    || k == "token"
                    || k.ends_with("_token");
                if secret && !v.is_null() && !v.is_object() {
                    *v = serde_json::Value::String("***".into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        serde_json::Value::String(s) => *s = redact_url(s),
        _ => {}
    }
}

fn redact_url(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else { return s.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return s.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_and_url_passwords() {
        let mut v = serde_json::json!({
            "database_url": "postgres://app:hunter2@db:5432/x",
            "auth": {"first_admin": {"password": "pw", "email": "a@b.c"}, "password_min_length": 10},
            "mail": {"smtp_url": "smtps://u:p@mail", "from": "x"},
            "redis_url": "redis://cache:6379",
            "ops_token": "t0k3n",
            "engine": {"key": "k3y", "keep_alive": "5m"},
            "inference": {"engine_key": "k3y", "nodes": ["http://a", {"url": "http://b", "key": "k3y"}]},
            "bus_secret": "0123456789abcdef0123456789abcdef"
        });
        redact(&mut v);
        assert_eq!(v["database_url"], "postgres://app:***@db:5432/x");
        assert_eq!(v["auth"]["first_admin"]["password"], "***");
        assert_eq!(v["auth"]["first_admin"]["email"], "a@b.c");
        assert_eq!(v["auth"]["password_min_length"], 10, "settings about passwords are not secrets");
        assert_eq!(v["mail"]["smtp_url"], "smtps://u:***@mail");
        assert_eq!(v["redis_url"], "redis://cache:6379");
        assert_eq!(v["ops_token"], "***");
        assert_eq!(v["engine"]["key"], "***");
        assert_eq!(v["engine"]["keep_alive"], "5m");
        assert_eq!(v["inference"]["engine_key"], "***");
        assert_eq!(v["bus_secret"], "***");
        assert_eq!(v["inference"]["nodes"], serde_json::json!(["http://a", {"url": "http://b", "key": "***"}]));
    }

    #[test]
    fn durations_round_trip() {
        for s in ["15m", "30s", "500ms", "7d", "2h"] {
            assert_eq!(duration::format(&duration::parse(s).unwrap()), s);
        }
        assert_eq!(duration::parse("90s"), Some(std::time::Duration::from_secs(90)));
        assert!(duration::parse("abc").is_none());
        assert!(duration::parse("10y").is_none());
    }
}
