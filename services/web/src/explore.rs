//! The explore pages: the model catalog, for anyone (the explore API serves anonymous callers
//! the public models; a signed-in visitor is asked for as themself, so their roles count).
//! Searching, filtering by tags or installed models, and paging are all plain links and a GET
//! form, so that every view has an address to share and works without JavaScript.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use crate::AppState;
use crate::error::render_private;
use crate::extract::{Path, Query};
use crate::markdown;
use crate::services::Page;
use crate::session::{Nav, Visitor};

/// Models on a page of the catalog.
const PAGE_SIZE: usize = 20;

#[derive(Deserialize)]
struct TagRef {
    name: String,
}

#[derive(Deserialize)]
struct TagCount {
    name: String,
    models: i64,
}

/// A catalog model, with the fields the pages show.
#[derive(Deserialize)]
struct Model {
    name: String,
    description: Option<String>,
    family: Option<String>,
    parameter_size: Option<String>,
    parameter_count: Option<i64>,
    quantization_level: Option<String>,
    context_length: Option<i64>,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    tags: Vec<TagRef>,
    /// Unknown until the model service has said which models its engines have.
    installed: Option<bool>,
}

impl Model {
    /// `7B` as the engine wrote it, or the count in the same style.
    fn parameters(&self) -> Option<String> {
        self.parameter_size.clone().or_else(|| {
            let n = self.parameter_count? as f64;
            let (scaled, unit) = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")]
                .into_iter()
                .find(|(scale, _)| n >= *scale)
                .map_or((n, ""), |(scale, unit)| (n / scale, unit));
            Some(format!("{}{unit}", (scaled * 10.0).round() / 10.0))
        })
    }

    /// What the list says of it in a line: family, size, whether an engine has it.
    fn facts(&self) -> String {
        let installed = (self.installed == Some(true)).then(|| "installed".to_owned());
        let parameters = self.parameters().map(|p| format!("{p} parameters"));
        [self.family.clone(), parameters, installed].into_iter().flatten().collect::<Vec<_>>().join(" · ")
    }

    /// The description's first paragraph, as safe HTML.
    fn summary(&self) -> Option<String> {
        let first = self.description.as_deref()?.trim().split("\n\n").next()?;
        (!first.is_empty()).then(|| markdown::to_html(first))
    }

    /// The whole description, as safe HTML.
    fn description_html(&self) -> Option<String> {
        self.description.as_deref().filter(|d| !d.trim().is_empty()).map(markdown::to_html)
    }

    /// The page's address.
    fn href(&self) -> String {
        format!("/explore/{}", self.name)
    }
}

/// The catalog view asked for (every field a string, so that any query string is a view).
#[derive(Default, Clone, Deserialize)]
pub struct Filters {
    #[serde(default)]
    q: String,
    /// Comma-separated tag names; models with all of them.
    #[serde(default)]
    tags: String,
    /// `true`: only the models some engine has.
    #[serde(default)]
    installed: String,
    #[serde(default)]
    cursor: String,
}

impl Filters {
    /// Whether the page shows the whole catalog (nothing to search or filter by).
    pub fn none(&self) -> bool {
        self.q.trim().is_empty() && self.tags.trim().is_empty() && self.installed.is_empty()
    }

    fn tags(&self) -> Vec<&str> {
        self.tags.split(',').map(str::trim).filter(|t| !t.is_empty()).collect()
    }

    fn installed(&self) -> bool {
        self.installed == "true"
    }

    /// The query string of this view (without `?`), page size aside.
    fn query(&self) -> String {
        let tags = self.tags().join(",");
        let installed = if self.installed() { "true" } else { "" };
        [("q", self.q.trim()), ("tags", tags.as_str()), ("installed", installed), ("cursor", self.cursor.as_str())]
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The address of this view.
    fn href(&self) -> String {
        match self.query() {
            q if q.is_empty() => "/explore".to_owned(),
            q => format!("/explore?{q}"),
        }
    }

    /// This view with `tag` added or taken away, from the first page.
    fn toggle(&self, tag: &str) -> String {
        let mut tags: Vec<&str> = self.tags();
        match tags.iter().position(|t| t.eq_ignore_ascii_case(tag)) {
            Some(at) => {
                tags.remove(at);
            }
            None => tags.push(tag),
        }
        Filters { tags: tags.join(","), cursor: String::new(), ..self.clone() }.href()
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.tags().iter().any(|t| t.eq_ignore_ascii_case(tag))
    }
}

/// A query string value or a path segment, percent-encoded.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Tag {
    name: String,
    models: i64,
    selected: bool,
    /// The view with the tag toggled.
    href: String,
}

#[derive(Template)]
#[template(path = "explore.html")]
struct CatalogPage<'a> {
    nav: Nav<'a>,
    filters: Filters,
    tags: Vec<Tag>,
    models: Vec<Model>,
    /// The next page's address, if there is one.
    next: Option<String>,
    /// The first page's address, when this is a later one.
    first: Option<String>,
}

/// The catalog: search, tags, the installed filter, pages.
pub async fn catalog(State(s): State<AppState>, visitor: Visitor, Query(filters): Query<Filters>) -> Response {
    let caller = visitor.member().ok();
    let models_path = format!("/api/explore/models?limit={PAGE_SIZE}&{}", filters.query());
    let models = s.explore.browse::<Page<Model>>(caller.as_ref(), &models_path);
    let tags = s.explore.browse::<Vec<TagCount>>(caller.as_ref(), "/api/explore/tags");
    let (models, tags) = match tokio::join!(models, tags) {
        (Ok(models), Ok(tags)) => (models, tags),
        (Err(e), _) | (_, Err(e)) => return visitor.respond(e),
    };
    let tags = tags
        .into_iter()
        .filter(|t| t.models > 0 || filters.has_tag(&t.name))
        .map(|t| Tag {
            selected: filters.has_tag(&t.name),
            href: filters.toggle(&t.name),
            name: t.name,
            models: t.models,
        })
        .collect();
    let next = models.next_cursor.map(|cursor| Filters { cursor, ..filters.clone() }.href());
    let first = (!filters.cursor.is_empty()).then(|| Filters { cursor: String::new(), ..filters.clone() }.href());
    let page = CatalogPage { nav: visitor.nav(), filters, tags, models: models.items, next, first };
    let page = render_private(&page);
    visitor.respond(page)
}

#[derive(Template)]
#[template(path = "explore_model.html")]
struct ModelPage<'a> {
    nav: Nav<'a>,
    model: Model,
}

/// A model's page; one the visitor may not see is not found.
pub async fn model(State(s): State<AppState>, visitor: Visitor, Path(name): Path<String>) -> Response {
    let caller = visitor.member().ok();
    let path = format!("/api/explore/models/{}", name.split('/').map(encode).collect::<Vec<_>>().join("/"));
    let model = match s.explore.browse::<Model>(caller.as_ref(), &path).await {
        Ok(model) => model,
        Err(e) => return visitor.respond(e),
    };
    let page = render_private(&ModelPage { nav: visitor.nav(), model });
    visitor.respond(page)
}
