-- Documents attached to conversations, their chunks with embeddings, and the citations of the
-- replies that used them. See docs/documents.md.

CREATE TABLE documents (
    id               UUID PRIMARY KEY,
    owner_id         UUID NOT NULL,
    conversation_id  UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- The client's file name made safe to show; never part of a path.
    name             TEXT NOT NULL,
    -- pdf | docx | markdown | text, as told by the content.
    kind             TEXT NOT NULL,
    size_bytes       BIGINT NOT NULL,
    -- The stored file's name (content-addressed); several documents may share one file.
    sha256           TEXT NOT NULL,
    -- pending | processing | ready | failed
    status           TEXT NOT NULL,
    error_code       TEXT,
    error            TEXT,
    -- Pages of a PDF; NULL for formats without fixed pages.
    pages            BIGINT,
    chunk_count      BIGINT NOT NULL DEFAULT 0,
    embed_model      TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    -- Touched while processing, so that work abandoned by a stopped process can be told apart.
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX documents_conversation ON documents (conversation_id, created_at, id);
CREATE INDEX documents_owner ON documents (owner_id);
CREATE INDEX documents_sha256 ON documents (sha256);
CREATE INDEX documents_status ON documents (status, updated_at);

-- The embedding is the vector's f32 values, little-endian.
CREATE TABLE document_chunks (
    document_id      UUID NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    chunk_index      BIGINT NOT NULL,
    owner_id         UUID NOT NULL,
    conversation_id  UUID NOT NULL,
    page             BIGINT,
    text             TEXT NOT NULL,
    embedding        BYTEA NOT NULL,
    PRIMARY KEY (document_id, chunk_index)
);
CREATE INDEX document_chunks_conversation ON document_chunks (conversation_id);
-- The 'simple' configuration (no stemming), as for messages: the same matching as FTS5.
CREATE INDEX document_chunks_fts ON document_chunks USING GIN (to_tsvector('simple', text));

-- The sources a reply was given, shown with it.
ALTER TABLE messages ADD COLUMN citations JSONB;
