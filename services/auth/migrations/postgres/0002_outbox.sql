-- The transactional outbox (kit::outbox): events written with the changes they describe.
CREATE TABLE auth_outbox (
    id            UUID PRIMARY KEY,
    exchange      TEXT NOT NULL,
    routing_key   TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    payload       BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    available_at  TIMESTAMPTZ NOT NULL,
    attempts      INTEGER NOT NULL
);
CREATE INDEX auth_outbox_available ON auth_outbox (available_at);
