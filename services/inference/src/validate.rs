//! What the service checks before it lets an outside value reach an engine.
//!
//! Engine URLs: which the platform will talk to. Announcements arrive over the bus, where a
//! publisher could otherwise redirect every conversation to a server of their choosing (the
//! original design accepted any URL), so an announced URL must be http(s), be on the operator's
//! allowlist (empty by default: no announcement is accepted until the operator says where engines
//! live), and not point into private, loopback or link-local address space unless the operator
//! allows it. A name is resolved when it is announced, and a name that does not resolve is
//! refused; the connections to an announced node resolve it again and check every address
//! ([`UrlPolicy::connector`]), so a name that later resolves into the platform's own network
//! (DNS rebinding) is refused at connect.
//!
//! Model names an admin asks a node to pull or delete: refused here with a clear error rather
//! than by the node with whatever it says.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use kit::upstream::{Resolve, SystemResolver};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlPolicy {
    /// Where engines may be announced: host patterns (`*.ngrok-free.app`, `gpu-3.internal`, `*`
    /// for anywhere) and addresses or ranges (`203.0.113.7`, `10.0.0.0/24`, `fd00::/8`). A name
    /// is allowed when it matches a pattern, or when every address it resolves to is in a range.
    /// Empty (the default): announcements are refused.
    pub allowed_hosts: Vec<Allowed>,
    /// Accept private (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), loopback and link-local
    /// targets anywhere. Off by default: an announcement must not be able to aim the platform at
    /// its own network. Addresses inside a range of `allowed_hosts` are accepted regardless: the
    /// operator named them.
    pub allow_private: bool,
    /// How names are resolved: the system's resolver (tests give a double).
    #[serde(skip)]
    pub resolver: Dns,
}

/// One entry of [`UrlPolicy::allowed_hosts`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Allowed {
    /// `*`, `*.example.com` or an exact host name.
    Host(String),
    /// An address (`/32` or `/128`) or a CIDR range.
    Range(IpNet),
}

impl std::str::FromStr for Allowed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Allowed::Range(IpNet::from(ip)));
        }
        if s.contains('/') {
            return s.parse::<IpNet>().map(Allowed::Range).map_err(|_| format!("{s:?} is not an address range"));
        }
        let name = s.strip_prefix("*.").unwrap_or(&s);
        let ok = s == "*"
            || (!name.is_empty()
                && name.len() <= 253
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')));
        ok.then_some(Allowed::Host(s.clone()))
            .ok_or_else(|| format!("{s:?} is not a host pattern (`*`, `*.example.com`, `host.example.com`)"))
    }
}

impl TryFrom<String> for Allowed {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Allowed> for String {
    fn from(a: Allowed) -> String {
        match a {
            Allowed::Host(h) => h,
            Allowed::Range(net) if net.prefix_len() == net.max_prefix_len() => net.addr().to_string(),
            Allowed::Range(net) => net.to_string(),
        }
    }
}

impl Allowed {
    /// Whether the host name (or address literal) itself is allowed.
    fn names(&self, host: &str) -> bool {
        match self {
            Allowed::Host(pattern) => host_matches(pattern, host),
            Allowed::Range(_) => false,
        }
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        match self {
            Allowed::Range(net) => net.contains(&ip.to_canonical()),
            Allowed::Host(_) => false,
        }
    }
}

/// The resolver a [`UrlPolicy`] resolves names with.
#[derive(Clone)]
pub struct Dns(pub Arc<dyn Resolve>);

impl Default for Dns {
    fn default() -> Self {
        Self(Arc::new(SystemResolver))
    }
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dns")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("not a URL: {0}")]
    Malformed(String),
    #[error("only http and https engines are supported")]
    Scheme,
    #[error("host {0} is not in the allowlist (inference.announce_policy.allowed_hosts)")]
    NotAllowed(String),
    #[error("{0} is a private, loopback or link-local address")]
    Private(String),
    #[error("host {0} does not resolve")]
    Unresolvable(String),
    #[error("URLs with credentials, a query or a fragment are not engine addresses")]
    Extras,
}

impl UrlPolicy {
    /// Checks `url` and returns it normalised (no trailing slash). A host name is resolved, and
    /// refused if it does not resolve or if any of its addresses is not allowed.
    pub async fn check(&self, url: &str) -> Result<String, UrlRefused> {
        let parsed: http::Uri = url.trim().parse().map_err(|_| UrlRefused::Malformed(url.to_owned()))?;
        match parsed.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(UrlRefused::Scheme),
        }
        let authority = parsed.authority().ok_or_else(|| UrlRefused::Malformed(url.to_owned()))?;
        if authority.as_str().contains('@') || parsed.query().is_some() || url.contains('#') {
            return Err(UrlRefused::Extras);
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        // A name no pattern allows and no range could: refused without asking DNS about it.
        let ranges = self.allowed_hosts.iter().any(|a| matches!(a, Allowed::Range(_)));
        if !ranges && !self.allowed_hosts.iter().any(|a| a.names(&host)) {
            return Err(UrlRefused::NotAllowed(host));
        }
        let addrs = self.resolve(&host).await?;
        self.admit(&host, &addrs)?;
        Ok(url.trim().trim_end_matches('/').to_owned())
    }

