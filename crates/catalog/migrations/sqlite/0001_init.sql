-- Timestamps are INTEGER microseconds since the epoch (kit::Timestamp); UUIDs are 16-byte BLOBs.
-- The model catalog: written by the admin service, read by explore and inference.
-- List-valued fields (families, languages, capabilities, allowed roles, tag names) are kept as
-- text with a separator around every item (`|a|b|`), so that one portable `LIKE '%|a|%'` tests
-- membership on both databases; `search_text` holds the lower-cased words of the name,
-- description and tags, each preceded by a space, for word-prefix search (`LIKE '% word%'`).
-- Names are lower-case, with a tag (`:latest` when none was given), as engines know them.
CREATE TABLE catalog_models (
    name                  TEXT PRIMARY KEY,
    description           TEXT NOT NULL DEFAULT '',
    version               TEXT,
    size_bytes            INTEGER,
    digest                TEXT,
    format                TEXT,
    family                TEXT,
    families              TEXT NOT NULL DEFAULT '|',
    parameter_size        TEXT,
    parameter_count       INTEGER,
    quantization_level    TEXT,
    quantization_version  INTEGER,
    architecture          TEXT,
    file_type             TEXT,
    context_length        INTEGER,
    license               TEXT,
    template              TEXT,
    modelfile             TEXT,
    languages             TEXT NOT NULL DEFAULT '|',
    reference_url         TEXT,
    image_url             TEXT,
    capabilities          TEXT NOT NULL DEFAULT '|',
    released_at           INTEGER,
    public                INTEGER NOT NULL DEFAULT 1,
    allowed_roles         TEXT NOT NULL DEFAULT '|',
    tag_names             TEXT NOT NULL DEFAULT '|',
    search_text           TEXT NOT NULL DEFAULT '',
    requests              INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    deleted_at            INTEGER
);
CREATE INDEX catalog_models_created ON catalog_models (created_at, name);
CREATE INDEX catalog_models_requests ON catalog_models (requests, name);

CREATE TABLE catalog_tags (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    -- The name lower-cased (Unicode-aware, in Rust): names are unique whatever their case.
    name_key    TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE catalog_model_tags (
    model   TEXT NOT NULL REFERENCES catalog_models (name) ON DELETE CASCADE,
    tag_id  BLOB NOT NULL REFERENCES catalog_tags (id) ON DELETE CASCADE,
    PRIMARY KEY (model, tag_id)
);
CREATE INDEX catalog_model_tags_tag ON catalog_model_tags (tag_id);

-- The transactional outbox (kit::outbox): catalog events and audit records, written with the
-- changes they describe.
CREATE TABLE catalog_outbox (
    id            BLOB PRIMARY KEY,
    exchange      TEXT NOT NULL,
    routing_key   TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    payload       BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    available_at  INTEGER NOT NULL,
    attempts      INTEGER NOT NULL
);
CREATE INDEX catalog_outbox_available ON catalog_outbox (available_at);
