//! `/api/documents…`: uploads (multipart), their processing status, the original file, search,
//! re-processing and deletion.

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit::Problem;
use kit::api::{CredentialErrors, Page, PageQuery};
use kit::http::{Json, Path, Query};
use uuid::Uuid;

use super::{AppState, Me};
use crate::config::DocumentsConfig;
use crate::error::ConversationError;
use crate::service::{Document, ListDocuments, SearchDocuments, SearchResults, Upload, upload_too_large};

/// What a multipart upload may weigh beyond its file: the other field, part headers, boundaries.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// The body limit of the upload route.
pub fn upload_body_limit(config: &DocumentsConfig) -> usize {
    usize::try_from(config.max_upload_bytes.saturating_add(MULTIPART_OVERHEAD)).unwrap_or(usize::MAX)
}

fn multipart_error(e: MultipartError, max: u64) -> ConversationError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return upload_too_large(max);
    }
    ConversationError::BadRequest("invalid_multipart", format!("the multipart body cannot be read: {}", e.body_text()))
}

/// The bytes of a field, refused once they pass `max`.
async fn read_field(field: &mut Field<'_>, max: u64) -> Result<Vec<u8>, ConversationError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, max))? {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(upload_too_large(max));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Upload a document (`multipart/form-data` with the fields `conversation_id` and `file`). The
/// type is told from the content (PDF, DOCX, Markdown, UTF-8 text), never from the name or the
/// part's Content-Type. The document is read and checked before the answer; chunking and
/// embedding follow in the background (`status` goes `pending` → `processing` → `ready` or
/// `failed`).
#[utoipa::path(post, path = "/api/documents", tag = "documents", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "`conversation_id` (a UUID) and `file`."),
    responses(
    (status = 201, description = "The document, `pending`.", body = Document),
    (status = 400, description = "`invalid_multipart`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`: no such conversation.", body = Problem,
        content_type = "application/problem+json"),
    (status = 409, description = "`too_many_documents_in_conversation`, `too_many_documents`, \
        `storage_quota_exceeded`: a quota of the user's.", body = Problem, content_type = "application/problem+json"),
    (status = 413, description = "`document_too_large`: over the upload limit, or more to inflate than allowed.",
        body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "`unsupported_type`: not a PDF, DOCX, Markdown or text file.", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`empty_document`, `corrupt_document`, `suspicious_archive`, \
        `document_too_complex` (its reader ran out of memory or time), `no_text`, or `validation_failed` \
        (`required`, `invalid_id`, `unknown_field`, `duplicate`).", body = Problem,
        content_type = "application/problem+json"),
    (status = 503, description = "`shutting_down`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn upload(
    State(s): State<AppState>,
    me: Me,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Document>), ConversationError> {
    let max = s.service.upload_limit();
    let mut multipart = multipart.map_err(|e| ConversationError::BadRequest("invalid_multipart", e.body_text()))?;
    let (mut conversation, mut file) = (None, None);
    while let Some(mut field) = multipart.next_field().await.map_err(|e| multipart_error(e, max))? {
        let name = field.name().unwrap_or_default().to_owned();
        let duplicate = || ConversationError::field(&name, "duplicate", "the field is given twice");
        match name.as_str() {
            "conversation_id" => {
                // Bounded by the route's body limit.
                let value = field.text().await.map_err(|e| multipart_error(e, max))?;
                let id = Uuid::parse_str(value.trim())
                    .map_err(|_| ConversationError::field("conversation_id", "invalid_id", "not a conversation id"))?;
                if conversation.replace(id).is_some() {
                    return Err(duplicate());
                }
            }
            "file" => {
                let file_name = field.file_name().map(str::to_owned);
                let bytes = read_field(&mut field, max).await?;
                if file.replace((file_name, bytes)).is_some() {
                    return Err(duplicate());
                }
            }
            _ => return Err(ConversationError::field(&name, "unknown_field", "expected conversation_id and file")),
        }
    }
    let conversation_id = conversation
        .ok_or_else(|| ConversationError::field("conversation_id", "required", "the conversation to attach to"))?;
    let (file_name, bytes) = file.ok_or_else(|| ConversationError::field("file", "required", "the document"))?;
    let upload = Upload { conversation_id, file_name, bytes };
    let document = s.service.upload_document(me.id(), me.0.clone(), upload).await?;
    Ok((StatusCode::CREATED, Json(document)))
}

/// The documents of a conversation, oldest first.
#[utoipa::path(get, path = "/api/documents", tag = "documents", security(("bearer" = [])),
    params(ListDocuments), responses(
    (status = 200, description = "A page of documents.", body = Page<Document>),
    (status = 400, description = "`invalid_query`, `invalid_cursor`.", body = Problem,
        content_type = "application/problem+json"),
    (status = 404, description = "`not_found`: no such conversation.", body = Problem,
        content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn list(
    State(s): State<AppState>,
    me: Me,
    Query(q): Query<ListDocuments>,
) -> Result<Json<Page<Document>>, ConversationError> {
    let page = PageQuery { limit: q.limit, cursor: q.cursor };
    Ok(Json(s.service.documents(me.id(), q.conversation_id, &page).await?))
}

/// The chunks of a conversation's documents that best match `q`: hybrid retrieval (full text
/// and embeddings, fused by reciprocal rank), as replies use it.
#[utoipa::path(get, path = "/api/documents/search", tag = "documents", security(("bearer" = [])),
    params(SearchDocuments), responses(
    (status = 200, description = "Chunks, best first.", body = SearchResults),
    (status = 400, description = "`invalid_query`.", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`not_found`: no such conversation.", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "`validation_failed` (`q`).", body = Problem,
        content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn search(
    State(s): State<AppState>,
    me: Me,
    Query(q): Query<SearchDocuments>,
) -> Result<Json<SearchResults>, ConversationError> {
    Ok(Json(s.service.search_documents(me.id(), &me.0, q).await?))
}

/// A document and its processing status.
#[utoipa::path(get, path = "/api/documents/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "The document.", body = Document),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn get(State(s): State<AppState>, me: Me, Path(id): Path<Uuid>) -> Result<Json<Document>, ConversationError> {
    Ok(Json(s.service.document(me.id(), id).await?))
}

/// Delete a document with its chunks and vectors (and its file, unless another document has the
/// same bytes).
#[utoipa::path(delete, path = "/api/documents/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 204, description = "Deleted."),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn delete(State(s): State<AppState>, me: Me, Path(id): Path<Uuid>) -> Result<StatusCode, ConversationError> {
    s.service.delete_document(me.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Process a document again: after a failure, or to apply new chunking or embedding settings.
/// Its chunks are replaced, never duplicated.
#[utoipa::path(post, path = "/api/documents/{id}/process", tag = "documents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 202, description = "The document, `pending` again.", body = Document),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "`document_busy`: it is being processed.", body = Problem,
        content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn process(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Document>), ConversationError> {
    let document = s.service.reprocess_document(me.id(), me.0.clone(), id).await?;
    Ok((StatusCode::ACCEPTED, Json(document)))
}

/// The original file, as uploaded.
#[utoipa::path(get, path = "/api/documents/{id}/download", tag = "documents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "The file, with its media type and `Content-Disposition: attachment`."),
    (status = 404, description = "`not_found`.", body = Problem, content_type = "application/problem+json"),
    CredentialErrors,
))]
pub async fn download(State(s): State<AppState>, me: Me, Path(id): Path<Uuid>) -> Result<Response, ConversationError> {
    let (document, kind, file) = s.service.document_file(me.id(), id).await?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file)));
    let headers = [
        (header::CONTENT_TYPE, kind.media_type().to_owned()),
        (header::CONTENT_LENGTH, document.size_bytes.to_string()),
        (header::CONTENT_DISPOSITION, content_disposition(&document.name)),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    Ok((headers, body).into_response())
}

/// `attachment` with the name twice (RFC 6266): `filename*` exact in UTF-8, percent-encoded, and
/// `filename` as an ASCII stand-in for old clients.
fn content_disposition(name: &str) -> String {
    let plain = |c: char| c == ' ' || (c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%'));
    let fallback: String = name.chars().map(|c| if plain(c) { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        // RFC 5987 attr-char: what may stand unencoded.
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_encodes_names_both_ways() {
        assert_eq!(
            content_disposition("Résumé \"v2\".pdf"),
            "attachment; filename=\"R_sum_ _v2_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22v2%22.pdf"
        );
        assert_eq!(content_disposition("a;b%.txt"), "attachment; filename=\"a;b_.txt\"; filename*=UTF-8''a%3Bb%25.txt");
    }
}
