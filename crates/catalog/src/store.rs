//! Models: reading them, and every change (each in one transaction with its `catalog.*` event
//! and its audit record).

use kit::audit::AuditRecord;
use kit::authn::Identity;
use kit::bus::Event;
use kit::db::BeginWrite;
use kit::{Timestamp, with_db};
use serde_json::json;

use crate::error::CatalogError;
use crate::model::{Access, Model, ModelChange, ModelFields};
use crate::{Catalog, MODEL_CHANGED, ModelChanged, NAME};

/// The columns of a [`ModelRow`], in its order.
macro_rules! model_columns {
    () => {
        "m.name, m.description, m.version, m.size_bytes, m.digest, m.format, m.family, m.families, \
         m.parameter_size, m.parameter_count, m.quantization_level, m.quantization_version, m.architecture, \
         m.file_type, m.context_length, m.license, m.template, m.modelfile, m.languages, m.reference_url, \
         m.image_url, m.capabilities, m.released_at, m.public, m.allowed_roles, m.requests, m.created_at, \
         m.updated_at, m.deleted_at"
    };
}
pub(crate) use model_columns;

/// Writes every descriptive column and the access rule of the model `$name` on `$conn`, from
/// [`ModelFields`] `$f` and [`Access`] `$a`.
macro_rules! write_fields {
    ($conn:expr, $name:expr, $f:expr, $a:expr, $now:expr) => {
        sqlx::query(
            "UPDATE catalog_models SET description = $2, version = $3, size_bytes = $4, digest = $5, format = $6, \
             family = $7, families = $8, parameter_size = $9, parameter_count = $10, quantization_level = $11, \
             quantization_version = $12, architecture = $13, file_type = $14, context_length = $15, license = $16, \
             template = $17, modelfile = $18, languages = $19, reference_url = $20, image_url = $21, \
             capabilities = $22, released_at = $23, public = $24, allowed_roles = $25, updated_at = $26 \
             WHERE name = $1",
        )
        .bind($name)
        .bind($f.description.as_deref().unwrap_or_default())
        .bind(&$f.version)
        .bind($f.size)
        .bind(&$f.digest)
        .bind(&$f.format)
        .bind(&$f.family)
        .bind(encode_list(&$f.families))
        .bind(&$f.parameter_size)
        .bind($f.parameter_count)
        .bind(&$f.quantization_level)
        .bind($f.quantization_version)
        .bind(&$f.architecture)
        .bind(&$f.file_type)
        .bind($f.context_length)
        .bind(&$f.license)
        .bind(&$f.template)
        .bind(&$f.modelfile)
        .bind(encode_list(&$f.languages))
        .bind(&$f.reference_link)
        .bind(&$f.image_url)
        .bind(encode_list(&$f.capabilities))
        .bind($f.released_at)
        .bind($a.public)
        .bind(encode_list(&$a.roles))
        .bind($now)
        .execute(&mut *$conn)
        .await?
    };
}

/// Recomputes the derived columns of the model `$name` on `$conn` (its tag names and search
/// words), after a change to its name, description or tags.
macro_rules! refresh_derived {
    ($conn:expr, $name:expr) => {{
        let description: String = sqlx::query_scalar("SELECT description FROM catalog_models WHERE name = $1")
            .bind($name)
            .fetch_one(&mut *$conn)
            .await?;
        let tags: Vec<String> = sqlx::query_scalar(
            "SELECT t.name FROM catalog_model_tags mt JOIN catalog_tags t ON t.id = mt.tag_id WHERE mt.model = $1",
        )
        .bind($name)
        .fetch_all(&mut *$conn)
        .await?;
        let keys: Vec<String> = tags.iter().map(|t| t.to_lowercase()).collect();
        sqlx::query("UPDATE catalog_models SET tag_names = $2, search_text = $3 WHERE name = $1")
            .bind($name)
            .bind($crate::store::encode_list(&keys))
            .bind($crate::search::search_text(&[$name, &description, &tags.join(" ")]))
            .execute(&mut *$conn)
            .await?;
    }};
}
pub(crate) use refresh_derived;

/// Adds `$event` and the audit record `$audit` to the catalog's outbox in `$tx`.
macro_rules! announce {
    ($self:expr, $tx:expr, $event:expr, $audit:expr) => {{
        $self.outbox.enqueue(&mut $tx, &$event).await?;
        $self.outbox.enqueue(&mut $tx, &$audit.event(NAME)).await?;
    }};
}
pub(crate) use announce;

