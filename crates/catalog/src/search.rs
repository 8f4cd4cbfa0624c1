//! Listing models: word search over name, description and tags, filters, three orders, keyset
//! pages, and who may see what. The SQL is the same on both databases except for how a JSON
//! array parameter becomes rows (`json_each` / `jsonb_array_elements_text`), and every text
//! comparison is on lower-cased text computed in Rust, so both give the same results.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kit::db::Backend;
use kit::{Timestamp, with_db};
use serde::{Deserialize, Serialize};

use crate::error::CatalogError;
use crate::model::Model;
use crate::store::{ModelRow, model_columns};
use crate::{Catalog, Tag};

/// At most this many words of a query count.
const MAX_WORDS: usize = 8;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// By name, A to Z.
    #[default]
    Name,
    /// Most recently added first.
    Newest,
    /// Most requests first.
    MostUsed,
}

/// Which models a caller sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Admins: every model, deleted ones too when asked.
    All { deleted: bool },
    /// Public models, and restricted ones allowed to one of these roles.
    Roles(Vec<String>),
}

impl Visibility {
    /// What a caller with `roles` (none when anonymous) sees in explore.
    pub fn of(roles: &[String]) -> Self {
        if roles.iter().any(|r| r.eq_ignore_ascii_case(kit::authn::ADMIN_ROLE)) {
            Visibility::All { deleted: false }
        } else {
            let mut roles: Vec<String> = roles.iter().map(|r| r.to_lowercase()).collect();
            roles.sort();
            roles.dedup();
            Visibility::Roles(roles)
        }
    }
}

/// A list request. Every filter narrows: all `words`, all `tags`, all `capabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Search {
    pub words: Vec<String>,
    /// Tag names (case-insensitive).
    pub tags: Vec<String>,
    /// Only models with this tag.
    pub tag_id: Option<uuid::Uuid>,
    pub family: Option<String>,
    pub min_parameters: Option<i64>,
    pub max_parameters: Option<i64>,
    pub capabilities: Vec<String>,
    /// Only these models (those installed on some engine, as explore knows them).
    pub installed: Option<Vec<String>>,
    pub sort: Sort,
    pub cursor: Option<String>,
    pub limit: i64,
}

impl Search {
    /// The words of a free-text query, as they are matched: lower-case runs of letters and digits.
    pub fn with_query(mut self, q: &str) -> Self {
        self.words = words(q).into_iter().take(MAX_WORDS).collect();
        self
    }
}

/// Lower-case runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The text a model is searched in: its distinct words, each preceded by a space, so that
/// `LIKE '% word%'` finds a word that starts with `word`.
pub(crate) fn search_text(parts: &[&str]) -> String {
    let mut all: Vec<String> = parts.iter().flat_map(|p| words(p)).collect();
    all.sort();
    all.dedup();
    all.iter().map(|w| format!(" {w}")).collect()
}

/// Escapes `LIKE` wildcards in a value matched with `ESCAPE '\'`.
fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Where a page starts: after the last row of the previous one, in the page's order.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requests: Option<i64>,
}

fn invalid_cursor() -> CatalogError {
    CatalogError::BadRequest("invalid_cursor", "the cursor is not one this list gave".into())
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(s: &str, sort: Sort) -> Result<Self, CatalogError> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid_cursor())?;
        let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid_cursor())?;
        let fits = match sort {
            Sort::Name => true,
            Sort::Newest => c.created_at.is_some(),
            Sort::MostUsed => c.requests.is_some(),
        };
        if fits { Ok(c) } else { Err(invalid_cursor()) }
    }
}

/// `FROM`-able rows of the JSON array parameter `$n`, as `alias.value`.
/// Whether model `m` is visible: to everyone when `$all`, else when public or allowed to one of
/// the roles in the JSON array `$roles` (see [`Visibility::params`]).
pub(crate) fn visible_sql(backend: Backend, all: u8, roles: u8) -> String {
    format!(
        "(${all} OR m.public OR EXISTS (SELECT 1 FROM {} WHERE m.allowed_roles LIKE '%|' || r.value || '|%' ESCAPE '\\'))",
        rows_of(backend, roles, "r")
    )
}

impl Visibility {
    /// The parameters of [`visible_sql`]: whether everything is visible, and the roles as a JSON
    /// array of `LIKE` literals.
    pub(crate) fn params(&self) -> (bool, String) {
        let roles: Vec<String> = match self {
            Visibility::All { .. } => Vec::new(),
            Visibility::Roles(roles) => roles.iter().map(|r| like_literal(r)).collect(),
        };
        (matches!(self, Visibility::All { .. }), serde_json::to_string(&roles).unwrap_or_else(|_| "[]".into()))
    }
}

