//! What the service checks before it lets an outside value reach an engine.
//!
//! Engine URLs: which the platform will talk to. Announcements arrive over the bus, where anyone
//! who can publish could otherwise redirect every conversation to a server of their choosing (the
//! original design accepted any URL), so an announced URL must be http(s), match the allowlist,
//! and not point into private, loopback or link-local address space unless the operator allows it.
//!
//! Model names an admin asks a node to pull or delete: refused here with a clear error rather
//! than by the node with whatever it says.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlPolicy {
    /// Host patterns announced URLs must match: `*.ngrok-free.app`, `gpu-3.internal`, `*` for any.
    pub allowed_hosts: Vec<String>,
    /// Accept private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback and link-local targets.
    /// Off by default: an announcement must not be able to aim the platform at its own network.
    pub allow_private: bool,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        Self { allowed_hosts: vec!["*".into()], allow_private: false }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("not a URL: {0}")]
    Malformed(String),
    #[error("only http and https engines are supported")]
    Scheme,
    #[error("host {0} is not in the allowlist")]
    NotAllowed(String),
    #[error("{0} is a private, loopback or link-local address")]
    Private(String),
    #[error("URLs with credentials, a query or a fragment are not engine addresses")]
    Extras,
}

impl UrlPolicy {
    /// Checks `url` and returns it normalised (no trailing slash). A host name is also resolved
    /// and refused if any of its addresses is private.
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
        if !self.allowed_hosts.iter().any(|p| host_matches(p, &host)) {
            return Err(UrlRefused::NotAllowed(host));
        }
        if !self.allow_private {
            let port = parsed.port_u16().unwrap_or(if parsed.scheme_str() == Some("https") { 443 } else { 80 });
            let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map(|it| it.map(|a| a.ip()).collect())
                    .unwrap_or_default(),
            };
            if let Some(ip) = addrs.iter().find(|ip| kit::net::is_private(ip)) {
                return Err(UrlRefused::Private(ip.to_string()));
            }
        }
        Ok(url.trim().trim_end_matches('/').to_owned())
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

    #[tokio::test]
    async fn refuses_private_targets_and_foreign_schemes() {
        let p = UrlPolicy::default();
        for bad in [
            "http://127.0.0.1:11434",
            "http://10.1.2.3:11434",
            "http://169.254.169.254/latest",
            "http://192.168.0.5",
            "http://[::1]:11434",
            "http://[fe80::1]:80",
            "http://[::ffff:10.0.0.1]",
            "http://100.64.0.1",
            "http://localhost:11434",
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
    async fn allowlist_and_private_opt_in() {
        let p = UrlPolicy { allowed_hosts: vec!["*.ngrok-free.app".into()], allow_private: true };
        assert!(p.check("https://abc.ngrok-free.app").await.is_ok());
        assert!(matches!(p.check("https://ngrok-free.app.evil.com").await, Err(UrlRefused::NotAllowed(_))));
        assert!(matches!(p.check("https://evilngrok-free.app").await, Err(UrlRefused::NotAllowed(_))));
        let local = UrlPolicy { allowed_hosts: vec!["*".into()], allow_private: true };
        assert_eq!(local.check("http://127.0.0.1:11434/").await.unwrap(), "http://127.0.0.1:11434");
    }
}
