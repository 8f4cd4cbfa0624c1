use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use kit::ratelimit::{IpPrefixes, Quota};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// A TOML route table replacing the built-in one; re-read when it changes.
    pub routes_file: Option<PathBuf>,
    /// How often the route file is checked for changes.
    #[serde(with = "kit::config::duration")]
    pub reload_interval: Duration,
    /// Largest request body a route accepts unless it says otherwise, in bytes.
    pub body_limit: u64,
    /// How long an upstream may take to start answering, unless the route says otherwise.
    #[serde(with = "kit::config::duration")]
    pub request_timeout: Duration,
    /// A client must send its request head within this time.
    #[serde(with = "kit::config::duration")]
    pub header_read_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed (a load balancer in front of the gateway).
    pub trusted_proxies: Vec<IpAddr>,
    pub cors: CorsConfig,
    pub rate_limits: RateLimits,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            routes_file: None,
            reload_interval: Duration::from_secs(1),
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
            cors: CorsConfig::default(),
            rate_limits: RateLimits::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser, e.g. `https://chat.example.com`.
    /// Empty: no cross-origin access. `["*"]`: any origin, but then never with credentials.
    pub allowed_origins: Vec<String>,
    #[serde(with = "kit::config::duration")]
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), max_age: Duration::from_secs(600) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Requests without a valid credential, per client IP.
    pub anonymous: Quota,
    /// Authenticated requests, per user.
    pub authenticated: Quota,
    /// Named classes that routes opt into with `rate_limit = "<name>"`, counted per client IP
    /// on top of the above (e.g. the credential endpoints).
    pub classes: BTreeMap<String, Quota>,
    /// How many leading bits of a client's address are one client for the per-IP limits:
    /// `ipv4 = 32`, `ipv6 = 64` (a subscriber's whole /64 shares one budget).
    pub ip_prefixes: IpPrefixes,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            anonymous: Quota { per_minute: 600, burst: 100 },
            authenticated: Quota { per_minute: 1200, burst: 300 },
            classes: BTreeMap::from([("credentials".to_owned(), Quota { per_minute: 20, burst: 10 })]),
            ip_prefixes: IpPrefixes::default(),
        }
    }
}
