//! The route table: which public paths exist, which service answers them, and who may call them.
//!
//! ```toml
//! [[route]]
//! path = "/api/auth/keys/{id}"   # matchit syntax: {name} is one segment, {*rest} the remainder
//! methods = ["DELETE"]           # empty or absent: any method
//! service = "auth"
//! auth = "authenticated"         # or "anonymous" (default: authenticated)
//! roles = []                     # any of these roles is required
//! upstream = "/api/auth/keys/{id}"  # optional rewrite; defaults to the public path
//! rate_limit = "credentials"     # optional extra rate-limit class
//! timeout = "30s"                # optional, time to response headers
//! body_limit = 1048576           # optional, bytes
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::metrics::RouteMetrics;

/// The table compiled into every build; a `routes_file` replaces it.
pub const DEFAULT_ROUTES: &str = include_str!("default_routes.toml");

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Anonymous,
    #[default]
    Authenticated,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub path: String,
    #[serde(default)]
    pub methods: Vec<String>,
    pub service: String,
    #[serde(default)]
    pub auth: Access,
    #[serde(default)]
    pub roles: Vec<String>,
    pub upstream: Option<String>,
    pub rate_limit: Option<String>,
    #[serde(default, with = "optional_duration")]
    pub timeout: Option<Duration>,
    pub body_limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    #[serde(rename = "route", default)]
    pub routes: Vec<RouteSpec>,
}

/// A compiled route.
#[derive(Debug)]
pub struct Rule {
    pub path: String,
    /// Empty: any method.
    pub methods: Vec<Method>,
    pub service: String,
    pub access: Access,
    pub roles: Vec<String>,
    upstream: Option<Template>,
    pub rate_limit: Option<String>,
    pub timeout: Option<Duration>,
    pub body_limit: Option<u64>,
    pub metrics: RouteMetrics,
}

impl Rule {
    pub fn requires_identity(&self) -> bool {
        self.access == Access::Authenticated || !self.roles.is_empty()
    }

    fn accepts(&self, method: &Method) -> bool {
        self.methods.is_empty()
            || self.methods.contains(method)
            || (method == Method::HEAD && self.methods.contains(&Method::GET))
    }

    /// The upstream path for a matched request (parameters substituted, still percent-encoded),
    /// or `None` when the route forwards its public path unchanged.
    pub fn rewrite(&self, params: &matchit::Params<'_, '_>) -> Option<String> {
        self.upstream.as_ref().map(|t| t.render(params))
    }
}

/// An upstream path template: literal text and `{name}` placeholders.
#[derive(Debug)]
struct Template(Vec<Piece>);

#[derive(Debug)]
enum Piece {
    Text(String),
    Param(String),
}

impl Template {
    fn parse(s: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').ok_or_else(|| format!("unclosed {{ in upstream {s:?}"))? + open;
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            pieces.push(Piece::Param(rest[open + 1..close].trim_start_matches('*').to_owned()));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self(pieces))
    }

    fn params(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Param(n) => Some(n.as_str()),
            Piece::Text(_) => None,
        })
    }

    fn render(&self, params: &matchit::Params<'_, '_>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Param(n) => out.push_str(params.get(n).unwrap_or_default()),
            }
        }
        out
    }
}

/// The compiled table. Rules sharing a path are grouped so that a path that exists with other
/// methods answers 405, not 404.
#[derive(Debug)]
pub struct RouteTable {
    router: matchit::Router<usize>,
    groups: Vec<Vec<Arc<Rule>>>,
    /// The services the table names, for start-up warnings.
    pub services: BTreeSet<String>,
}

