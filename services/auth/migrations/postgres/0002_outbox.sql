-- The outbox table that kit::outbox::Outbox::new would create, created here instead: migrations
-- run under a lock, while concurrent `CREATE ... IF NOT EXISTS` at start-up of several instances
-- can fail on Postgres.
CREATE TABLE IF NOT EXISTS auth_outbox (
    id            UUID PRIMARY KEY,
    exchange      TEXT NOT NULL,
    routing_key   TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    payload       BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    available_at  TIMESTAMPTZ NOT NULL,
    attempts      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_outbox_available ON auth_outbox (available_at);
