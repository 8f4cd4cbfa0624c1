//! A conversation's documents: attached by a form, processed by the conversation service
//! (chunked and embedded), then searched for every reply, which cites what it was given.

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, State};
use axum::http::{HeaderValue, Method};
use axum::response::{Redirect, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CsrfOnly, Page, act};
use crate::AppState;
use crate::error::WebError;
use crate::extract::{Form, Path};
use crate::services::Caller;
use crate::session::{Visitor, random_token};

#[derive(Deserialize, Serialize)]
pub struct Document {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub size_bytes: i64,
    /// `pending`, `processing`, `ready` or `failed`.
    pub status: String,
    pub error: Option<String>,
}

impl Document {
    pub fn in_progress(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "processing")
    }

    /// The size in words a reader takes in at a glance.
    pub fn size(&self) -> String {
        match self.size_bytes {
            n if n < 1024 => format!("{n} bytes"),
            n if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
            n => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
        }
    }
}

/// A conversation's documents (the first hundred).
pub async fn of(s: &AppState, caller: &Caller<'_>, conversation: Uuid) -> Result<Vec<Document>, WebError> {
    let path = format!("/api/documents?conversation_id={conversation}&limit=100");
    Ok(s.conversation.json::<Page<Document>>(caller, Method::GET, &path, None).await?.items)
}

/// The documents' states, for the page's script to follow their processing.
pub async fn document_status(State(s): State<AppState>, visitor: Visitor, Path(id): Path<Uuid>) -> Response {
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    match of(&s, &caller, id).await {
        Ok(documents) => visitor.respond(([(axum::http::header::CACHE_CONTROL, "no-store")], Json(documents))),
        Err(e) => visitor.respond(e),
    }
}

/// What the upload form sent.
struct Upload {
    csrf: String,
    name: String,
    media_type: String,
    bytes: bytes::Bytes,
}

async fn read(mut form: Multipart) -> Result<Upload, WebError> {
    let unreadable = |_| WebError::Refused("The upload could not be read; files up to 20 MiB can be attached.".into());
    let mut upload =
        Upload { csrf: String::new(), name: String::new(), media_type: String::new(), bytes: Default::default() };
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("csrf") => upload.csrf = field.text().await.map_err(unreadable)?,
            Some("file") => {
                upload.name = field.file_name().unwrap_or("document").to_owned();
                upload.media_type = field.content_type().unwrap_or("application/octet-stream").to_owned();
                upload.bytes = field.bytes().await.map_err(unreadable)?;
            }
            _ => {}
        }
    }
    if upload.bytes.is_empty() {
        return Err(WebError::Refused("Choose a file to attach.".into()));
    }
    Ok(upload)
}

/// The upload as the conversation service takes it: a multipart form of `conversation_id` and
/// `file`. The file's name and type are the browser's, made safe for a header line.
fn multipart(conversation: Uuid, upload: Upload) -> (HeaderValue, Body) {
    let boundary = format!("ollamanet-{}", random_token());
    let safe = |s: &str| s.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\').collect::<String>();
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"conversation_id\"\r\n\r\n{conversation}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
        safe(&upload.name),
        safe(&upload.media_type),
    )
    .into_bytes();
    body.extend_from_slice(&upload.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}"))
        .unwrap_or_else(|_| HeaderValue::from_static("multipart/form-data"));
    (content_type, Body::from(body))
}

/// Attaches a document to the conversation; the page shows it `pending` until it is ready.
pub async fn upload(State(s): State<AppState>, visitor: Visitor, Path(id): Path<Uuid>, form: Multipart) -> Response {
    let upload = match read(form).await {
        Ok(upload) => upload,
        Err(e) => return visitor.respond(e),
    };
    if let Err(e) = visitor.check_csrf(&upload.csrf) {
        return visitor.respond(e);
    }
    let caller = match visitor.member() {
        Ok(caller) => caller,
        Err(to) => return visitor.respond(to),
    };
    let (content_type, body) = multipart(id, upload);
    match s.conversation.upload(&caller, "/api/documents", content_type, body).await {
        Ok(_) => visitor.respond(Redirect::to(&format!("/chat/{id}#documents"))),
        Err(e) => visitor.respond(e),
    }
}

pub async fn delete_document(
    State(s): State<AppState>,
    visitor: Visitor,
    Path((id, document)): Path<(Uuid, Uuid)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let back = format!("/chat/{id}#documents");
    act(&s, visitor, &form.csrf, Method::DELETE, &format!("/api/documents/{document}"), None, &back).await
}
