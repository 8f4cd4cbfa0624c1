use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Session cookies carry `Secure`; off only for plain-HTTP setups other than localhost
    /// (browsers keep `Secure` cookies on `http://localhost` and `http://127.0.0.1`).
    pub secure_cookies: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self { secure_cookies: true }
    }
}
