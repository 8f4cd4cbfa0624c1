//! Documents attached to conversations: accepting an upload (read and checked before anything is
//! stored), processing it in the background (chunks, embeddings through the inference service on
//! the uploader's behalf), retrieval for search and for replies, deletion with the stored file.
//! See `docs/documents.md`.

use std::sync::Arc;

use kit::Timestamp;
use kit::api::{Page, PageQuery};
use ollamanet_documents::isolated::{self, Isolation};
use ollamanet_documents::{self as documents, DocumentError, Extracted, Kind, Limits};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ConversationService, text};
use crate::config::DocumentsConfig;
use crate::error::ConversationError;
use crate::inference::{Caller, Failure};
use crate::rag::{self, Hit};
use crate::store::{Citation, DocumentRecord, DocumentStatus, Keyset, NewChunk, decode_embedding};

/// Chunks embedded per call to the inference service.
const EMBED_BATCH: usize = 16;
/// Candidates each ranking (full-text, vector) offers the fusion.
const CANDIDATES: usize = 50;
/// Most chunks a search returns.
const MAX_SEARCH_LIMIT: u32 = 20;
/// Longest search query, in characters.
const MAX_QUERY_CHARS: usize = 2000;

// ---- request and response bodies ----

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Document {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// The uploaded file's name made safe to show (the last path component, no control
    /// characters, at most 120 characters).
    pub name: String,
    /// `pdf`, `docx`, `markdown` or `text`, as told by the content.
    pub kind: String,
    pub size_bytes: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    pub status: DocumentStatus,
    /// For `failed`: a stable code (`inference_unavailable`, `model_not_found`,
    /// `processing_interrupted`, …) and what happened.
    pub error_code: Option<String>,
    pub error: Option<String>,
    /// Pages of a PDF; null for formats without fixed pages.
    pub pages: Option<i64>,
    /// Chunks searchable (0 until `ready`).
    pub chunk_count: i64,
    /// The model the chunks were embedded with.
    pub embed_model: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<DocumentRecord> for Document {
    fn from(d: DocumentRecord) -> Self {
        Document {
            id: d.id,
            conversation_id: d.conversation_id,
            name: d.name,
            kind: d.kind,
            size_bytes: d.size_bytes,
            sha256: d.sha256,
            status: d.status,
            error_code: d.error_code,
            error: d.error,
            pages: d.pages,
            chunk_count: d.chunk_count,
            embed_model: d.embed_model,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDocuments {
    pub conversation_id: Uuid,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchDocuments {
    pub conversation_id: Uuid,
    /// What to look for: a question or keywords.
    pub q: String,
    /// 1–20; default the configured `top_k`.
    pub limit: Option<u32>,
}

/// A retrieved chunk.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    pub document_id: Uuid,
    pub document_name: String,
    /// The PDF page; null for formats without pages.
    pub page: Option<i64>,
    pub chunk_index: i64,
    pub text: String,
    /// Reciprocal rank fusion of the full-text and vector ranks: higher is better.
    pub score: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchResults {
    /// Best first.
    pub items: Vec<SearchHit>,
}

/// An upload as the client sent it.
pub struct Upload {
    pub conversation_id: Uuid,
    /// The client's file name: a hint for Markdown and, made safe, the name shown.
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

// ---- the service ----

/// The stored files and what reading documents may cost.
pub struct Library {
    files: documents::Store,
    limits: Limits,
    /// Documents are read in a child process under these bounds.
    isolation: Isolation,
    /// Bounds the readers and the blocking work (file I/O, chunking) running at once.
    reading: Semaphore,
    /// Storing a file and recording it, and deleting a record and then its file, happen one at a
    /// time, so a file two documents share is never removed under a new upload of the same bytes.
    /// (Across instances the window stays open: see the documentation.)
    files_lock: Mutex<()>,
    /// Readers still running at shutdown are killed.
    shutdown: CancellationToken,
}

impl Library {
    pub fn new(
        files: documents::Store,
        config: &DocumentsConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, ConversationError> {
        let program = match &config.extract_program {
            Some(program) => program.clone(),
            None => std::env::current_exe().map_err(|e| {
                ConversationError::Config(format!(
                    "cannot tell this program's path for conversation.documents.extract_program: {e}"
                ))
            })?,
        };
        Ok(Self {
            files,
            limits: Limits { max_uncompressed_bytes: config.max_inflated_bytes, ..Limits::default() },
            isolation: Isolation { program, memory_bytes: config.extract_memory, timeout: config.extract_timeout },
            reading: Semaphore::new(config.max_concurrent_extractions),
            files_lock: Mutex::new(()),
            shutdown,
        })
    }

    /// Reads a document (its kind, unless known, and its text) in a child process, a bounded
    /// number at a time; abandoned (the child killed) at shutdown.
    async fn read(
        &self,
        kind: Option<Kind>,
        markdown_name: bool,
        bytes: &[u8],
    ) -> Result<(Kind, Extracted), ConversationError> {
        let read = async {
            let _permit = self.reading.acquire().await.map_err(|_| ConversationError::ShuttingDown)?;
            Ok(isolated::extract(&self.isolation, kind, markdown_name, bytes, &self.limits).await?)
        };
        tokio::select! {
            read = read => read,
            _ = self.shutdown.cancelled() => Err(ConversationError::ShuttingDown),
        }
    }

    /// Runs blocking document work on the blocking pool, a bounded number at a time.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, DocumentError> + Send + 'static,
    ) -> Result<T, DocumentError> {
        let _permit = self.reading.acquire().await.map_err(|_| DocumentError::Io(std::io::Error::other("closed")))?;
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|_| Err(DocumentError::Corrupt("the document could not be read".into())))
    }
}

/// Why processing failed: a stable code and a message, stored on the document.
struct ProcessingError {
    code: &'static str,
    message: String,
}

impl From<Failure> for ProcessingError {
    fn from(f: Failure) -> Self {
        ProcessingError { code: f.code, message: f.message }
    }
}

impl From<DocumentError> for ProcessingError {
    fn from(e: DocumentError) -> Self {
        ProcessingError { code: e.code(), message: e.to_string() }
    }
}

impl From<sqlx::Error> for ProcessingError {
    fn from(e: sqlx::Error) -> Self {
        tracing::warn!(error = %e, "document processing: database error");
        ProcessingError { code: "processing_failed", message: "the database failed while processing".into() }
    }
}

impl ConversationService {
    /// The largest file an upload may carry, in bytes.
    pub fn upload_limit(&self) -> u64 {
        self.config.documents.max_upload_bytes
    }

    /// Reads and checks an upload, stores it, and starts processing it in the background.
    pub async fn upload_document(
        self: &Arc<Self>,
        owner: Uuid,
        caller: Caller,
        upload: Upload,
    ) -> Result<Document, ConversationError> {
        self.store.conversation(owner, upload.conversation_id).await?;
        let max = self.config.documents.max_upload_bytes;
        if upload.bytes.len() as u64 > max {
            return Err(upload_too_large(max));
        }
        let size = upload.bytes.len() as u64;
        // Checked before the work of reading, and again where the document is recorded.
        self.check_document_quotas(owner, upload.conversation_id, size).await?;
        let name = documents::safe_display_name(upload.file_name.as_deref().unwrap_or_default());
        let markdown_name = upload.file_name.as_deref().is_some_and(documents::is_markdown_name);
        let bytes = upload.bytes;
        // Read in full before anything is stored: a document that cannot be read is refused now.
        let (kind, extracted) = self.library.read(None, markdown_name, &bytes).await?;
        let now = Timestamp::now();
        let mut record = DocumentRecord {
            id: Uuid::now_v7(),
            owner_id: owner,
            conversation_id: upload.conversation_id,
            name,
            kind: kind.as_str().to_owned(),
            size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            sha256: String::new(),
            status: DocumentStatus::Pending,
            error_code: None,
            error: None,
            pages: page_count(&extracted),
            chunk_count: 0,
            embed_model: None,
            created_at: now,
            updated_at: now,
        };
        {
            let _files = self.library.files_lock.lock().await;
            self.check_document_quotas(owner, record.conversation_id, size).await?;
            let files = self.library.files.clone();
            let stored = self.library.blocking(move || files.put(&bytes)).await?;
            record.sha256 = stored.sha256;
            if let Err(e) = self.store.insert_document(&record).await {
                self.remove_file_unless_used(&record.sha256).await;
                return Err(e);
            }
        }
        self.spawn_processing(caller, record.clone(), Some(extracted));
        Ok(record.into())
    }

    /// Refuses a document of `size` bytes that would pass one of the owner's document quotas.
    async fn check_document_quotas(&self, owner: Uuid, conversation: Uuid, size: u64) -> Result<(), ConversationError> {
        let quotas = &self.config.quotas;
        let held = self.store.documents_held(owner, conversation).await?;
        if held.in_conversation >= quotas.documents_per_conversation {
            return Err(ConversationError::Quota(
                "too_many_documents_in_conversation",
                format!("a conversation may hold {} documents; delete one first", quotas.documents_per_conversation),
            ));
        }
        if held.documents >= quotas.documents_per_user {
            return Err(ConversationError::Quota(
                "too_many_documents",
                format!("you may keep {} documents; delete one first", quotas.documents_per_user),
            ));
        }
        if held.bytes.saturating_add(size) > quotas.stored_bytes_per_user {
            return Err(ConversationError::Quota(
                "storage_quota_exceeded",
                format!(
                    "your documents would take more than your {} MiB of storage; delete some first",
                    quotas.stored_bytes_per_user >> 20
                ),
            ));
        }
        Ok(())
    }

    pub async fn document(&self, owner: Uuid, id: Uuid) -> Result<Document, ConversationError> {
        Ok(self.store.document(owner, id).await?.into())
    }

    pub async fn documents(
        &self,
        owner: Uuid,
        conversation: Uuid,
        page: &PageQuery,
    ) -> Result<Page<Document>, ConversationError> {
        self.store.conversation(owner, conversation).await?;
        let after = match page.cursor.as_deref() {
            Some(c) => Some(Keyset::decode(c).ok_or_else(|| {
                ConversationError::BadRequest("invalid_cursor", "the cursor is not one this list gave".into())
            })?),
            None => None,
        };
        let limit = page.limit();
        let rows = self.store.documents(owner, conversation, after, limit).await?;
        Ok(Page::from_rows(rows, limit, |d| Keyset { at: d.created_at, id: d.id }.encode()))
    }

    /// Processes a document again (after a failure, or with new settings). Processing replaces
    /// its chunks, so doing it twice leaves one set.
    pub async fn reprocess_document(
        self: &Arc<Self>,
        owner: Uuid,
        caller: Caller,
        id: Uuid,
    ) -> Result<Document, ConversationError> {
        self.store.document(owner, id).await?;
        if !self.store.queue_document(owner, id).await? {
            return Err(ConversationError::DocumentBusy);
        }
        let record = self.store.document(owner, id).await?;
        self.spawn_processing(caller, record.clone(), None);
        Ok(record.into())
    }

    /// Deletes a document, its chunks and vectors, and its file unless another document has the
    /// same bytes.
    pub async fn delete_document(&self, owner: Uuid, id: Uuid) -> Result<(), ConversationError> {
        let _files = self.library.files_lock.lock().await;
        let (sha256, shared) = self.store.delete_document(owner, id).await?;
        if !shared {
            self.remove_file(sha256).await;
        }
        Ok(())
    }

    /// A document and its original file, opened for reading.
    pub async fn document_file(
        &self,
        owner: Uuid,
        id: Uuid,
    ) -> Result<(Document, Kind, std::fs::File), ConversationError> {
        let d = self.store.document(owner, id).await?;
        let kind: Kind = d.kind.parse()?;
        let (files, sha) = (self.library.files.clone(), d.sha256.clone());
        let file = tokio::task::spawn_blocking(move || files.open(&sha))
            .await
            .unwrap_or_else(|e| Err(DocumentError::Io(std::io::Error::other(e))))?;
        let Some(file) = file else {
            tracing::error!(document = %id, sha256 = %d.sha256, "a document's file is missing from the store");
            return Err(ConversationError::NotFound("document file"));
        };
        Ok((d.into(), kind, file))
    }

    /// The chunks of the conversation's documents that best match `q`.
    pub async fn search_documents(
        &self,
        owner: Uuid,
        caller: &Caller,
        query: SearchDocuments,
    ) -> Result<SearchResults, ConversationError> {
        let q = text("q", &query.q, 1, MAX_QUERY_CHARS, true)?;
        self.store.conversation(owner, query.conversation_id).await?;
        let limit = query.limit.map_or(self.config.documents.top_k, |l| l.clamp(1, MAX_SEARCH_LIMIT) as usize);
        let hits = self.retrieve(owner, caller, query.conversation_id, &q, limit).await?;
        let items = hits
            .into_iter()
            .map(|h| SearchHit {
                document_id: h.chunk.document_id,
                document_name: h.chunk.document_name,
                page: h.chunk.page,
                chunk_index: h.chunk.chunk_index,
                text: h.chunk.text,
                score: h.score,
            })
            .collect();
        Ok(SearchResults { items })
    }

    /// What a reply to `question` is given from the conversation's documents: the context
    /// message and its citations; None when there are no documents or retrieval fails (a reply
    /// without them beats no reply).
    pub(super) async fn document_context(
        &self,
        owner: Uuid,
        caller: &Caller,
        conversation: Uuid,
        question: &str,
    ) -> Option<(ollama_api::types::Message, Vec<Citation>)> {
        let found = async {
            if !self.store.has_chunks(owner, conversation).await? {
                return Ok(Vec::new());
            }
            self.retrieve(owner, caller, conversation, question, self.config.documents.top_k).await
        };
        match found.await {
            Ok(hits) if hits.is_empty() => None,
            Ok(hits) => Some(rag::context_message(&hits)),
            Err(e) => {
                tracing::warn!(error = %e, %conversation, "document retrieval failed; replying without documents");
                None
            }
        }
    }

    /// Hybrid retrieval over the conversation's chunks: a full-text ranking and an exact cosine
    /// ranking against the question's embedding, fused by reciprocal rank. When the embedding
    /// cannot be had, the full-text ranking alone.
    async fn retrieve(
        &self,
        owner: Uuid,
        caller: &Caller,
        conversation: Uuid,
        question: &str,
        limit: usize,
    ) -> Result<Vec<Hit>, ConversationError> {
        let words = rag::query_words(question);
        let by_text = self.store.rank_chunks_by_text(owner, conversation, &words, CANDIDATES as i64).await?;
        let model = &self.config.documents.embed_model;
        let by_vector = match self.runner.inference.embed(caller, model, vec![question.to_owned()]).await {
            Ok(mut vectors) => {
                let query = vectors.pop().unwrap_or_default();
                let mut top = rag::TopK::new(CANDIDATES);
                self.store
                    .visit_chunk_embeddings(owner, conversation, |key, bytes| {
                        top.offer(key, rag::cosine(&query, &decode_embedding(bytes)));
                    })
                    .await?;
                top.into_keys()
            }
            Err(e) => {
                tracing::warn!(error = %e, "no embedding for the question; ranking by full text only");
                Vec::new()
            }
        };
        let fused = rag::fuse(&[by_text, by_vector], limit);
        let keys: Vec<_> = fused.iter().map(|(key, _)| *key).collect();
        let mut chunks = self.store.chunks(owner, &keys).await?;
        Ok(fused
            .into_iter()
            .filter_map(|(key, score)| {
                let at = chunks.iter().position(|c| (c.document_id, c.chunk_index) == key)?;
                Some(Hit { chunk: chunks.swap_remove(at), score })
            })
            .collect())
    }

    fn spawn_processing(self: &Arc<Self>, caller: Caller, record: DocumentRecord, extracted: Option<Extracted>) {
        let this = self.clone();
        tokio::spawn(async move {
            let id = record.id;
            if let Err(e) = this.process(&caller, record, extracted).await {
                tracing::info!(document = %id, code = e.code, error = %e.message, "document processing failed");
                if let Err(e) = this.store.fail_document(id, e.code, &e.message).await {
                    tracing::warn!(document = %id, error = %e, "could not record a document's failure");
                }
            }
        });
    }

    /// Extracts (unless the upload did), chunks and embeds a document, then stores its chunks and
    /// marks it ready. The row is touched after every step, which tells a sweep that the work is
    /// alive; a document deleted meanwhile ends the work quietly.
    async fn process(
        &self,
        caller: &Caller,
        record: DocumentRecord,
        extracted: Option<Extracted>,
    ) -> Result<(), ProcessingError> {
        let id = record.id;
        if !self.store.touch_processing(id).await? {
            return Ok(());
        }
        let extracted = match extracted {
            Some(e) => e,
            None => {
                let kind: Kind = record.kind.parse()?;
                let (files, sha) = (self.library.files.clone(), record.sha256);
                let bytes = self
                    .library
                    .blocking(move || {
                        files.get(&sha)?.ok_or_else(|| {
                            DocumentError::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "the file is missing"))
                        })
                    })
                    .await?;
                match self.library.read(Some(kind), false, &bytes).await {
                    Ok((_, extracted)) => extracted,
                    Err(ConversationError::Document(e)) => return Err(e.into()),
                    Err(e) => {
                        return Err(ProcessingError { code: "processing_interrupted", message: e.to_string() });
                    }
                }
            }
        };
        let (size, overlap) = (self.config.documents.chunk_size, self.config.documents.chunk_overlap);
        let pages = page_count(&extracted);
        let chunks = self
            .library
            .blocking(move || {
                // The configuration was validated at start-up, so chunking parameters are sound.
                documents::chunk(&extracted, size, overlap).map_err(|e| DocumentError::Corrupt(e.to_string()))
            })
            .await?;
        if chunks.is_empty() {
            return Err(DocumentError::NoText.into());
        }
        let model = &self.config.documents.embed_model;
        let mut stored = Vec::with_capacity(chunks.len());
        for batch in chunks.chunks(EMBED_BATCH) {
            let vectors =
                self.runner.inference.embed(caller, model, batch.iter().map(|c| c.text.clone()).collect()).await?;
            for (c, embedding) in batch.iter().zip(vectors) {
                stored.push(NewChunk {
                    index: i64::from(c.index),
                    page: c.page.map(i64::from),
                    text: c.text.clone(),
                    embedding,
                });
            }
            if !self.store.touch_processing(id).await? {
                return Ok(());
            }
        }
        self.store.finish_document(id, pages, model, &stored).await?;
        Ok(())
    }

    /// Removes those of the files `sha256s` that no document names any more (after deleting a
    /// conversation or a user).
    pub(super) async fn remove_unused_files(&self, sha256s: Vec<String>) {
        if sha256s.is_empty() {
            return;
        }
        let _files = self.library.files_lock.lock().await;
        for sha256 in sha256s {
            self.remove_file_unless_used(&sha256).await;
        }
    }

    /// Removes stored files that no document names and that are older than `age`: left behind
    /// by a process that stopped between deleting a document's row and its file (or storing a
    /// file and its row). The age keeps a file another instance is storing right now.
    pub async fn sweep_unused_files(&self, age: std::time::Duration) -> usize {
        let files = self.library.files.clone();
        let stored = match self.library.blocking(move || files.stored_before(age)).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the stored document files");
                return 0;
            }
        };
        let _files = self.library.files_lock.lock().await;
        let mut removed = 0;
        for sha256 in stored {
            if matches!(self.store.file_in_use(&sha256).await, Ok(false)) {
                self.remove_file(sha256).await;
                removed += 1;
            }
        }
        removed
    }

    async fn remove_file_unless_used(&self, sha256: &str) {
        match self.store.file_in_use(sha256).await {
            Ok(false) => self.remove_file(sha256.to_owned()).await,
            Ok(true) => {}
            Err(e) => tracing::warn!(error = %e, %sha256, "could not tell whether a stored file is in use; kept"),
        }
    }

    async fn remove_file(&self, sha256: String) {
        let files = self.library.files.clone();
        let sha = sha256.clone();
        if let Err(e) = self.library.blocking(move || files.remove(&sha)).await {
            tracing::warn!(error = %e, %sha256, "could not remove a document's file");
        }
    }
}

/// An upload larger than `max` bytes (the client sent more than the limit).
pub fn upload_too_large(max: u64) -> ConversationError {
    DocumentError::TooLarge(format!("the file is larger than the limit of {max} bytes")).into()
}

/// The number of pages of a paged document (a PDF); None for the others.
fn page_count(extracted: &Extracted) -> Option<i64> {
    extracted.pages.iter().filter_map(|p| p.number).max().map(i64::from)
}