pub enum Lookup<'t, 'p> {
    Found(&'t Arc<Rule>, matchit::Params<'t, 'p>),
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("route table is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("route {path}: {reason}")]
    Route { path: String, reason: String },
}

impl RouteTable {
    pub fn parse(toml_text: &str) -> Result<Self, TableError> {
        let file: RouteFile = toml::from_str(toml_text)?;
        Self::compile(file.routes)
    }

    pub fn compile(specs: Vec<RouteSpec>) -> Result<Self, TableError> {
        let mut router = matchit::Router::new();
        let mut groups: Vec<Vec<Arc<Rule>>> = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        let mut services = BTreeSet::new();
        for spec in specs {
            let err = |reason: String| TableError::Route { path: spec.path.clone(), reason };
            if !spec.path.starts_with('/') {
                return Err(err("path must start with /".into()));
            }
            let methods = spec
                .methods
                .iter()
                .map(|m| {
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| err(format!("bad method {m}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let upstream = spec.upstream.as_deref().map(Template::parse).transpose().map_err(err)?;
            if let Some(t) = &upstream {
                let declared = path_params(&spec.path);
                if let Some(unknown) = t.params().find(|p| !declared.iter().any(|d| d == p)) {
                    return Err(err(format!("upstream uses {{{unknown}}}, which the path does not declare")));
                }
            }
            services.insert(spec.service.clone());
            let rule = Arc::new(Rule {
                metrics: RouteMetrics::new(&spec.service, &spec.path),
                path: spec.path.clone(),
                methods,
                service: spec.service,
                access: spec.auth,
                roles: spec.roles,
                upstream,
                rate_limit: spec.rate_limit,
                timeout: spec.timeout,
                body_limit: spec.body_limit,
            });
            match paths.iter().position(|p| *p == spec.path) {
                Some(i) => {
                    let overlap = groups[i].iter().any(|r| {
                        r.methods.is_empty()
                            || rule.methods.is_empty()
                            || r.methods.iter().any(|m| rule.methods.contains(m))
                    });
                    if overlap {
                        return Err(err("another route has the same path and an overlapping method".into()));
                    }
                    groups[i].push(rule);
                }
                None => {
                    router.insert(spec.path.clone(), groups.len()).map_err(|e| err(e.to_string()))?;
                    paths.push(spec.path);
                    groups.push(vec![rule]);
                }
            }
        }
        Ok(Self { router, groups, services })
    }

    pub fn lookup<'t, 'p>(&'t self, method: &Method, path: &'p str) -> Lookup<'t, 'p> {
        let Ok(m) = self.router.at(path) else { return Lookup::NotFound };
        let group = &self.groups[*m.value];
        match group.iter().find(|r| r.accepts(method)) {
            Some(rule) => Lookup::Found(rule, m.params),
            None => Lookup::MethodNotAllowed(group.iter().flat_map(|r| r.methods.iter().cloned()).collect()),
        }
    }

    /// Every rule, for the role matrix and for filtering the merged OpenAPI document.
    pub fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.groups.iter().flatten()
    }
}

fn path_params(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}'))
        .map(|(p, _)| p.trim_start_matches('*').to_owned())
        .collect()
}

mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => kit::config::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                kit::config::duration::parse(&s)
                    .ok_or_else(|| serde::de::Error::custom(format!("invalid duration {s:?}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(toml: &str) -> RouteTable {
        RouteTable::parse(toml).unwrap()
    }

    #[test]
    fn default_table_compiles() {
        let t = table(DEFAULT_ROUTES);
        assert!(t.services.contains("auth"));
    }

    #[test]
    fn matches_methods_and_reports_405() {
        let t = table(
            r#"
            [[route]]
            path = "/api/x/{id}"
            methods = ["GET"]
            service = "s"
            [[route]]
            path = "/api/x/{id}"
            methods = ["DELETE"]
            service = "s"
            roles = ["Admin"]
            "#,
        );
        assert!(matches!(t.lookup(&Method::GET, "/api/x/1"), Lookup::Found(r, _) if r.roles.is_empty()));
        assert!(matches!(t.lookup(&Method::HEAD, "/api/x/1"), Lookup::Found(..)));
        assert!(matches!(t.lookup(&Method::DELETE, "/api/x/1"), Lookup::Found(r, _) if r.roles == ["Admin"]));
        assert!(matches!(t.lookup(&Method::POST, "/api/x/1"), Lookup::MethodNotAllowed(m) if m.len() == 2));
        assert!(matches!(t.lookup(&Method::GET, "/api/y"), Lookup::NotFound));
    }

    #[test]
    fn rewrites_upstream_paths() {
        let t = table(
            r#"
            [[route]]
            path = "/v1/explore/{*rest}"
            upstream = "/api/explore/{rest}"
            service = "explore"
            auth = "anonymous"
            "#,
        );
        let Lookup::Found(rule, params) = t.lookup(&Method::GET, "/v1/explore/models/a%20b") else { panic!() };
        assert_eq!(rule.rewrite(&params).as_deref(), Some("/api/explore/models/a%20b"));
    }

    #[test]
    fn rejects_bad_tables() {
        for bad in [
            "[[route]]\npath = \"x\"\nservice = \"s\"",
            "[[route]]\npath = \"/a\"\nservice = \"s\"\nupstream = \"/b/{id}\"",
            "[[route]]\npath = \"/a\"\nservice = \"s\"\nmethods=[\"GET\"]\n[[route]]\npath = \"/a\"\nservice = \"t\"",
            "[[route]]\npath = \"/a\"\nservice = \"s\"\ncolour = \"red\"",
            "[[route]]\npath = \"/a\"\nservice = \"s\"\ntimeout = \"soon\"",
        ] {
            assert!(RouteTable::parse(bad).is_err(), "{bad}");
        }
    }
}
