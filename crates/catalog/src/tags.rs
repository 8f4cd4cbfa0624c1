//! Tags: names (unique whatever their case) put on models to group them in explore.

use kit::audit::AuditRecord;
use kit::authn::Identity;
use kit::bus::Event;
use kit::db::BeginWrite;
use kit::{Timestamp, with_db};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::error::CatalogError;
use crate::search::{Visibility, visible_sql};
use crate::store::{announce, refresh_derived};
use crate::{Catalog, NAME, TAG_CHANGED, TagChanged};

const MAX_NAME: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tag {
    pub id: Uuid,
    pub name: String,
}

/// A tag and how many models the caller can see carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct TagCount {
    pub id: Uuid,
    pub name: String,
    pub models: i64,
}

/// A tag name as stored, and its key (lower-case), or why it cannot be one.
fn tag_name(name: &str) -> Result<(String, String), CatalogError> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let invalid = |code: &str, message: &str| CatalogError::field("name", code, message);
    if name.is_empty() {
        return Err(invalid("required", "a tag needs a name"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(invalid("too_long", "a tag name is at most 40 characters"));
    }
    if name.chars().any(|c| c.is_control() || c == '|') {
        return Err(invalid("invalid_characters", "a tag name has no control characters and no `|`"));
    }
    let key = name.to_lowercase();
    Ok((name, key))
}

fn changed(id: Uuid, change: &str, model: Option<&str>) -> Event {
    Event::new(TAG_CHANGED, NAME, TagChanged { id, change: change.to_owned(), model: model.map(str::to_owned) })
}

fn tag_conflict(e: sqlx::Error) -> CatalogError {
    if kit::db::unique_violation(&e).is_some() { CatalogError::TagExists } else { e.into() }
}

impl Catalog {
    /// Every tag, by name, with the number of models `visibility` sees that carry it.
    pub async fn tags(&self, visibility: &Visibility) -> Result<Vec<TagCount>, CatalogError> {
        let sql = format!(
            "SELECT t.id, t.name, COUNT(m.name) AS models FROM catalog_tags t \
             LEFT JOIN catalog_model_tags mt ON mt.tag_id = t.id \
             LEFT JOIN catalog_models m ON m.name = mt.model AND m.deleted_at IS NULL AND {} \
             GROUP BY t.id, t.name, t.name_key ORDER BY t.name_key",
            visible_sql(self.db.backend(), 1, 2)
        );
        let (all, roles) = visibility.params();
        Ok(with_db!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(all)
            .bind(&roles)
            .fetch_all(pool)
            .await?))
    }

    pub async fn tag(&self, id: Uuid) -> Result<Tag, CatalogError> {
        let row: Option<(Uuid, String)> =
            with_db!(&self.db, |pool| sqlx::query_as("SELECT id, name FROM catalog_tags WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?);
        row.map(|(id, name)| Tag { id, name }).ok_or(CatalogError::NotFound("tag"))
    }

    pub async fn create_tag(&self, actor: &Identity, name: &str) -> Result<Tag, CatalogError> {
        let (name, key) = tag_name(name)?;
        let tag = Tag { id: Uuid::now_v7(), name };
        let audit = AuditRecord::new(actor, "tag.create", "tag", tag.id).change(None, Some(json!({"name": tag.name})));
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO catalog_tags (id, name, name_key, created_at) VALUES ($1, $2, $3, $4)")
                .bind(tag.id)
                .bind(&tag.name)
                .bind(&key)
                .bind(Timestamp::now())
                .execute(&mut *tx)
                .await
                .map_err(tag_conflict)?;
            announce!(self, tx, changed(tag.id, "created", None), audit);
            tx.commit().await?;
        });
        self.announced().await;
        Ok(tag)
    }

    pub async fn rename_tag(&self, actor: &Identity, id: Uuid, name: &str) -> Result<Tag, CatalogError> {
        let (name, key) = tag_name(name)?;
        let before = self.tag(id).await?;
        let audit = AuditRecord::new(actor, "tag.rename", "tag", id)
            .change(Some(json!({"name": before.name})), Some(json!({"name": name})));
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let renamed = sqlx::query("UPDATE catalog_tags SET name = $2, name_key = $3 WHERE id = $1")
                .bind(id)
                .bind(&name)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .map_err(tag_conflict)?
                .rows_affected();
            if renamed == 0 {
                return Err(CatalogError::NotFound("tag"));
            }
            let models: Vec<String> = sqlx::query_scalar("SELECT model FROM catalog_model_tags WHERE tag_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            for model in &models {
                refresh_derived!(tx, model);
            }
            announce!(self, tx, changed(id, "renamed", None), audit);
            tx.commit().await?;
        });
        self.announced().await;
        Ok(Tag { id, name })
    }

    /// Deletes a tag, taking it off every model.
    pub async fn delete_tag(&self, actor: &Identity, id: Uuid) -> Result<(), CatalogError> {
        let before = self.tag(id).await?;
        let audit = AuditRecord::new(actor, "tag.delete", "tag", id).change(Some(json!({"name": before.name})), None);
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let models: Vec<String> = sqlx::query_scalar("SELECT model FROM catalog_model_tags WHERE tag_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            let deleted =
                sqlx::query("DELETE FROM catalog_tags WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
            if deleted == 0 {
                return Err(CatalogError::NotFound("tag"));
            }
            for model in &models {
                refresh_derived!(tx, model);
            }
            announce!(self, tx, changed(id, "deleted", None), audit);
            tx.commit().await?;
        });
        self.announced().await;
        Ok(())
    }

    /// Puts the tag on a model (which may be deleted: its tags come back with it); idempotent.
    pub async fn assign_tag(&self, actor: &Identity, id: Uuid, model: &str) -> Result<(), CatalogError> {
        self.set_tagged(actor, id, model, true).await
    }

    /// Takes the tag off a model; idempotent.
    pub async fn unassign_tag(&self, actor: &Identity, id: Uuid, model: &str) -> Result<(), CatalogError> {
        self.set_tagged(actor, id, model, false).await
    }

    async fn set_tagged(&self, actor: &Identity, id: Uuid, model: &str, tagged: bool) -> Result<(), CatalogError> {
        self.tag(id).await?;
        let model = crate::normalize_name(model).map_err(|m| CatalogError::field("model", "invalid_name", m))?;
        self.model(&model).await?;
        let (action, change) = if tagged { ("tag.assign", "assigned") } else { ("tag.unassign", "unassigned") };
        let audit = AuditRecord::new(actor, action, "tag", id).change(None, Some(json!({"model": model})));
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let sql = if tagged {
                "INSERT INTO catalog_model_tags (model, tag_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM catalog_model_tags WHERE model = $1 AND tag_id = $2"
            };
            // A model or tag deleted meanwhile fails the foreign key: reported as not found.
            sqlx::query(sql).bind(&model).bind(id).execute(&mut *tx).await.map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => CatalogError::NotFound("model"),
                _ => e.into(),
            })?;
            refresh_derived!(tx, &model);
            announce!(self, tx, changed(id, change, Some(&model)), audit);
            tx.commit().await?;
        });
        self.announced().await;
        Ok(())
    }
}
