//! What a request may do to an engine's memory. `keep_alive` and the runner options (`num_ctx`,
//! `num_gpu`, …) decide how long a model stays loaded and how it is loaded; one caller's values
//! apply to everyone who uses the same model on that node (a different `num_ctx` reloads it,
//! `keep_alive: 0` unloads it). Admins' requests pass as they are; everyone else's are brought
//! within `[inference.limits]` before they are relayed.

use std::collections::BTreeMap;
use std::time::Duration;

use kit::authn::{ADMIN_ROLE, Identity};
use ollama_api::types::{ChatRequest, EmbedRequest, EmbeddingsRequest, GenerateRequest, KeepAlive, Lifetime, Options};
use serde::{Deserialize, Serialize};

/// `[inference.limits]`: the limits of every caller but admins; `roles` loosens them for the
/// holders of a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadLimits {
    /// Longest `keep_alive` a request may set; a longer one, or a negative one (forever), is cut
    /// to this.
    #[serde(with = "kit::config::duration")]
    pub keep_alive_max: Duration,
    /// Shortest `keep_alive` a request may set; a shorter one is removed, so that the node's own
    /// keep-alive applies (a caller cannot have a model others use unloaded as soon as it is idle).
    #[serde(with = "kit::config::duration")]
    pub keep_alive_min: Duration,
    /// Whether `keep_alive: 0` (unload once answered) is honoured rather than removed.
    pub unload: bool,
    /// Largest `options.num_ctx`; a larger one is cut to this. Unset: `num_ctx` is removed and the
    /// node's own context size applies, so that no request reloads a model with another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_ctx_max: Option<u32>,
    /// Looser limits for the holders of a role (names compare case-insensitively), e.g.
    /// `[inference.limits.roles.Research] num_ctx_max = 32768`. A setting a role leaves out is the
    /// one above; a caller with several roles gets, setting by setting, the most generous.
    pub roles: BTreeMap<String, RoleLimits>,
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            keep_alive_max: Duration::from_secs(30 * 60),
            keep_alive_min: Duration::from_secs(5 * 60),
            unload: false,
            num_ctx_max: None,
            roles: BTreeMap::new(),
        }
    }
}

/// One role's settings of [`LoadLimits`]; each one left out is the general one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleLimits {
    #[serde(with = "kit::config::duration::option", skip_serializing_if = "Option::is_none")]
    pub keep_alive_max: Option<Duration>,
    #[serde(with = "kit::config::duration::option", skip_serializing_if = "Option::is_none")]
    pub keep_alive_min: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unload: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_ctx_max: Option<u32>,
}

/// The limits that apply to one caller.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Effective {
    keep_alive_max: Duration,
    keep_alive_min: Duration,
    unload: bool,
    num_ctx_max: Option<u32>,
}

/// A native request whose load settings can be limited.
pub trait LoadSettings {
    fn load_settings(&mut self) -> (&mut Option<KeepAlive>, &mut Option<Options>);
}

macro_rules! load_settings {
    ($($t:ty),*) => {$(
        impl LoadSettings for $t {
            fn load_settings(&mut self) -> (&mut Option<KeepAlive>, &mut Option<Options>) {
                (&mut self.keep_alive, &mut self.options)
            }
        }
    )*};
}

load_settings!(ChatRequest, GenerateRequest, EmbedRequest, EmbeddingsRequest);

impl LoadLimits {
    fn for_caller(&self, who: &Identity) -> Effective {
        let mut e = Effective {
            keep_alive_max: self.keep_alive_max,
            keep_alive_min: self.keep_alive_min,
            unload: self.unload,
            num_ctx_max: self.num_ctx_max,
        };
        for role in self.roles.iter().filter(|(role, _)| who.has_role(role)).map(|(_, limits)| limits) {
            e.keep_alive_max = e.keep_alive_max.max(role.keep_alive_max.unwrap_or(self.keep_alive_max));
            e.keep_alive_min = e.keep_alive_min.min(role.keep_alive_min.unwrap_or(self.keep_alive_min));
            e.unload |= role.unload.unwrap_or(self.unload);
            e.num_ctx_max = e.num_ctx_max.max(role.num_ctx_max.or(self.num_ctx_max));
        }
        e
    }

    /// Brings `req` within the caller's limits (admins: unchanged).
    pub fn apply(&self, who: &Identity, req: &mut impl LoadSettings) {
        if who.has_role(ADMIN_ROLE) {
            return;
        }
        let limits = self.for_caller(who);
        let (keep_alive, options) = req.load_settings();
        *keep_alive = keep_alive.take().and_then(|k| limits.keep_alive(k));
        if let Some(options) = options {
            limits.options(options);
        }
    }
}

