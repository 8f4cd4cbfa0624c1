-- Timestamps are INTEGER microseconds since the epoch (kit::Timestamp); UUIDs are 16-byte BLOBs.
-- The audit log: one row per `admin.audited` event, whichever service acted; the event id is
-- the key, so a redelivered event is stored once.
CREATE TABLE admin_audit (
    id           BLOB PRIMARY KEY,
    occurred_at  INTEGER NOT NULL,
    source       TEXT NOT NULL,
    actor_id     BLOB NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    before       TEXT,
    after        TEXT,
    request_id   TEXT
);
CREATE INDEX admin_audit_time ON admin_audit (occurred_at, id);
CREATE INDEX admin_audit_target ON admin_audit (target_type, target_id);

-- Usage per day, user and model, summed from `usage.recorded` events.
CREATE TABLE admin_usage (
    day            TEXT NOT NULL,
    user_id        BLOB NOT NULL,
    model          TEXT NOT NULL,
    requests       INTEGER NOT NULL,
    prompt_tokens  INTEGER NOT NULL,
    eval_tokens    INTEGER NOT NULL,
    PRIMARY KEY (day, user_id, model)
);
-- Usage events already counted (a redelivered one is not counted twice).
CREATE TABLE admin_usage_events (
    id           BLOB PRIMARY KEY,
    counted_at   INTEGER NOT NULL
);
