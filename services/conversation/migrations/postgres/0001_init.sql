-- Every row carries its owner, so that every query can say `owner_id = $user`.

CREATE TABLE folders (
    id          UUID PRIMARY KEY,
    owner_id    UUID NOT NULL,
    -- NULL for the user's root folder, which every other folder descends from.
    parent_id   UUID REFERENCES folders (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX folders_root_key ON folders (owner_id) WHERE parent_id IS NULL;
CREATE UNIQUE INDEX folders_name_key ON folders (parent_id, lower(name));
CREATE INDEX folders_owner ON folders (owner_id);

CREATE TABLE conversations (
    id               UUID PRIMARY KEY,
    owner_id         UUID NOT NULL,
    folder_id        UUID NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    title            TEXT NOT NULL,
    -- Whether the title is still the placeholder, to be replaced by a generated one.
    title_pending    BOOLEAN NOT NULL,
    model            TEXT NOT NULL,
    system_prompt    TEXT,
    pinned           BOOLEAN NOT NULL DEFAULT FALSE,
    archived         BOOLEAN NOT NULL DEFAULT FALSE,
    active_leaf_id   UUID,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX conversations_owner_updated ON conversations (owner_id, updated_at DESC, id DESC);
CREATE INDEX conversations_folder ON conversations (folder_id);
-- Full-text search with the 'simple' configuration (no stemming): the same matching as SQLite's
-- FTS5 unicode61 tokenizer.
CREATE INDEX conversations_title_fts ON conversations USING GIN (to_tsvector('simple', title));

CREATE TABLE messages (
    id                       UUID PRIMARY KEY,
    conversation_id          UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    owner_id                 UUID NOT NULL,
    parent_id                UUID REFERENCES messages (id) ON DELETE CASCADE,
    role                     TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content                  TEXT NOT NULL,
    -- complete | streaming | stopped | failed
    status                   TEXT NOT NULL,
    model                    TEXT,
    error                    TEXT,
    prompt_tokens            BIGINT,
    completion_tokens        BIGINT,
    total_duration_ns        BIGINT,
    load_duration_ns         BIGINT,
    prompt_eval_duration_ns  BIGINT,
    eval_duration_ns         BIGINT,
    time_to_first_token_ns   BIGINT,
    -- Messages of the history left out to fit the model's context (the stated policy).
    context_dropped          BIGINT NOT NULL DEFAULT 0,
    created_at               TIMESTAMPTZ NOT NULL,
    updated_at               TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at);
CREATE INDEX messages_parent ON messages (parent_id);
CREATE INDEX messages_content_fts ON messages USING GIN (to_tsvector('simple', content));

CREATE TABLE notes (
    id               UUID PRIMARY KEY,
    owner_id         UUID NOT NULL,
    message_id       UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    -- The highlighted range of the reply, in characters.
    start_offset     BIGINT NOT NULL,
    end_offset       BIGINT NOT NULL,
    text             TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX notes_message ON notes (message_id);

CREATE TABLE feedback (
    id               UUID PRIMARY KEY,
    owner_id         UUID NOT NULL,
    message_id       UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    -- 1 (good) or -1 (bad).
    rating           SMALLINT NOT NULL,
    comment          TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX feedback_message_owner_key ON feedback (message_id, owner_id);