    /// A resolver for the connections to announced nodes: it resolves each time and refuses a
    /// name any of whose addresses this policy does not admit.
    pub fn connector(&self) -> Arc<dyn Resolve> {
        Arc::new(Checked(self.clone()))
    }

    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, UrlRefused> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        match self.resolver.0.resolve(host).await {
            Ok(addrs) if !addrs.is_empty() => Ok(addrs),
            _ => Err(UrlRefused::Unresolvable(host.to_owned())),
        }
    }

    /// Whether the platform may connect to `host` at `addrs`: the host is allowed by name or each
    /// address by a range, and no address is private unless private targets are allowed or a
    /// range names it.
    fn admit(&self, host: &str, addrs: &[IpAddr]) -> Result<(), UrlRefused> {
        let named = self.allowed_hosts.iter().any(|a| a.names(host));
        for ip in addrs {
            let listed = self.allowed_hosts.iter().any(|a| a.contains(ip));
            if !named && !listed {
                return Err(UrlRefused::NotAllowed(host.to_owned()));
            }
            if !listed && !self.allow_private && kit::net::is_private(ip) {
                return Err(UrlRefused::Private(ip.to_string()));
            }
        }
        Ok(())
    }
}

/// A [`UrlPolicy`] checking every resolution of an announced node's name.
struct Checked(UrlPolicy);

#[async_trait::async_trait]
impl Resolve for Checked {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        let refused = |e: UrlRefused| {
            tracing::warn!(host, error = %e, "connection to an announced engine refused");
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string())
        };
        let addrs = self.0.resolve(host).await.map_err(refused)?;
        self.0.admit(host, &addrs).map_err(refused)?;
        Ok(addrs)
    }
}

/// Checks a model name as Ollama writes one, `[host[:port]/][namespace/]model[:tag]`; the error
/// says what is wrong.
pub fn model_name(name: &str) -> Result<(), String> {
    fn part(what: &str, s: &str) -> Result<(), String> {
        let ok = !s.is_empty()
            && s.len() <= 80
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        ok.then_some(()).ok_or_else(|| {
            format!("the {what} {s:?} must be 1 to 80 letters, digits, `_`, `-` or `.`, starting with a letter, digit or `_`")
        })
    }
    let parts: Vec<&str> = name.split('/').collect();
    let (host, namespace, last) = match parts.as_slice() {
        [m] => (None, None, *m),
        [ns, m] => (None, Some(*ns), *m),
        [h, ns, m] => (Some(*h), Some(*ns), *m),
        _ => return Err("a model name is `[host/][namespace/]model[:tag]`".into()),
    };
    if let Some(h) = host {
        let ok = !h.is_empty()
            && h.len() <= 350
            && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
            && h.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!("the registry host {h:?} is not a host name"));
        }
    }
    if let Some(ns) = namespace {
        part("namespace", ns)?;
    }
    let (model, tag) = last.split_once(':').map_or((last, None), |(m, t)| (m, Some(t)));
    part("model", model)?;
    tag.map_or(Ok(()), |t| part("tag", t))
}