/// A list kept as text, every item between separators: `|a|b|` (`|` when empty), so that
/// `LIKE '%|a|%'` tests membership on either database.
pub(crate) fn encode_list(items: &[String]) -> String {
    let mut s = String::from("|");
    for item in items {
        s.push_str(item);
        s.push('|');
    }
    s
}

pub(crate) fn decode_list(s: &str) -> Vec<String> {
    s.split('|').filter(|i| !i.is_empty()).map(str::to_owned).collect()
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ModelRow {
    name: String,
    description: String,
    version: Option<String>,
    size_bytes: Option<i64>,
    digest: Option<String>,
    format: Option<String>,
    family: Option<String>,
    families: String,
    parameter_size: Option<String>,
    parameter_count: Option<i64>,
    quantization_level: Option<String>,
    quantization_version: Option<i64>,
    architecture: Option<String>,
    file_type: Option<String>,
    context_length: Option<i64>,
    license: Option<String>,
    template: Option<String>,
    modelfile: Option<String>,
    languages: String,
    reference_url: Option<String>,
    image_url: Option<String>,
    capabilities: String,
    released_at: Option<Timestamp>,
    public: bool,
    allowed_roles: String,
    requests: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
    deleted_at: Option<Timestamp>,
}

impl ModelRow {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn into_model(self, tags: Vec<crate::Tag>) -> Model {
        Model {
            fields: ModelFields {
                description: Some(self.description).filter(|d| !d.is_empty()),
                version: self.version,
                size: self.size_bytes,
                digest: self.digest,
                format: self.format,
                family: self.family,
                families: decode_list(&self.families),
                parameter_size: self.parameter_size,
                parameter_count: self.parameter_count,
                quantization_level: self.quantization_level,
                quantization_version: self.quantization_version,
                architecture: self.architecture,
                file_type: self.file_type,
                context_length: self.context_length,
                license: self.license,
                template: self.template,
                modelfile: self.modelfile,
                languages: decode_list(&self.languages),
                reference_link: self.reference_url,
                image_url: self.image_url,
                capabilities: decode_list(&self.capabilities),
                released_at: self.released_at,
            },
            name: self.name,
            access: Access { public: self.public, roles: decode_list(&self.allowed_roles) },
            tags,
            requests: self.requests,
            installed: None,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        }
    }
}

/// The fields an audit record shows of a model: what an admin sets, without the long texts.
fn summary(fields: &ModelFields, access: &Access) -> serde_json::Value {
    let mut v = serde_json::to_value(fields).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        for long in ["template", "modelfile", "license", "description"] {
            if map.get(long).is_some() {
                map.insert(long.to_owned(), json!("…"));
            }
        }
        map.insert("access".to_owned(), json!(access));
    }
    v
}

fn changed(name: &str, change: &str) -> Event {
    Event::new(MODEL_CHANGED, NAME, ModelChanged { name: name.to_owned(), change: change.to_owned() })
}

impl Catalog {
    /// The model `name` (canonical), deleted ones included.
    pub async fn model(&self, name: &str) -> Result<Model, CatalogError> {
        let sql = concat!("SELECT ", model_columns!(), " FROM catalog_models m WHERE m.name = $1");
        let row: Option<ModelRow> =
            with_db!(&self.db, |pool| sqlx::query_as(sql).bind(name).fetch_optional(pool).await?);
        let row = row.ok_or(CatalogError::NotFound("model"))?;
        let tags = self.tags_of(&[row.name().to_owned()]).await?.remove(row.name()).unwrap_or_default();
        Ok(row.into_model(tags))
    }

    /// Who may use `name`, if the catalog has it; a deleted model is for admins only.
    pub async fn access(&self, name: &str) -> Result<Option<Access>, CatalogError> {
        let sql = "SELECT public, allowed_roles, deleted_at FROM catalog_models WHERE name = $1";
        let row: Option<(bool, String, Option<Timestamp>)> =
            with_db!(&self.db, |pool| sqlx::query_as(sql).bind(name).fetch_optional(pool).await?);
        Ok(row.map(|(public, roles, deleted)| match deleted {
            Some(_) => Access { public: false, roles: Vec::new() },
            None => Access { public, roles: decode_list(&roles) },
        }))
    }