pub(crate) fn rows_of(backend: Backend, n: u8, alias: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_each(${n}) {alias}"),
        Backend::Postgres => format!("jsonb_array_elements_text(${n}::jsonb) {alias}(value)"),
    }
}

fn list_sql(backend: Backend, sort: Sort) -> String {
    let (after, order) = match sort {
        Sort::Name => ("($14 IS NULL OR m.name > $14)", "m.name"),
        Sort::Newest => (
            "($15 IS NULL OR m.created_at < $15 OR (m.created_at = $15 AND m.name > $14))",
            "m.created_at DESC, m.name",
        ),
        Sort::MostUsed => {
            ("($15 IS NULL OR m.requests < $15 OR (m.requests = $15 AND m.name > $14))", "m.requests DESC, m.name")
        }
    };
    format!(
        "SELECT {columns} FROM catalog_models m \
         WHERE ($1 OR m.deleted_at IS NULL) \
           AND {visible} \
           AND NOT EXISTS (SELECT 1 FROM {words} WHERE m.search_text NOT LIKE '% ' || w.value || '%') \
           AND NOT EXISTS (SELECT 1 FROM {tags} WHERE m.tag_names NOT LIKE '%|' || t.value || '|%' ESCAPE '\\') \
           AND NOT EXISTS (SELECT 1 FROM {caps} WHERE m.capabilities NOT LIKE '%|' || c.value || '|%' ESCAPE '\\') \
           AND ($7 IS NULL OR m.family = $7) \
           AND ($8 IS NULL OR m.parameter_count >= $8) \
           AND ($9 IS NULL OR m.parameter_count <= $9) \
           AND ($10 IS NULL OR EXISTS (SELECT 1 FROM catalog_model_tags mt WHERE mt.model = m.name AND mt.tag_id = $10)) \
           AND (NOT $12 OR m.name IN (SELECT value FROM {installed})) \
           AND {after} \
         ORDER BY {order} LIMIT $11",
        columns = model_columns!(),
        visible = visible_sql(backend, 2, 3),
        words = rows_of(backend, 4, "w"),
        tags = rows_of(backend, 5, "t"),
        caps = rows_of(backend, 6, "c"),
        installed = rows_of(backend, 13, "i"),
    )
}

impl Catalog {
    /// A page of the models `visibility` allows that match `search`: `limit + 1` rows, so the
    /// caller can tell whether another page follows, and the next page's cursor.
    pub async fn models(
        &self,
        visibility: &Visibility,
        search: &Search,
    ) -> Result<(Vec<Model>, Option<String>), CatalogError> {
        let cursor = search.cursor.as_deref().map(|c| Cursor::decode(c, search.sort)).transpose()?;
        let deleted = matches!(visibility, Visibility::All { deleted: true });
        let (all, roles) = visibility.params();
        let json = |items: Vec<String>| serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
        let tags = search.tags.iter().map(|t| like_literal(&t.to_lowercase())).collect();
        let caps = search.capabilities.iter().map(|c| like_literal(&c.to_lowercase())).collect();
        let sql = list_sql(self.db.backend(), search.sort);
        let rows: Vec<ModelRow> = with_db!(&self.db, |pool| {
            let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(deleted)
                .bind(all)
                .bind(roles)
                .bind(json(search.words.clone()))
                .bind(json(tags))
                .bind(json(caps))
                .bind(search.family.as_ref().map(|f| f.to_lowercase()))
                .bind(search.min_parameters)
                .bind(search.max_parameters)
                .bind(search.tag_id)
                .bind(search.limit + 1)
                .bind(search.installed.is_some())
                .bind(json(search.installed.clone().unwrap_or_default()))
                .bind(cursor.as_ref().map(|c| c.name.clone()));
            // `$15` is the second key of the order, when it has one.
            let query = match search.sort {
                Sort::Name => query,
                Sort::Newest => query.bind(cursor.as_ref().and_then(|c| c.created_at)),
                Sort::MostUsed => query.bind(cursor.as_ref().and_then(|c| c.requests)),
            };
            query.fetch_all(pool).await?
        });
        let more = rows.len() as i64 > search.limit;
        let names: Vec<String> = rows.iter().map(|r| r.name().to_owned()).collect();
        let mut tags = self.tags_of(&names).await?;
        let mut models: Vec<Model> = rows
            .into_iter()
            .take(usize::try_from(search.limit).unwrap_or(usize::MAX))
            .map(|r| {
                let t = tags.remove(r.name()).unwrap_or_default();
                r.into_model(t)
            })
            .collect();
        // Lists leave out the long texts; a model's own page has them.
        for m in &mut models {
            m.fields.template = None;
            m.fields.modelfile = None;
            m.fields.license = None;
        }
        let next = more.then(|| models.last()).flatten().map(|m| {
            Cursor {
                name: m.name.clone(),
                created_at: (search.sort == Sort::Newest).then_some(m.created_at),
                requests: (search.sort == Sort::MostUsed).then_some(m.requests),
            }
            .encode()
        });
        Ok((models, next))
    }

