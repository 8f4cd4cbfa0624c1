//! Folders: the sidebar's tree, and creating, renaming, moving and deleting them.

use axum::extract::State;
use axum::http::Method;
use axum::response::{Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{FolderRow, Page, act};
use crate::AppState;
use crate::error::WebError;
use crate::extract::{Form, Path, blank_as_none};
use crate::services::Caller;
use crate::session::Visitor;

#[derive(Deserialize)]
pub struct Folder {
    id: Uuid,
    parent_id: Option<Uuid>,
    name: String,
}

/// Folders are listed a page at a time; a sidebar shows at most this many pages of them.
const MAX_PAGES: usize = 10;

/// Every folder of the caller's.
pub async fn all(s: &AppState, caller: &Caller<'_>) -> Result<Vec<Folder>, WebError> {
    let mut folders = Vec::new();
    let mut path = "/api/folders?limit=100".to_owned();
    for _ in 0..MAX_PAGES {
        let page = s.conversation.json::<Page<Folder>>(caller, Method::GET, &path, None).await?;
        folders.extend(page.items);
        match page.next_cursor {
            Some(cursor) => {
                path = format!(
                    "/api/folders?limit=100&{}",
                    serde_urlencoded::to_string([("cursor", cursor)]).unwrap_or_default()
                )
            }
            None => break,
        }
    }
    Ok(folders)
}

/// The root folder's id and the others in pre-order, siblings by name.
pub fn tree(folders: Vec<Folder>) -> (Option<Uuid>, Vec<FolderRow>) {
    let root = folders.iter().find(|f| f.parent_id.is_none()).map(|f| f.id);
    let mut rows = Vec::with_capacity(folders.len());
    // Depth-first from the root: a folder whose parent is missing is not shown.
    let mut stack: Vec<(Uuid, usize)> = Vec::new();
    let children = |parent: Uuid| {
        let mut c: Vec<&Folder> = folders.iter().filter(|f| f.parent_id == Some(parent)).collect();
        c.sort_by_key(|f| std::cmp::Reverse(f.name.to_lowercase()));
        c
    };
    if let Some(root) = root {
        stack.extend(children(root).into_iter().map(|f| (f.id, 0)));
    }
    while let Some((id, depth)) = stack.pop() {
        let Some(folder) = folders.iter().find(|f| f.id == id) else { continue };
        rows.push(FolderRow { id, name: folder.name.clone(), depth });
        stack.extend(children(id).into_iter().map(|f| (f.id, depth + 1)));
    }
    (root, rows)
}

#[derive(Deserialize)]
pub struct FolderForm {
    csrf: String,
    #[serde(default)]
    name: String,
    /// The folder to put it in; blank for the top level.
    #[serde(default, deserialize_with = "blank_as_none")]
    parent: Option<Uuid>,
}

pub async fn create_folder(State(s): State<AppState>, visitor: Visitor, Form(form): Form<FolderForm>) -> Response {
    if let Err(e) = visitor.check_csrf(&form.csrf) {
        return visitor.respond(e);
    }
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let body = json!({"name": form.name.trim(), "parent_id": form.parent});
    match s.conversation.json::<Folder>(&caller, Method::POST, "/api/folders", Some(&body)).await {
        Ok(folder) => visitor.respond(Redirect::to(&format!("/chat?folder={}", folder.id))),
        Err(e) => visitor.respond(e),
    }
}

/// Renames a folder, or moves it under another (blank: to the top level, under the root).
pub async fn update_folder(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    Form(form): Form<FolderForm>,
) -> Response {
    let mut body = json!({});
    if !form.name.trim().is_empty() {
        body["name"] = json!(form.name.trim());
    }
    if let Some(parent) = form.parent {
        body["parent_id"] = json!(parent);
    }
    let path = format!("/api/folders/{id}");
    act(&s, visitor, &form.csrf, Method::PATCH, &path, Some(&body), &format!("/chat?folder={id}")).await
}

#[derive(Deserialize)]
pub struct DeleteFolderForm {
    csrf: String,
    /// "on" when the folder's conversations and subfolders go too.
    #[serde(default)]
    recursive: Option<String>,
}

pub async fn delete_folder(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<Uuid>,
    Form(form): Form<DeleteFolderForm>,
) -> Response {
    let path = format!("/api/folders/{id}?recursive={}", form.recursive.is_some());
    act(&s, visitor, &form.csrf, Method::DELETE, &path, None, "/chat").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(id: u128, parent: Option<u128>, name: &str) -> Folder {
        Folder { id: Uuid::from_u128(id), parent_id: parent.map(Uuid::from_u128), name: name.to_owned() }
    }

    #[test]
    fn the_tree_lists_each_folder_before_its_subfolders_and_siblings_by_name() {
        let (root, rows) = tree(vec![
            folder(1, None, "root"),
            folder(2, Some(1), "Work"),
            folder(3, Some(1), "home"),
            folder(4, Some(2), "Reports"),
            folder(5, Some(4), "2026"),
            folder(6, Some(9), "orphan"),
        ]);
        assert_eq!(root, Some(Uuid::from_u128(1)));
        let shown: Vec<(&str, usize)> = rows.iter().map(|r| (r.name.as_str(), r.depth)).collect();
        assert_eq!(shown, [("home", 0), ("Work", 0), ("Reports", 1), ("2026", 2)]);
    }
}
