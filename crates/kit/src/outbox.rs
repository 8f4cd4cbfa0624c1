//! The transactional outbox: events that must not be lost are inserted in the same transaction
//! as the state change they describe, and a relay publishes them to the bus, retrying while the
//! broker is down. Delivery is at least once; consumers dedupe on the message id.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sqlx::{AssertSqlSafe, Postgres, Sqlite, Transaction};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bus::{Bus, EVENTS_EXCHANGE, Event};
use crate::db::Db;
use crate::timestamp::Timestamp;
use crate::with_db;

/// How long a relay owns a claimed row before another relay may take it (crash safety).
const LEASE: Duration = Duration::from_secs(30);
const BATCH: i64 = 100;
const POLL: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: String,
    pub payload: Vec<u8>,
}

impl From<&Event> for OutboxMessage {
    fn from(ev: &Event) -> Self {
        Self {
            exchange: EVENTS_EXCHANGE.to_owned(),
            routing_key: ev.kind.clone(),
            message_id: ev.id.to_string(),
            payload: serde_json::to_vec(ev).expect("events serialize"),
        }
    }
}

/// Inserts an outbox row inside the caller's transaction.
pub trait OutboxTx {
    fn enqueue(&mut self, table: &str, msg: &OutboxMessage) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

macro_rules! impl_outbox_tx {
    ($db:ty) => {
        impl OutboxTx for Transaction<'_, $db> {
            async fn enqueue(&mut self, table: &str, msg: &OutboxMessage) -> Result<(), sqlx::Error> {
                let now = Timestamp::now();
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {table} (id, exchange, routing_key, message_id, payload, created_at, available_at, attempts) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6, 0)"
                )))
                .bind(Uuid::now_v7())
                .bind(&msg.exchange)
                .bind(&msg.routing_key)
                .bind(&msg.message_id)
                .bind(&msg.payload)
                .bind(now)
                .execute(&mut **self)
                .await?;
                Ok(())
            }
        }
    };
}
impl_outbox_tx!(Postgres);
impl_outbox_tx!(Sqlite);

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    exchange: String,
    routing_key: String,
    message_id: String,
    payload: Vec<u8>,
    created_at: Timestamp,
    attempts: i32,
}

/// One service's outbox table and its relay.
#[derive(Clone)]
pub struct Outbox {
    db: Db,
    table: Arc<str>,
    bus: Bus,
    wake: Arc<Notify>,
}

impl Outbox {
    /// The outbox of `service`: the table `<service>_outbox`, which the service's migrations
    /// create (migrations run under a lock; `CREATE TABLE IF NOT EXISTS` from several instances
    /// starting at once can fail on Postgres). Its columns: `id` (UUID/BLOB primary key),
    /// `exchange`, `routing_key`, `message_id` (TEXT), `payload` (BYTEA/BLOB), `created_at`,
    /// `available_at` ([`Timestamp`]), `attempts` (INTEGER), and an index on `available_at`.
    pub fn new(db: Db, service: &str, bus: Bus) -> Self {
        Self { db, table: format!("{service}_outbox").into(), bus, wake: Arc::new(Notify::new()) }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Adds an event to the outbox inside `tx`. Call [`Outbox::wake`] after the commit.
    pub async fn enqueue<T: OutboxTx>(&self, tx: &mut T, event: &Event) -> Result<(), sqlx::Error> {
        tx.enqueue(&self.table, &OutboxMessage::from(event)).await
    }

    /// Tells the relay that new rows were committed, so they go out without waiting for a poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wakes the relay and waits, at most `within`, until no row is left to publish; whether it
    /// got there. A writer whose readers elsewhere follow its events calls this before answering,
    /// so that its caller's next request sees the change there too; when the broker is down it
    /// answers after `within` anyway, and the events follow once the broker is back.
    pub async fn flush(&self, within: Duration) -> bool {
        self.wake();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if matches!(self.pending().await, Ok(0)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Rows not yet published.
    pub async fn pending(&self) -> Result<i64, sqlx::Error> {
        let sql = format!("SELECT COUNT(*) FROM {}", self.table);
        with_db!(&self.db, |pool| sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(pool).await)
    }

    /// Publishes committed rows until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let drained = match self.relay_batch().await {
                Ok(n) => n < BATCH as usize,
                Err(e) => {
                    tracing::warn!(table = %self.table, error = %e, "outbox relay: database error");
                    true
                }
            };
            if drained {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.cancelled() => return,
                }
            } else if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Claims and publishes one batch; returns how many rows it claimed.
    async fn relay_batch(&self) -> Result<usize, sqlx::Error> {
        let now = Timestamp::now();
        let lease_until = now + time::Duration::try_from(LEASE).expect("lease fits");
        let t = &self.table;
        // The outer `available_at` test makes a concurrent relay skip rows another one just
        // claimed (Postgres re-checks it after waiting on the row lock).
        let claim = format!(
            "UPDATE {t} SET available_at = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM {t} WHERE available_at <= $2 ORDER BY created_at LIMIT $3) AND available_at <= $2 \
             RETURNING id, exchange, routing_key, message_id, payload, created_at, attempts"
        );
        let mut rows: Vec<Row> = with_db!(&self.db, |pool| {
            sqlx::query_as(AssertSqlSafe(claim)).bind(lease_until).bind(now).bind(BATCH).fetch_all(pool).await?
        });
        rows.sort_by_key(|r| r.created_at);
        let claimed = rows.len();
        let mut failed_from = None;
        for (i, row) in rows.iter().enumerate() {
            match self
                .bus
                .publish(&row.exchange, &row.routing_key, &row.message_id, Bytes::from(row.payload.clone()))
                .await
            {
                Ok(()) => {
                    let sql = format!("DELETE FROM {t} WHERE id = $1");
                    with_db!(&self.db, |pool| sqlx::query(AssertSqlSafe(sql))
                        .bind(row.id)
                        .execute(pool)
                        .await?
                        .rows_affected());
                    metrics::counter!("outbox_published_total", "table" => t.to_string()).increment(1);
                }
                Err(e) => {
                    tracing::warn!(table = %t, key = %row.routing_key, error = %e, "outbox relay: publish failed; will retry");
                    failed_from = Some(i);
                    break;
                }
            }
        }
        if let Some(i) = failed_from {
            // Release the unpublished rows for a retry after a backoff instead of the full lease.
            for row in &rows[i..] {
                let delay =
                    Duration::from_millis(250u64.saturating_mul(1 << row.attempts.clamp(0, 8))).min(MAX_RETRY_DELAY);
                let at = Timestamp::now() + time::Duration::try_from(delay).expect("delay fits");
                let sql = format!("UPDATE {t} SET available_at = $1 WHERE id = $2");
                with_db!(&self.db, |pool| sqlx::query(AssertSqlSafe(sql))
                    .bind(at)
                    .bind(row.id)
                    .execute(pool)
                    .await?
                    .rows_affected());
            }
            return Ok(0);
        }
        Ok(claimed)
    }
}