    /// The tags of each of `models`.
    pub(crate) async fn tags_of(
        &self,
        models: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<Tag>>, CatalogError> {
        let sql = format!(
            "SELECT mt.model, t.id, t.name FROM catalog_model_tags mt JOIN catalog_tags t ON t.id = mt.tag_id \
             WHERE mt.model IN (SELECT value FROM {}) ORDER BY t.name_key",
            rows_of(self.db.backend(), 1, "x")
        );
        let names = serde_json::to_string(models).unwrap_or_else(|_| "[]".into());
        let rows: Vec<(String, uuid::Uuid, String)> =
            with_db!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&names).fetch_all(pool).await?);
        let mut by_model: std::collections::HashMap<String, Vec<Tag>> = std::collections::HashMap::new();
        for (model, id, name) in rows {
            by_model.entry(model).or_default().push(Tag { id, name });
        }
        Ok(by_model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_case_runs_of_letters_and_digits() {
        assert_eq!(words("SmolLM2:135m, the small-one"), ["smollm2", "135m", "the", "small", "one"]);
        assert_eq!(search_text(&["b a", "a c"]), " a b c");
        assert_eq!(Search::default().with_query(&"w ".repeat(20)).words.len(), MAX_WORDS);
    }

    #[test]
    fn parameter_counts_take_suffixes() {
        assert_eq!(parameters("7b"), Some(7_000_000_000));
        assert_eq!(parameters("1.5B"), Some(1_500_000_000));
        assert_eq!(parameters("135m"), Some(135_000_000));
        assert_eq!(parameters("42"), Some(42));
        for bad in ["", "b", "-1", "x7b", "1e30", "nan"] {
            assert_eq!(parameters(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cursors_belong_to_their_order() {
        let c = Cursor { name: "m".into(), created_at: Some(Timestamp::now()), requests: None }.encode();
        assert!(Cursor::decode(&c, Sort::Newest).is_ok());
        assert!(Cursor::decode(&c, Sort::MostUsed).is_err());
        assert!(Cursor::decode("not a cursor", Sort::Name).is_err());
    }
}

/// The query string of a model list (explore's and the admin's).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Words that must all start a word of the name, description or tags.
    pub q: Option<String>,
    /// Comma-separated tag names; models with all of them.
    pub tags: Option<String>,
    pub family: Option<String>,
    /// Fewest parameters: a number, or with a suffix `k`, `m`, `b`, `t` (`1.5b`).
    pub min_parameters: Option<String>,
    pub max_parameters: Option<String>,
    /// Comma-separated capabilities; models with all of them (`tools,vision`).
    pub capabilities: Option<String>,
    pub sort: Option<Sort>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Explore only: only models installed on some engine.
    pub installed: Option<bool>,
    /// Admin lists only: include deleted models.
    pub deleted: Option<bool>,
}

impl ListQuery {
    pub fn search(&self) -> Result<Search, CatalogError> {
        let list = |s: &Option<String>| -> Vec<String> {
            s.as_deref()
                .map(|s| s.split(',').map(|i| i.trim().to_lowercase()).filter(|i| !i.is_empty()).collect())
                .unwrap_or_default()
        };
        let count = |field: &str, s: &Option<String>| {
            s.as_deref()
                .map(|s| {
                    parameters(s)
                        .ok_or_else(|| CatalogError::field(field, "invalid_count", "a number such as 7000000 or 7b"))
                })
                .transpose()
        };
        let search = Search {
            tags: list(&self.tags),
            tag_id: None,
            family: self.family.as_ref().map(|f| f.trim().to_lowercase()).filter(|f| !f.is_empty()),
            min_parameters: count("min_parameters", &self.min_parameters)?,
            max_parameters: count("max_parameters", &self.max_parameters)?,
            capabilities: list(&self.capabilities),
            installed: None,
            sort: self.sort.unwrap_or_default(),
            cursor: self.cursor.clone(),
            limit: i64::from(self.limit.unwrap_or(50).clamp(1, 100)),
            words: Vec::new(),
        };
        Ok(search.with_query(self.q.as_deref().unwrap_or_default()))
    }
}

/// `7000000`, `7m`, `1.5b` as a count.
fn parameters(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let (number, scale) = match s.char_indices().last()? {
        (i, 'k') => (&s[..i], 1e3),
        (i, 'm') => (&s[..i], 1e6),
        (i, 'b') => (&s[..i], 1e9),
        (i, 't') => (&s[..i], 1e12),
        _ => (s.as_str(), 1.0),
    };
    let n: f64 = number.parse().ok()?;
    let n = n * scale;
    (0.0..9e18).contains(&n).then_some(n.round() as i64)
}
