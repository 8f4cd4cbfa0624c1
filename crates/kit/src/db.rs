//! Database pools for Postgres and SQLite, with per-service migrations.
//!
//! Stores write their SQL once in the dialect both backends accept (`$n` placeholders,
//! `RETURNING`, `ON CONFLICT`) and run it through [`with_db!`], which type-checks the body once
//! per backend. Where the dialects differ, a store matches on [`Db`] explicitly.

use std::str::FromStr;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::problem::Problem;

#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A service's migrations for both backends, from `sqlx::migrate!("migrations/<backend>")`.
pub struct Migrations {
    pub postgres: &'static Migrator,
    pub sqlite: &'static Migrator,
}

#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    /// How long a query waits for a connection before the request fails with 503.
    pub acquire_timeout: Duration,
    /// How long start-up keeps retrying an unreachable database before giving up.
    pub connect_deadline: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(3), connect_deadline: Duration::from_secs(60) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database url scheme (expected postgres:// or sqlite://): {0}")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend.
#[macro_export]
macro_rules! with_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($pool) => $body,
        }
    };
}

impl Db {
    /// Connects, retrying with backoff until `opts.connect_deadline`, then applies the service's
    /// migrations, recorded in the service's own table (`_<service>_migrations`) so that services
    /// sharing one database do not see each other's history.
    pub async fn connect(url: &str, service: &str, migrations: &Migrations, opts: &PoolOptions) -> Result<Db, DbError> {
        let db = (|| Self::open(url, opts))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5))
                    .with_total_delay(Some(opts.connect_deadline))
                    .without_max_times(),
            )
            .when(|e| matches!(e, DbError::Sqlx(err) if is_unavailable(err)))
            .notify(|e, wait| tracing::warn!(error = %e, ?wait, "database not reachable yet; retrying"))
            .await?;
        db.migrate(service, migrations).await?;
        Ok(db)
    }

    async fn open(url: &str, opts: &PoolOptions) -> Result<Db, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(options)
                .await?;
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.min(8))
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        } else {
            Err(DbError::UnsupportedUrl(url.split(':').next().unwrap_or_default().to_owned()))
        }
    }

    async fn migrate(&self, service: &str, migrations: &Migrations) -> Result<(), DbError> {
        let table = format!("_{service}_migrations");
        match self {
            Db::Postgres(pool) => {
                let mut m = clone_migrator(migrations.postgres);
                m.dangerous_set_table_name(table);
                m.run(pool).await?;
            }
            Db::Sqlite(pool) => {
                let mut m = clone_migrator(migrations.sqlite);
                m.dangerous_set_table_name(table);
                m.run(pool).await?;
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_db!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    pub async fn close(&self) {
        with_db!(self, |pool| pool.close().await)
    }
}

fn clone_migrator(m: &Migrator) -> Migrator {
    let mut out = Migrator::with_migrations(m.migrations.to_vec());
    out.set_ignore_missing(m.ignore_missing);
    out.set_locking(m.locking);
    out
}

/// Starts a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead of one failing when it
/// upgrades a read lock.
pub trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(&self) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for PgPool {
    type Db = Postgres;
    fn begin_write(&self) -> impl Future<Output = Result<Transaction<'static, Postgres>, sqlx::Error>> + Send {
        self.begin()
    }
}

impl BeginWrite for SqlitePool {
    type Db = Sqlite;
    fn begin_write(&self) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

/// True when the error means the database cannot be reached right now (as opposed to a bad query).
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            // Postgres: 57P01 admin shutdown, 57P03 cannot connect now, 08xxx connection exceptions.
            db.code().is_some_and(|c| c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03")
        }
        _ => false,
    }
}

/// When the error is a unique-constraint violation, the constraint's name (Postgres) or the
/// failing column list (SQLite: `users.email`), so a store can map it to a field.
pub fn unique_violation(e: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = e else { return None };
    if !db.is_unique_violation() {
        return None;
    }
    Some(db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned()))
}

/// The problem a client sees for a database error that the store did not map to something
/// more specific: 503 while the database is unreachable, otherwise a logged 500.
pub fn problem(e: &sqlx::Error) -> Problem {
    if is_unavailable(e) {
        tracing::warn!(error = %e, "database unavailable");
        Problem::unavailable("database_unavailable", "the database is not reachable; retry shortly")
    } else {
        tracing::error!(error = %e, "database error");
        Problem::internal()
    }
}
