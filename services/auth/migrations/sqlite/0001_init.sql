-- Timestamps are INTEGER microseconds since the epoch (kit::Timestamp); UUIDs are 16-byte BLOBs.
CREATE TABLE users (
    id             BLOB PRIMARY KEY,
    username       TEXT NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    token_version  INTEGER NOT NULL DEFAULT 0,
    is_active      INTEGER NOT NULL DEFAULT 1,
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until   INTEGER,
    deleted_at     INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    last_login_at  INTEGER
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);
INSERT INTO roles (name, created_at) VALUES
    ('Admin', CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    ('User', CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));

CREATE TABLE user_roles (
    user_id  BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role     TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   BLOB NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE password_resets (
    token_hash  TEXT PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX password_resets_user ON password_resets (user_id);

CREATE TABLE api_keys (
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    expires_at    INTEGER
);
CREATE INDEX api_keys_user ON api_keys (user_id, id);

-- `generation` is unique so that instances starting together race on one row and all end up
-- signing with the same key.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    generation   INTEGER NOT NULL UNIQUE,
    private_key  BLOB NOT NULL,
    public_key   BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);
