//! Model names as Ollama writes them: `[host/][namespace/]model[:tag]`.

use std::fmt;
use std::path::PathBuf;

pub const DEFAULT_HOST: &str = "registry.ollama.ai";
pub const DEFAULT_NAMESPACE: &str = "library";
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName {
    pub host: String,
    pub namespace: String,
    pub model: String,
    pub tag: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid model name {0:?}")]
pub struct InvalidName(pub String);

fn part_ok(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s != "."
        && s != ".."
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn host_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 350
        && s != "."
        && s != ".."
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

impl ModelName {
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let bad = || InvalidName(s.to_owned());
        let s_trim = s.trim();
        if s_trim.is_empty() {
            return Err(bad());
        }
        let parts: Vec<&str> = s_trim.split('/').collect();
        let (host, namespace, last) = match parts.as_slice() {
            [m] => (DEFAULT_HOST, DEFAULT_NAMESPACE, *m),
            [ns, m] => (DEFAULT_HOST, *ns, *m),
            [h, ns, m] => (*h, *ns, *m),
            _ => return Err(bad()),
        };
        let (model, tag) = match last.split_once(':') {
            Some((m, t)) => (m, t),
            None => (last, DEFAULT_TAG),
        };
        if !host_ok(host) || !part_ok(namespace, 80) || !part_ok(model, 80) || !part_ok(tag, 80) {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            namespace: namespace.to_ascii_lowercase(),
            model: model.to_ascii_lowercase(),
            tag: tag.to_owned(),
        })
    }

    /// The manifest's path below `manifests/`.
    pub fn manifest_rel_path(&self) -> PathBuf {
        [&self.host, &self.namespace, &self.model, &self.tag].iter().collect()
    }

    /// The shortest form that parses back to this name (`model:tag` for the default host and
    /// namespace), as `/api/tags` shows it.
    pub fn display_short(&self) -> String {
        if self.host == DEFAULT_HOST && self.namespace == DEFAULT_NAMESPACE {
            format!("{}:{}", self.model, self.tag)
        } else if self.host == DEFAULT_HOST {
            format!("{}/{}:{}", self.namespace, self.model, self.tag)
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}:{}", self.host, self.namespace, self.model, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults() {
        let n = ModelName::parse("llama3.2").unwrap();
        assert_eq!(n.to_string(), "registry.ollama.ai/library/llama3.2:latest");
        assert_eq!(n.display_short(), "llama3.2:latest");
        let n = ModelName::parse("me/tiny:1b").unwrap();
        assert_eq!(n.display_short(), "me/tiny:1b");
        let n = ModelName::parse("localhost:5000/me/tiny:q4").unwrap();
        assert_eq!(
            (n.host.as_str(), n.namespace.as_str(), n.model.as_str(), n.tag.as_str()),
            ("localhost:5000", "me", "tiny", "q4")
        );
        assert_eq!(ModelName::parse("Tiny:Q4").unwrap().display_short(), "tiny:Q4");
    }

    #[test]
    fn refuses_bad_names() {
        for bad in ["", "a/b/c/d", "../x", "x:..", "a b", "x:", ":tag", "ns/../m", "h/../m"] {
            assert!(ModelName::parse(bad).is_err(), "{bad}");
        }
    }
}
