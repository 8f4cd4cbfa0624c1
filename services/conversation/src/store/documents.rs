//! Documents, their chunks (text, page, embedding) and the two halves of retrieval: full-text
//! ranking in the database and the embeddings that vector similarity is computed over.

use kit::Timestamp;
use kit::db::{BeginWrite, Db};
use kit::with_db;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Keyset, Store};
use crate::error::ConversationError;

/// Selects [`DocumentRecord`]s; the argument is the rest after `WHERE`.
macro_rules! select_documents {
    ($rest:literal) => {
        concat!(
            "SELECT id, owner_id, conversation_id, name, kind, size_bytes, sha256, status, error_code, error, pages, \
             chunk_count, embed_model, created_at, updated_at FROM documents WHERE ",
            $rest
        )
    };
}

/// Where a document's processing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum DocumentStatus {
    /// Accepted; processing has not started.
    Pending,
    /// Being chunked and embedded.
    Processing,
    /// Its chunks are searchable.
    Ready,
    /// Processing failed; `error_code` and `error` say why. Re-processing may be asked for.
    Failed,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DocumentRecord {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub conversation_id: Uuid,
    pub name: String,
    pub kind: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub status: DocumentStatus,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub pages: Option<i64>,
    pub chunk_count: i64,
    pub embed_model: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A chunk to store: its place in the document, its text and its vector.
pub struct NewChunk {
    pub index: i64,
    pub page: Option<i64>,
    pub text: String,
    pub embedding: Vec<f32>,
}

/// A chunk as retrieval returns it, with its document's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChunkRecord {
    pub document_id: Uuid,
    pub document_name: String,
    pub chunk_index: i64,
    pub page: Option<i64>,
    pub text: String,
}

/// A source a reply was given: which chunk of which document (and page), as the reply's `[n]`
/// names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Citation {
    /// The number the model was shown, `[1]` first.
    pub number: u32,
    pub document_id: Uuid,
    pub document_name: String,
    /// The PDF page it comes from; null for formats without pages.
    pub page: Option<i64>,
    pub chunk_index: i64,
    /// The retrieval score (reciprocal rank fusion of full-text and vector ranks).
    pub score: f64,
}

/// What a user holds in documents, for the quotas.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct DocumentsHeld {
    /// Documents of the conversation the count was asked for.
    pub in_conversation: u64,
    /// Documents of the user in all.
    pub documents: u64,
    /// Bytes of all the user's documents.
    pub bytes: u64,
}

/// A chunk's key: its document and index.
pub type ChunkKey = (Uuid, i64);