impl Effective {
    fn keep_alive(&self, asked: KeepAlive) -> Option<KeepAlive> {
        match asked.lifetime() {
            Lifetime::For(d) if d.is_zero() => self.unload.then_some(asked),
            Lifetime::For(d) if d < self.keep_alive_min => None,
            Lifetime::For(d) if d <= self.keep_alive_max => Some(asked),
            _ => Some(KeepAlive::from(self.keep_alive_max)),
        }
    }

    fn options(&self, o: &mut Options) {
        o.num_ctx = match (o.num_ctx, self.num_ctx_max) {
            (Some(n), Some(max)) => Some(n.min(i64::from(max))),
            _ => None,
        };
        // How the model is placed in memory is the node's business: any of these differing
        // from the loaded model's reloads it.
        o.num_batch = None;
        o.num_gpu = None;
        o.main_gpu = None;
        o.num_thread = None;
        o.numa = None;
        o.low_vram = None;
        o.vocab_only = None;
        o.use_mmap = None;
        o.use_mlock = None;
    }
}

#[cfg(test)]
mod tests {
    use kit::authn::CredentialKind;
    use uuid::Uuid;

    use super::*;

    fn caller(roles: &[&str]) -> Identity {
        Identity {
            user_id: Uuid::now_v7(),
            email: "u@example.com".into(),
            username: "u".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            token_version: 0,
            credential: CredentialKind::AccessToken,
        }
    }

    fn chat(keep_alive: serde_json::Value, num_ctx: i64) -> ChatRequest {
        serde_json::from_value(serde_json::json!({
            "model": "m", "keep_alive": keep_alive, "options": {"num_ctx": num_ctx, "num_gpu": 0, "temperature": 0.5}
        }))
        .unwrap()
    }

    fn limited(limits: &LoadLimits, who: &Identity, keep_alive: serde_json::Value, num_ctx: i64) -> serde_json::Value {
        let mut req = chat(keep_alive, num_ctx);
        limits.apply(who, &mut req);
        serde_json::to_value(&req).unwrap()
    }

    #[test]
    fn users_cannot_unload_shorten_pin_or_resize() {
        let limits = LoadLimits::default();
        let user = caller(&["User"]);
        for (asked, sent) in [
            (serde_json::json!(0), None),
            (serde_json::json!("0s"), None),
            (serde_json::json!("10s"), None),
            (serde_json::json!(-1), Some(serde_json::json!("30m0s"))),
            (serde_json::json!("48h"), Some(serde_json::json!("30m0s"))),
            (serde_json::json!("10m"), Some(serde_json::json!("10m"))),
            (serde_json::json!(600), Some(serde_json::json!(600))),
        ] {
            let req = limited(&limits, &user, asked.clone(), 100_000);
            assert_eq!(req.get("keep_alive"), sent.as_ref(), "{asked}");
            assert_eq!(req["options"], serde_json::json!({"temperature": 0.5}), "{asked}");
        }
    }

    #[test]
    fn admins_are_not_limited() {
        let req = limited(&LoadLimits::default(), &caller(&["User", "admin"]), serde_json::json!(0), 100_000);
        assert_eq!(req["keep_alive"], 0);
        assert_eq!(req["options"]["num_ctx"], 100_000);
        assert_eq!(req["options"]["num_gpu"], 0);
    }

    #[test]
    fn roles_loosen_setting_by_setting() {
        let mut limits = LoadLimits { keep_alive_max: Duration::from_secs(600), ..LoadLimits::default() };
        limits.roles.insert("Research".into(), RoleLimits { num_ctx_max: Some(8192), ..RoleLimits::default() });
        limits.roles.insert(
            "Ops".into(),
            RoleLimits { unload: Some(true), keep_alive_max: Some(Duration::from_secs(3600)), ..RoleLimits::default() },
        );
        let researcher = caller(&["User", "research"]);
        let req = limited(&limits, &researcher, serde_json::json!(-1), 100_000);
        assert_eq!((req["keep_alive"].as_str(), req["options"]["num_ctx"].as_i64()), (Some("10m0s"), Some(8192)));
        assert_eq!(limited(&limits, &researcher, serde_json::json!(0), 4096)["options"]["num_ctx"], 4096);
        assert!(limited(&limits, &researcher, serde_json::json!(0), 4096).get("keep_alive").is_none());

        let both = caller(&["Research", "Ops"]);
        let req = limited(&limits, &both, serde_json::json!(0), 100_000);
        assert_eq!((req["keep_alive"].as_i64(), req["options"]["num_ctx"].as_i64()), (Some(0), Some(8192)));
        assert_eq!(limited(&limits, &both, serde_json::json!("2h"), 1)["keep_alive"], "1h0m0s");
    }
}
