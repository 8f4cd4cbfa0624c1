-- The outbox table that kit::outbox::Outbox::new would create, created here so that both
-- backends get it from migrations (see the Postgres migration for why).
CREATE TABLE IF NOT EXISTS auth_outbox (
    id            BLOB PRIMARY KEY,
    exchange      TEXT NOT NULL,
    routing_key   TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    payload       BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    available_at  INTEGER NOT NULL,
    attempts      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_outbox_available ON auth_outbox (available_at);