    pub async fn create_model(
        &self,
        actor: &Identity,
        name: &str,
        fields: ModelFields,
        access: Access,
    ) -> Result<Model, CatalogError> {
        let name = crate::normalize_name(name).map_err(|m| CatalogError::field("name", "invalid_name", m))?;
        let fields = fields.validated()?;
        let access = access.validated()?;
        let audit =
            AuditRecord::new(actor, "model.create", "model", &name).change(None, Some(summary(&fields, &access)));
        let now = Timestamp::now();
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(
                "INSERT INTO catalog_models (name, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&name)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(CatalogError::ModelExists);
            }
            write_fields!(tx, &name, fields, access, now);
            refresh_derived!(tx, &name);
            announce!(self, tx, changed(&name, "created"), audit);
            tx.commit().await?;
        });
        self.announced().await;
        self.model(&name).await
    }

    /// Applies `change` to a model that is not deleted.
    pub async fn update_model(&self, actor: &Identity, name: &str, change: ModelChange) -> Result<Model, CatalogError> {
        let current = self.model(name).await?;
        if current.deleted_at.is_some() {
            return Err(CatalogError::ModelDeleted);
        }
        let access = match change.access.clone() {
            Some(a) => a.validated()?,
            None => current.access.clone(),
        };
        let fields = change.apply(current.fields.clone()).validated()?;
        let audit = AuditRecord::new(actor, "model.update", "model", name)
            .change(Some(summary(&current.fields, &current.access)), Some(summary(&fields, &access)));
        let now = Timestamp::now();
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            // Guards against a concurrent delete between the read above and this write.
            let live: Option<String> =
                sqlx::query_scalar("SELECT name FROM catalog_models WHERE name = $1 AND deleted_at IS NULL")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if live.is_none() {
                return Err(CatalogError::ModelDeleted);
            }
            write_fields!(tx, name, fields, access, now);
            refresh_derived!(tx, name);
            announce!(self, tx, changed(name, "updated"), audit);
            tx.commit().await?;
        });
        self.announced().await;
        self.model(name).await
    }

    /// Soft delete: the model leaves explore and can no longer be used; `restore` brings it back.
    pub async fn delete_model(&self, actor: &Identity, name: &str) -> Result<(), CatalogError> {
        self.set_deleted(actor, name, Some(Timestamp::now())).await
    }

    pub async fn restore_model(&self, actor: &Identity, name: &str) -> Result<Model, CatalogError> {
        self.set_deleted(actor, name, None).await?;
        self.model(name).await
    }

    async fn set_deleted(&self, actor: &Identity, name: &str, at: Option<Timestamp>) -> Result<(), CatalogError> {
        let (action, change) = if at.is_some() { ("model.delete", "deleted") } else { ("model.restore", "restored") };
        let audit = AuditRecord::new(actor, action, "model", name);
        let now = Timestamp::now();
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let deleted: Option<Option<Timestamp>> =
                sqlx::query_scalar("SELECT deleted_at FROM catalog_models WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            match (deleted, at.is_some()) {
                (None, _) => return Err(CatalogError::NotFound("model")),
                (Some(Some(_)), true) => return Err(CatalogError::ModelDeleted),
                (Some(None), false) => return Err(CatalogError::ModelNotDeleted),
                _ => {}
            }
            sqlx::query("UPDATE catalog_models SET deleted_at = $2, updated_at = $3 WHERE name = $1")
                .bind(name)
                .bind(at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            announce!(self, tx, changed(name, change), audit);
            tx.commit().await?;
        });
        self.announced().await;
        Ok(())
    }

    /// Hard delete, with the model's tag assignments; only of a model deleted first, so that a
    /// model is never purged by a slip.
    pub async fn purge_model(&self, actor: &Identity, name: &str) -> Result<(), CatalogError> {
        let current = self.model(name).await?;
        if current.deleted_at.is_none() {
            return Err(CatalogError::ModelNotDeleted);
        }
        let audit = AuditRecord::new(actor, "model.purge", "model", name)
            .change(Some(summary(&current.fields, &current.access)), None);
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let gone = sqlx::query("DELETE FROM catalog_models WHERE name = $1 AND deleted_at IS NOT NULL")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone == 0 {
                return Err(CatalogError::NotFound("model"));
            }
            announce!(self, tx, changed(name, "purged"), audit);
            tx.commit().await?;
        });
        self.announced().await;
        Ok(())
    }

    /// Counts `requests` more uses of `model` (from usage records); not a catalog change, so no
    /// event: "most used" may lag by a cache lifetime.
    pub async fn count_requests(&self, model: &str, requests: i64) -> Result<(), CatalogError> {
        let sql = "UPDATE catalog_models SET requests = requests + $2 WHERE name = $1";
        with_db!(&self.db, |pool| sqlx::query(sql).bind(model).bind(requests).execute(pool).await?.rows_affected());
        Ok(())
    }
}
