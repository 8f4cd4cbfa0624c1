//! Folders: a root per user (made when the user registers, or the first time they are seen),
//! nested folders with names unique among siblings. Deleting a folder deletes only an empty one,
//! unless the caller asks for everything inside to go with it.

use uuid::Uuid;

use super::{ConversationService, text};
use crate::error::ConversationError;
use crate::models::{CreateFolder, Folder, UpdateFolder};
use crate::store::FolderRecord;

const NAME_MAX: usize = 100;

impl ConversationService {
    pub async fn root_folder(&self, owner: Uuid) -> Result<FolderRecord, ConversationError> {
        self.store.root_folder(owner).await
    }

    pub async fn folders(
        &self,
        owner: Uuid,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FolderRecord>, ConversationError> {
        self.store.root_folder(owner).await?;
        let after = cursor.map(|c| Uuid::parse_str(c).map_err(|_| bad_cursor())).transpose()?;
        self.store.folders(owner, after, limit).await
    }

    pub async fn folder(&self, owner: Uuid, id: Uuid) -> Result<Folder, ConversationError> {
        Ok(self.store.folder(owner, id).await?.into())
    }

    pub async fn create_folder(&self, owner: Uuid, req: CreateFolder) -> Result<Folder, ConversationError> {
        let name = text("name", &req.name, 1, NAME_MAX, false)?;
        let parent = match req.parent_id {
            Some(id) => id,
            None => self.store.root_folder(owner).await?.id,
        };
        Ok(self.store.create_folder(owner, parent, &name).await?.into())
    }

    pub async fn update_folder(&self, owner: Uuid, id: Uuid, req: UpdateFolder) -> Result<Folder, ConversationError> {
        let name = req.name.as_deref().map(|n| text("name", n, 1, NAME_MAX, false)).transpose()?;
        Ok(self.store.update_folder(owner, id, name.as_deref(), req.parent_id).await?.into())
    }

    pub async fn delete_folder(&self, owner: Uuid, id: Uuid, recursive: bool) -> Result<(), ConversationError> {
        self.store.delete_folder(owner, id, recursive).await
    }
}

pub(super) fn bad_cursor() -> ConversationError {
    ConversationError::BadRequest("invalid_cursor", "the cursor is not one this API returned".into())
}
