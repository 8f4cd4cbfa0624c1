//! Folders: one root per user (`parent_id` NULL), the rest nested under it.

use kit::Timestamp;
use kit::db::BeginWrite;
use kit::with_db;
use uuid::Uuid;

use super::Store;
use crate::error::ConversationError;

/// Selects [`FolderRecord`]s; the argument is the rest of the statement after `WHERE`.
macro_rules! select_folders {
    ($rest:literal) => {
        concat!("SELECT id, owner_id, parent_id, name, created_at, updated_at FROM folders WHERE ", $rest)
    };
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FolderRecord {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub const ROOT_NAME: &str = "Root";

fn name_conflict(e: sqlx::Error) -> ConversationError {
    match kit::db::unique_violation(&e) {
        Some(_) => ConversationError::FolderNameTaken,
        None => e.into(),
    }
}

impl Store {
    /// The user's root folder, created if this is the first time they are seen.
    pub async fn root_folder(&self, owner: Uuid) -> Result<FolderRecord, ConversationError> {
        let select = select_folders!("owner_id = $1 AND parent_id IS NULL");
        let now = Timestamp::now();
        Ok(with_db!(&self.db, |pool| {
            if let Some(root) = sqlx::query_as(select).bind(owner).fetch_optional(pool).await? {
                return Ok(root);
            }
            // Two first requests may race here; the unique root index lets one insert win.
            sqlx::query(
                "INSERT INTO folders (id, owner_id, parent_id, name, created_at, updated_at) \
                 VALUES ($1, $2, NULL, $3, $4, $4) ON CONFLICT DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(owner)
            .bind(ROOT_NAME)
            .bind(now)
            .execute(pool)
            .await?;
            sqlx::query_as(select).bind(owner).fetch_one(pool).await?
        }))
    }

    pub async fn folder(&self, owner: Uuid, id: Uuid) -> Result<FolderRecord, ConversationError> {
        let sql = select_folders!("id = $1 AND owner_id = $2");
        self.owned(sql, id, owner, "folder").await
    }

    /// A page of the user's folders in creation order (ids are UUIDv7, so id order is that).
    pub async fn folders(
        &self,
        owner: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<FolderRecord>, ConversationError> {
        let sql = select_folders!("owner_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3");
        Ok(with_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(owner)
            .bind(after)
            .bind(limit + 1)
            .fetch_all(pool)
            .await?))
    }

    pub async fn create_folder(
        &self,
        owner: Uuid,
        parent: Uuid,
        name: &str,
    ) -> Result<FolderRecord, ConversationError> {
        self.folder(owner, parent).await?;
        let now = Timestamp::now();
        let record = FolderRecord {
            id: Uuid::now_v7(),
            owner_id: owner,
            parent_id: Some(parent),
            name: name.to_owned(),
            created_at: now,
            updated_at: now,
        };
        with_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO folders (id, owner_id, parent_id, name, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(record.id)
            .bind(owner)
            .bind(parent)
            .bind(name)
            .bind(now)
            .execute(pool)
            .await
            .map(drop)
            .map_err(name_conflict)?
        });
        Ok(record)
    }

    /// Renames and/or moves a folder. A move under the folder itself or one of its descendants
    /// is refused (checked in the same transaction as the write).
    pub async fn update_folder(
        &self,
        owner: Uuid,
        id: Uuid,
        name: Option<&str>,
        parent: Option<Uuid>,
    ) -> Result<FolderRecord, ConversationError> {
        let select = select_folders!("id = $1 AND owner_id = $2");
        let now = Timestamp::now();
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let current: FolderRecord = sqlx::query_as(select)
                .bind(id)
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(ConversationError::NotFound("folder"))?;
            if current.parent_id.is_none() {
                return Err(ConversationError::RootFolder);
            }
            if let Some(parent) = parent {
                sqlx::query_as::<_, FolderRecord>(select)
                    .bind(parent)
                    .bind(owner)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(ConversationError::NotFound("folder"))?;
                // The new parent's ancestors, itself included: the folder must not be one.
                let ancestors: Vec<Uuid> = sqlx::query_scalar(
                    "WITH RECURSIVE up(id, parent_id) AS ( \
                         SELECT id, parent_id FROM folders WHERE id = $1 AND owner_id = $2 \
                         UNION ALL \
                         SELECT f.id, f.parent_id FROM folders f JOIN up ON f.id = up.parent_id \
                     ) SELECT id FROM up",
                )
                .bind(parent)
                .bind(owner)
                .fetch_all(&mut *tx)
                .await?;
                if ancestors.contains(&id) {
                    return Err(ConversationError::FolderCycle);
                }
            }
            let updated = FolderRecord {
                name: name.map_or(current.name.clone(), str::to_owned),
                parent_id: parent.or(current.parent_id),
                updated_at: now,
                ..current
            };
            sqlx::query(
                "UPDATE folders SET name = $3, parent_id = $4, updated_at = $5 WHERE id = $1 AND owner_id = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(&updated.name)
            .bind(updated.parent_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(name_conflict)?;
            tx.commit().await?;
            Ok(updated)
        })
    }

    /// Deletes a folder. Unless `recursive`, only an empty one; with it, everything inside goes
    /// too (subfolders, their conversations and messages, by the foreign keys' cascades).
    pub async fn delete_folder(&self, owner: Uuid, id: Uuid, recursive: bool) -> Result<(), ConversationError> {
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let parent: Option<Option<Uuid>> =
                sqlx::query_scalar("SELECT parent_id FROM folders WHERE id = $1 AND owner_id = $2")
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(&mut *tx)
                    .await?;
            match parent {
                None => return Err(ConversationError::NotFound("folder")),
                Some(None) => return Err(ConversationError::RootFolder),
                Some(Some(_)) => {}
            }
            if !recursive {
                let holds: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM folders WHERE parent_id = $1) \
                         OR EXISTS (SELECT 1 FROM conversations WHERE folder_id = $1)",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if holds {
                    return Err(ConversationError::FolderNotEmpty);
                }
            }
            sqlx::query("DELETE FROM folders WHERE id = $1 AND owner_id = $2")
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Everything a user has here, for when their account is deleted.
    /// Deletes everything of `owner`'s; the digests of their documents' files, which may now be
    /// unused.
    pub async fn delete_owner(&self, owner: Uuid) -> Result<Vec<String>, ConversationError> {
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let files: Vec<String> = sqlx::query_scalar("SELECT DISTINCT sha256 FROM documents WHERE owner_id = $1")
                .bind(owner)
                .fetch_all(&mut *tx)
                .await?;
            // Conversations take their messages, documents, notes and feedback with them (cascades).
            for sql in ["DELETE FROM conversations WHERE owner_id = $1", "DELETE FROM folders WHERE owner_id = $1"] {
                sqlx::query(sql).bind(owner).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(files)
        })
    }
}