/// The vector of a chunk, as `f32` little-endian bytes.
pub fn encode_embedding(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`encode_embedding`]; trailing bytes that make no whole `f32` are ignored.
pub fn decode_embedding(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

impl Store {
    pub async fn insert_document(&self, d: &DocumentRecord) -> Result<(), ConversationError> {
        with_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO documents (id, owner_id, conversation_id, name, kind, size_bytes, sha256, status, \
                 error_code, error, pages, chunk_count, embed_model, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(d.id)
            .bind(d.owner_id)
            .bind(d.conversation_id)
            .bind(&d.name)
            .bind(&d.kind)
            .bind(d.size_bytes)
            .bind(&d.sha256)
            .bind(d.status)
            .bind(&d.error_code)
            .bind(&d.error)
            .bind(d.pages)
            .bind(d.chunk_count)
            .bind(&d.embed_model)
            .bind(d.created_at)
            .bind(d.updated_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The owner's documents: in `conversation`, in all, and their bytes.
    pub async fn documents_held(&self, owner: Uuid, conversation: Uuid) -> Result<DocumentsHeld, ConversationError> {
        let (in_conversation, documents, bytes): (i64, i64, i64) = with_db!(&self.db, |pool| sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM documents WHERE owner_id = $1 AND conversation_id = $2), \
             (SELECT COUNT(*) FROM documents WHERE owner_id = $1), \
             (SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM documents WHERE owner_id = $1)"
        )
        .bind(owner)
        .bind(conversation)
        .fetch_one(pool)
        .await?);
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(DocumentsHeld { in_conversation: count(in_conversation), documents: count(documents), bytes: count(bytes) })
    }

    pub async fn document(&self, owner: Uuid, id: Uuid) -> Result<DocumentRecord, ConversationError> {
        let sql = select_documents!("id = $1 AND owner_id = $2");
        self.owned(sql, id, owner, "document").await
    }

    /// A page of a conversation's documents, oldest first; `limit + 1` rows (see `Page`).
    pub async fn documents(
        &self,
        owner: Uuid,
        conversation: Uuid,
        after: Option<Keyset>,
        limit: i64,
    ) -> Result<Vec<DocumentRecord>, ConversationError> {
        let sql = select_documents!(
            "conversation_id = $1 AND owner_id = $2 \
             AND ($3 IS NULL OR created_at > $3 OR (created_at = $3 AND id > $4)) \
             ORDER BY created_at, id LIMIT $5"
        );
        Ok(with_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(conversation)
            .bind(owner)
            .bind(after.map(|k| k.at))
            .bind(after.map(|k| k.id))
            .bind(limit + 1)
            .fetch_all(pool)
            .await?))
    }

    /// Moves a document to `pending` for processing, unless it is being processed already; false
    /// when it is.
    pub async fn queue_document(&self, owner: Uuid, id: Uuid) -> Result<bool, ConversationError> {
        let done = with_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE documents SET status = $3, error_code = NULL, error = NULL, updated_at = $4 \
                 WHERE id = $1 AND owner_id = $2 AND status IN ($5, $6)",
            )
            .bind(id)
            .bind(owner)
            .bind(DocumentStatus::Pending)
            .bind(Timestamp::now())
            .bind(DocumentStatus::Ready)
            .bind(DocumentStatus::Failed)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Marks a document `processing` (again: a heartbeat while it is). False when it is gone.
    pub async fn touch_processing(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        with_db!(&self.db, |pool| {
            sqlx::query("UPDATE documents SET status = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(DocumentStatus::Processing)
                .bind(Timestamp::now())
                .execute(pool)
                .await
                .map(|r| r.rows_affected() == 1)
        })
    }

    /// Replaces a document's chunks with `chunks` and marks it ready, in one transaction: a
    /// document is searchable with all of its chunks or none, and processing twice leaves one set.
    pub async fn finish_document(
        &self,
        id: Uuid,
        pages: Option<i64>,
        embed_model: &str,
        chunks: &[NewChunk],
    ) -> Result<(), sqlx::Error> {
        let count = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let scope: Option<(Uuid, Uuid)> =
                sqlx::query_as("SELECT owner_id, conversation_id FROM documents WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            // Deleted while it was processed: nothing to write.
            let Some((owner, conversation)) = scope else { return Ok(()) };
            sqlx::query("DELETE FROM document_chunks WHERE document_id = $1").bind(id).execute(&mut *tx).await?;
            for c in chunks {
                sqlx::query(
                    "INSERT INTO document_chunks (document_id, owner_id, conversation_id, chunk_index, page, text, \
                     embedding) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(owner)
                .bind(conversation)
                .bind(c.index)
                .bind(c.page)
                .bind(&c.text)
                .bind(encode_embedding(&c.embedding))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE documents SET status = $2, error_code = NULL, error = NULL, pages = $3, chunk_count = $4, \
                 embed_model = $5, updated_at = $6 WHERE id = $1",
            )
            .bind(id)
            .bind(DocumentStatus::Ready)
            .bind(pages)
            .bind(count)
            .bind(embed_model)
            .bind(Timestamp::now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
    }

    /// Marks a document failed and drops its chunks, so that what it offers retrieval is never
    /// out of step with its status.
    pub async fn fail_document(&self, id: Uuid, code: &str, error: &str) -> Result<(), sqlx::Error> {
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM document_chunks WHERE document_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query(
                "UPDATE documents SET status = $2, error_code = $3, error = $4, chunk_count = 0, updated_at = $5 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(DocumentStatus::Failed)
            .bind(code)
            .bind(error)
            .bind(Timestamp::now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
    }

    /// Documents left `pending` or `processing` by a process that stopped: marked failed so that
    /// their owners can process them again. Only those untouched since `stale_before`.
    pub async fn fail_abandoned_documents(&self, stale_before: Timestamp) -> Result<u64, sqlx::Error> {
        with_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE documents SET status = $1, error_code = $2, error = $3 \
                 WHERE status IN ($4, $5) AND updated_at < $6",
            )
            .bind(DocumentStatus::Failed)
            .bind("processing_interrupted")
            .bind("processing was interrupted (the server stopped); process the document again")
            .bind(DocumentStatus::Pending)
            .bind(DocumentStatus::Processing)
            .bind(stale_before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
    }

    /// Deletes a document with its chunks; the digest of its file and whether any other document
    /// still names that file.
    pub async fn delete_document(&self, owner: Uuid, id: Uuid) -> Result<(String, bool), ConversationError> {
        let found = with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let sha: Option<String> =
                sqlx::query_scalar("DELETE FROM documents WHERE id = $1 AND owner_id = $2 RETURNING sha256")
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(&mut *tx)
                    .await?;
            let found = match sha {
                Some(sha) => {
                    let shared: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM documents WHERE sha256 = $1)")
                        .bind(&sha)
                        .fetch_one(&mut *tx)
                        .await?;
                    Some((sha, shared))
                }
                None => None,
            };
            tx.commit().await?;
            found
        });
        found.ok_or(ConversationError::NotFound("document"))
    }

    /// Whether any document row names the file `sha256`.
    pub async fn file_in_use(&self, sha256: &str) -> Result<bool, ConversationError> {
        Ok(with_db!(&self.db, |pool| sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM documents WHERE sha256 = $1)")
            .bind(sha256)
            .fetch_one(pool)
            .await?))
    }

    /// Whether the conversation has anything to retrieve from.
    pub async fn has_chunks(&self, owner: Uuid, conversation: Uuid) -> Result<bool, ConversationError> {
        Ok(with_db!(&self.db, |pool| sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM document_chunks WHERE conversation_id = $1 AND owner_id = $2)"
        )
        .bind(conversation)
        .bind(owner)
        .fetch_one(pool)
        .await?))
    }

    /// The conversation's chunks that contain any of `words`, best first, at most `limit`: FTS5's
    /// bm25 on SQLite, `ts_rank` on Postgres.
    pub async fn rank_chunks_by_text(
        &self,
        owner: Uuid,
        conversation: Uuid,
        words: &[String],
        limit: i64,
    ) -> Result<Vec<ChunkKey>, ConversationError> {
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Uuid, i64)> = match &self.db {
            Db::Sqlite(pool) => {
                // Each word quoted: FTS5 syntax in a word is taken literally.
                let query = words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" OR ");
                sqlx::query_as(
                    "SELECT c.document_id, c.chunk_index FROM document_chunks_fts f \
                     JOIN document_chunks c ON c.seq = f.rowid \
                     WHERE document_chunks_fts MATCH $3 AND c.conversation_id = $1 AND c.owner_id = $2 \
                     ORDER BY bm25(document_chunks_fts), c.document_id, c.chunk_index LIMIT $4",
                )
                .bind(conversation)
                .bind(owner)
                .bind(query)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => {
                // The words are letters and digits only, so they are plain tsquery operands.
                let query = words.join(" | ");
                sqlx::query_as(
                    "SELECT c.document_id, c.chunk_index FROM document_chunks c, to_tsquery('simple', $3) q \
                     WHERE c.conversation_id = $1 AND c.owner_id = $2 AND to_tsvector('simple', c.text) @@ q \
                     ORDER BY ts_rank(to_tsvector('simple', c.text), q) DESC, c.document_id, c.chunk_index \
                     LIMIT $4",
                )
                .bind(conversation)
                .bind(owner)
                .bind(query)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
        Ok(rows)
    }

    /// Hands every chunk embedding of the conversation to `visit`, one row at a time as the
    /// database sends them: never all of them in memory at once.
    pub async fn visit_chunk_embeddings(
        &self,
        owner: Uuid,
        conversation: Uuid,
        mut visit: impl FnMut(ChunkKey, &[u8]),
    ) -> Result<(), ConversationError> {
        use futures::TryStreamExt;
        const SQL: &str = "SELECT document_id, chunk_index, embedding FROM document_chunks \
                           WHERE conversation_id = $1 AND owner_id = $2";
        with_db!(&self.db, |pool| {
            let mut rows = sqlx::query_as::<_, (Uuid, i64, Vec<u8>)>(SQL).bind(conversation).bind(owner).fetch(pool);
            while let Some((document, index, embedding)) = rows.try_next().await? {
                visit((document, index), &embedding);
            }
        });
        Ok(())
    }

    /// The chunks with these keys, with their documents' names (in no particular order).
    pub async fn chunks(&self, owner: Uuid, keys: &[ChunkKey]) -> Result<Vec<ChunkRecord>, ConversationError> {
        let mut out = Vec::with_capacity(keys.len());
        // A handful of keys (the top k): one indexed lookup each.
        for &(document, index) in keys {
            let found: Option<ChunkRecord> = with_db!(&self.db, |pool| sqlx::query_as(
                "SELECT c.document_id, d.name AS document_name, c.chunk_index, c.page, c.text \
                 FROM document_chunks c JOIN documents d ON d.id = c.document_id \
                 WHERE c.document_id = $1 AND c.chunk_index = $2 AND c.owner_id = $3"
            )
            .bind(document)
            .bind(index)
            .bind(owner)
            .fetch_optional(pool)
            .await?);
            out.extend(found);
        }
        Ok(out)
    }
}
