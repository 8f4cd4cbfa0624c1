-- Documents attached to conversations, their chunks with embeddings, and the citations of the
-- replies that used them. See docs/documents.md.

CREATE TABLE documents (
    id               BLOB PRIMARY KEY,
    owner_id         BLOB NOT NULL,
    conversation_id  BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- The client's file name made safe to show; never part of a path.
    name             TEXT NOT NULL,
    -- pdf | docx | markdown | text, as told by the content.
    kind             TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    -- The stored file's name (content-addressed); several documents may share one file.
    sha256           TEXT NOT NULL,
    -- pending | processing | ready | failed
    status           TEXT NOT NULL,
    error_code       TEXT,
    error            TEXT,
    -- Pages of a PDF; NULL for formats without fixed pages.
    pages            INTEGER,
    chunk_count      INTEGER NOT NULL DEFAULT 0,
    embed_model      TEXT,
    created_at       INTEGER NOT NULL,
    -- Touched while processing, so that work abandoned by a stopped process can be told apart.
    updated_at       INTEGER NOT NULL
);
CREATE INDEX documents_conversation ON documents (conversation_id, created_at, id);
CREATE INDEX documents_owner ON documents (owner_id);
CREATE INDEX documents_sha256 ON documents (sha256);
CREATE INDEX documents_status ON documents (status, updated_at);

-- `seq` is the full-text index's row key (see messages in 0001). The embedding is the vector's
-- f32 values, little-endian.
CREATE TABLE document_chunks (
    seq              INTEGER PRIMARY KEY,
    document_id      BLOB NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    owner_id         BLOB NOT NULL,
    conversation_id  BLOB NOT NULL,
    chunk_index      INTEGER NOT NULL,
    page             INTEGER,
    text             TEXT NOT NULL,
    embedding        BLOB NOT NULL,
    UNIQUE (document_id, chunk_index)
);
CREATE INDEX document_chunks_conversation ON document_chunks (conversation_id);

CREATE VIRTUAL TABLE document_chunks_fts USING fts5 (text, content = 'document_chunks', content_rowid = 'seq');
CREATE TRIGGER document_chunks_fts_insert AFTER INSERT ON document_chunks BEGIN
    INSERT INTO document_chunks_fts (rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER document_chunks_fts_delete AFTER DELETE ON document_chunks BEGIN
    INSERT INTO document_chunks_fts (document_chunks_fts, rowid, text) VALUES ('delete', old.seq, old.text);
END;

-- The sources a reply was given (a JSON array), shown with it.
ALTER TABLE messages ADD COLUMN citations TEXT;
