-- Timestamps are INTEGER microseconds since the epoch (kit::Timestamp); UUIDs are 16-byte BLOBs.
-- Every row carries its owner, so that every query can say `owner_id = $user`.

CREATE TABLE folders (
    id          BLOB PRIMARY KEY,
    owner_id    BLOB NOT NULL,
    -- NULL for the user's root folder, which every other folder descends from.
    parent_id   BLOB REFERENCES folders (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX folders_root_key ON folders (owner_id) WHERE parent_id IS NULL;
CREATE UNIQUE INDEX folders_name_key ON folders (parent_id, lower(name));
CREATE INDEX folders_owner ON folders (owner_id);

-- `seq` is the full-text index's row key: unlike a plain rowid it survives VACUUM.
CREATE TABLE conversations (
    seq              INTEGER PRIMARY KEY,
    id               BLOB NOT NULL UNIQUE,
    owner_id         BLOB NOT NULL,
    folder_id        BLOB NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    title            TEXT NOT NULL,
    -- Whether the title is still the placeholder, to be replaced by a generated one.
    title_pending    INTEGER NOT NULL,
    model            TEXT NOT NULL,
    system_prompt    TEXT,
    pinned           INTEGER NOT NULL DEFAULT 0,
    archived         INTEGER NOT NULL DEFAULT 0,
    active_leaf_id   BLOB,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX conversations_owner_updated ON conversations (owner_id, updated_at DESC, id DESC);
CREATE INDEX conversations_folder ON conversations (folder_id);

CREATE TABLE messages (
    seq                      INTEGER PRIMARY KEY,
    id                       BLOB NOT NULL UNIQUE,
    conversation_id          BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    owner_id                 BLOB NOT NULL,
    parent_id                BLOB REFERENCES messages (id) ON DELETE CASCADE,
    role                     TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content                  TEXT NOT NULL,
    -- complete | streaming | stopped | failed
    status                   TEXT NOT NULL,
    model                    TEXT,
    error                    TEXT,
    prompt_tokens            INTEGER,
    completion_tokens        INTEGER,
    total_duration_ns        INTEGER,
    load_duration_ns         INTEGER,
    prompt_eval_duration_ns  INTEGER,
    eval_duration_ns         INTEGER,
    time_to_first_token_ns   INTEGER,
    -- Messages of the history left out to fit the model's context (the stated policy).
    context_dropped          INTEGER NOT NULL DEFAULT 0,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at);
CREATE INDEX messages_parent ON messages (parent_id);

-- Full-text search over titles and message content (unicode61 tokens, no stemming: the same
-- matching as Postgres's 'simple' configuration).
CREATE VIRTUAL TABLE conversations_fts USING fts5 (title, content = 'conversations', content_rowid = 'seq');
CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversations_fts (rowid, title) VALUES (new.seq, new.title);
END;
CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
    INSERT INTO conversations_fts (conversations_fts, rowid, title) VALUES ('delete', old.seq, old.title);
END;
CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
    INSERT INTO conversations_fts (conversations_fts, rowid, title) VALUES ('delete', old.seq, old.title);
    INSERT INTO conversations_fts (rowid, title) VALUES (new.seq, new.title);
END;

CREATE VIRTUAL TABLE messages_fts USING fts5 (content, content = 'messages', content_rowid = 'seq');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.seq, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.seq, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.seq, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.seq, new.content);
END;

CREATE TABLE notes (
    id               BLOB PRIMARY KEY,
    owner_id         BLOB NOT NULL,
    message_id       BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    -- The highlighted range of the reply, in characters.
    start_offset     INTEGER NOT NULL,
    end_offset       INTEGER NOT NULL,
    text             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX notes_message ON notes (message_id);

CREATE TABLE feedback (
    id               BLOB PRIMARY KEY,
    owner_id         BLOB NOT NULL,
    message_id       BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    -- 1 (good) or -1 (bad).
    rating           INTEGER NOT NULL,
    comment          TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX feedback_message_owner_key ON feedback (message_id, owner_id);
