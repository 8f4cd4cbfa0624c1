-- The transactional outbox (kit::outbox): usage records wait here while the broker is down.
CREATE TABLE inference_outbox (
    id            BLOB PRIMARY KEY,
    exchange      TEXT NOT NULL,
    routing_key   TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    payload       BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    available_at  INTEGER NOT NULL,
    attempts      INTEGER NOT NULL
);
CREATE INDEX inference_outbox_available ON inference_outbox (available_at);