/// `*` matches any host; `*.example.com` any subdomain of example.com; otherwise exact.
fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.strip_suffix(suffix).is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn model_names_as_ollama_writes_them() {
        for good in ["llama3.2", "smollm2:135m", "me/tiny:q4_K_M", "localhost:5000/me/tiny:1b", "_x.y-z"] {
            assert_eq!(model_name(good), Ok(()), "{good}");
        }
        for bad in ["", "a/b/c/d", "../x", "x:..", "a b", "x:", ":tag", "ns/../m", "-x", "m:a:b", "x\n", "é"] {
            assert!(model_name(bad).is_err(), "{bad:?} must be refused");
        }
    }

    /// A DNS double: each name answers its list of answers in turn (the last one from then on);
    /// a name it does not know fails to resolve.
    #[derive(Default)]
    struct FakeDns(Mutex<HashMap<String, Vec<Vec<IpAddr>>>>);

    impl FakeDns {
        fn with(names: &[(&str, &[&[&str]])]) -> Dns {
            let map = names
                .iter()
                .map(|(name, answers)| {
                    let answers = answers.iter().map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect()).collect();
                    ((*name).to_owned(), answers)
                })
                .collect();
            Dns(Arc::new(FakeDns(Mutex::new(map))))
        }
    }

    #[async_trait::async_trait]
    impl Resolve for FakeDns {
        async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
            let mut map = self.0.lock().unwrap();
            let answers = map.get_mut(host).ok_or_else(|| std::io::Error::other("NXDOMAIN"))?;
            Ok(if answers.len() > 1 { answers.remove(0) } else { answers[0].clone() })
        }
    }

    fn policy(allowed: &[&str], dns: Dns) -> UrlPolicy {
        UrlPolicy {
            allowed_hosts: allowed.iter().map(|a| a.parse().unwrap()).collect(),
            allow_private: false,
            resolver: dns,
        }
    }

    #[tokio::test]
    async fn nothing_is_allowed_until_the_operator_says_where_engines_live() {
        let p = UrlPolicy {
            resolver: FakeDns::with(&[("gpu.example.com", &[&["93.184.216.34"]])]),
            ..UrlPolicy::default()
        };
        assert!(matches!(p.check("https://gpu.example.com").await, Err(UrlRefused::NotAllowed(_))));
        assert!(matches!(p.check("https://93.184.216.34").await, Err(UrlRefused::NotAllowed(_))));
    }

    #[tokio::test]
    async fn refuses_private_targets_and_foreign_schemes() {
        let dns = FakeDns::with(&[
            ("localhost", &[&["127.0.0.1", "::1"]]),
            ("mixed.example.com", &[&["93.184.216.34", "10.0.0.1"]]),
        ]);
        let p = policy(&["*"], dns);
        for bad in [
            "http://127.0.0.1:11434",
            "http://10.1.2.3:11434",
            "http://169.254.169.254/latest",
            "http://192.168.0.5",
            "http://[::1]:11434",
            "http://[fe80::1]:80",
            "http://[::ffff:10.0.0.1]",
            "http://[64:ff9b::7f00:1]",
            "http://[2002:a00:1::]",
            "http://100.64.0.1",
            "http://0.0.0.0:11434",
            "http://localhost:11434",
            "http://mixed.example.com",
            "ftp://example.com",
            "file:///etc/passwd",
            "http://user:pw@example.com",
            "not a url",
        ] {
            assert!(p.check(bad).await.is_err(), "{bad} must be refused");
        }
        assert_eq!(p.check("https://93.184.216.34/").await.unwrap(), "https://93.184.216.34");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_refused() {
        let p = policy(&["*.example.com"], FakeDns::with(&[]));
        assert_eq!(p.check("https://gone.example.com").await, Err(UrlRefused::Unresolvable("gone.example.com".into())));
    }

    #[tokio::test]
    async fn a_name_that_resolves_into_the_private_network_is_refused() {
        let dns =
            FakeDns::with(&[("inside.example.com", &[&["127.0.0.1"]]), ("lan.example.com", &[&["192.168.1.20"]])]);
        let p = policy(&["*.example.com"], dns);
        assert_eq!(p.check("http://inside.example.com").await, Err(UrlRefused::Private("127.0.0.1".into())));
        assert_eq!(p.check("http://lan.example.com").await, Err(UrlRefused::Private("192.168.1.20".into())));
    }

    /// DNS rebinding: the name is public when announced and loopback when connected to.
    #[tokio::test]
    async fn a_rebinding_name_is_refused_at_connect() {
        let dns = FakeDns::with(&[("rebind.example.com", &[&["93.184.216.34"], &["127.0.0.1"]])]);
        let p = policy(&["rebind.example.com"], dns);
        assert_eq!(p.check("http://rebind.example.com").await.unwrap(), "http://rebind.example.com");
        let refused = p.connector().resolve("rebind.example.com").await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
    }

    #[tokio::test]
    async fn the_connector_hands_over_exactly_the_checked_addresses() {
        let dns = FakeDns::with(&[("gpu.example.com", &[&["93.184.216.34"]])]);
        let p = policy(&["gpu.example.com"], dns);
        assert_eq!(
            p.connector().resolve("gpu.example.com").await.unwrap(),
            ["93.184.216.34".parse::<IpAddr>().unwrap()]
        );
        assert!(p.connector().resolve("other.example.com").await.is_err());
    }

    #[tokio::test]
    async fn ranges_allow_their_addresses_private_or_not() {
        let dns = FakeDns::with(&[("gpu-1.lan", &[&["10.0.0.7"]]), ("gpu-2.lan", &[&["10.0.1.7"]])]);
        let p = policy(&["10.0.0.0/24", "203.0.113.7"], dns);
        assert_eq!(p.check("http://10.0.0.5:11434").await.unwrap(), "http://10.0.0.5:11434");
        assert_eq!(p.check("http://gpu-1.lan:11434").await.unwrap(), "http://gpu-1.lan:11434");
        assert_eq!(p.check("https://203.0.113.7").await.unwrap(), "https://203.0.113.7");
        assert!(matches!(p.check("http://gpu-2.lan").await, Err(UrlRefused::NotAllowed(_))));
        assert!(matches!(p.check("http://10.0.1.5").await, Err(UrlRefused::NotAllowed(_))));
        assert!(matches!(p.check("http://127.0.0.1").await, Err(UrlRefused::NotAllowed(_))));
    }

    #[tokio::test]
    async fn patterns_and_the_private_opt_in() {
        let dns = FakeDns::with(&[("abc.ngrok-free.app", &[&["3.3.3.3"]])]);
        let p = UrlPolicy { allow_private: true, ..policy(&["*.ngrok-free.app"], dns) };
        assert!(p.check("https://abc.ngrok-free.app").await.is_ok());
        assert!(matches!(p.check("https://ngrok-free.app.evil.com").await, Err(UrlRefused::NotAllowed(_))));
        assert!(matches!(p.check("https://evilngrok-free.app").await, Err(UrlRefused::NotAllowed(_))));
        let local = UrlPolicy { allow_private: true, ..policy(&["*"], Dns::default()) };
        assert_eq!(local.check("http://127.0.0.1:11434/").await.unwrap(), "http://127.0.0.1:11434");
    }

    #[test]
    fn allowlist_entries_are_checked_when_read() {
        let read = |s: &str| serde_json::from_value::<UrlPolicy>(serde_json::json!({ "allowed_hosts": [s] }));
        for good in ["*", "*.ngrok-free.app", "gpu-3.internal", "10.0.0.0/8", "fd00::/8", "203.0.113.7"] {
            let policy = read(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(serde_json::to_value(&policy).unwrap()["allowed_hosts"][0], good, "round trip");
        }
        for bad in ["10.0.0.0/33", "a b", "http://x", "", "*.", "x/y"] {
            assert!(read(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
