//! Test infrastructure: a fresh, isolated set of backends per test.
//!
//! `OLLAMANET_TEST_STACK=embedded` (the default) gives a temporary data directory (SQLite, memory
//! cache, in-process bus). `OLLAMANET_TEST_STACK=full` gives a new Postgres database, a Redis key
//! prefix and a RabbitMQ namespace of the test's own on the local servers, all removed when the
//! [`TestInfra`] is dropped.

use std::time::Duration;

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::config::InfraConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    Embedded,
    Full,
}

pub fn stack() -> Stack {
    match std::env::var("OLLAMANET_TEST_STACK").as_deref() {
        Ok("full") => Stack::Full,
        Ok("embedded") | Err(_) => Stack::Embedded,
        Ok(other) => panic!("OLLAMANET_TEST_STACK must be `embedded` or `full`, not {other:?}"),
    }
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

pub fn postgres_admin_url() -> String {
    env_or("OLLAMANET_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
}

pub fn redis_url() -> String {
    env_or("OLLAMANET_TEST_REDIS", "redis://127.0.0.1:6379")
}

pub fn amqp_url() -> String {
    env_or("OLLAMANET_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

/// Backends for one test. Keep it alive for the test's duration.
pub struct TestInfra {
    pub config: InfraConfig,
    pub stack: Stack,
    /// Unique per test: database name, key prefix and bus namespace derive from it.
    pub id: String,
    dir: tempfile::TempDir,
    database: Option<String>,
}

impl TestInfra {
    pub async fn new() -> Self {
        Self::with_stack(stack()).await
    }

    pub async fn with_stack(stack: Stack) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = InfraConfig { data_dir: dir.path().to_path_buf(), ..InfraConfig::default() };
        config.log.level = "warn".into();
        let mut database = None;
        if stack == Stack::Full {
            let name = format!("test_{id}");
            let mut admin = PgConnection::connect(&postgres_admin_url()).await.expect("connect to the test Postgres");
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("create database");
            let base = postgres_admin_url();
            let (server, _) = base.rsplit_once('/').expect("postgres url has a database");
            config.database_url = Some(format!("{server}/{name}"));
            config.redis_url = Some(redis_url());
            config.cache_prefix = format!("test:{id}:");
            config.amqp_url = Some(amqp_url());
            config.bus_namespace = format!("test-{id}.");
            // The test's own: a message signed for another test's deployment does not verify here.
            config.bus_secret = Some(crate::bus::BusSecret::new(format!("test-bus-secret-{id}")));
            database = Some(name);
        }
        Self { config, stack, id, dir, database }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TestInfra {
    fn drop(&mut self) {
        if self.stack != Stack::Full {
            return;
        }
        let database = self.database.take();
        let prefix = self.config.cache_prefix.clone();
        let namespace = self.config.bus_namespace.clone();
        // Drop runs inside the test's runtime; clean up on a thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Some(name) = database {
                    drop_database(&name).await;
                }
                clear_redis(&prefix).await;
                clear_bus(&namespace).await;
            });
        });
        let _ = cleanup.join();
    }
}

async fn drop_database(name: &str) {
    if let Ok(mut admin) = PgConnection::connect(&postgres_admin_url()).await {
        let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&mut admin)
            .await;
    }
}

async fn clear_redis(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else { return };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return };
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}

async fn clear_bus(namespace: &str) {
    let url = amqp_url();
    let connect = lapin::Connection::connect(&url, lapin::ConnectionProperties::default());
    let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connect).await else { return };
    let Ok(ch) = conn.create_channel().await else { return };
    for exchange in [crate::bus::EVENTS_EXCHANGE, crate::bus::DISCOVERY_EXCHANGE, "ollamanet.dlx"] {
        let _ = ch.exchange_delete(format!("{namespace}{exchange}").into(), ExchangeDeleteOptions::default()).await;
    }
    let _ = ch.queue_delete(format!("{namespace}ollamanet.dead-letter").into(), QueueDeleteOptions::default()).await;
    let _ = conn.close(200, "test cleanup".into()).await;
}

/// An https server for tests, standing for a peer outside the platform that speaks TLS (a model
/// registry, a tunnel in front of an engine): serves `router` on 127.0.0.1 with a certificate for
/// `localhost` and `127.0.0.1` issued by a CA made for it. Returns the base URL and the CA
/// certificate (PEM), which a client must be told to trust.
pub async fn serve_tls(router: axum::Router) -> (String, String) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    crate::tls::install_crypto_provider();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server parameters")
        .signed_by(&key, &ca)
        .expect("server certificate");
    let server_config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
        .expect("server TLS configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://localhost:{}", listener.local_addr().expect("address").port());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends its handshake here; that is the test's business.
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                    .await;
            });
        }
    });
    (url, ca.pem())
}
