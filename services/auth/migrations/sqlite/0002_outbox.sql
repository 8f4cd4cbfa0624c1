-- The transactional outbox (kit::outbox): events written with the changes they describe.
CREATE TABLE auth_outbox (
    id            BLOB PRIMARY KEY,
    exchange      TEXT NOT NULL,
    routing_key   TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    payload       BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    available_at  INTEGER NOT NULL,
    attempts      INTEGER NOT NULL
);
CREATE INDEX auth_outbox_available ON auth_outbox (available_at);
