//! The auth service: accounts, login sessions (rotating refresh tokens), EdDSA access tokens,
//! password reset by mail, roles and personal API keys. See `docs/auth.md`.

mod config;
mod error;
mod http;
mod identity;
mod mail;
mod models;
mod password;
mod policy;
mod secrets;
mod service;
mod signing;
mod store;

use std::sync::Arc;

use kit::authn::{Authenticator, IdentitySource};
use kit::config::Platform;
use kit::http::{Dependency, Readiness};
use kit::outbox::Outbox;
use kit::service::ServiceHandle;
use tokio_util::sync::CancellationToken;

pub use config::{AuthConfig, FirstAdmin, MailConfig, MailTransport};
pub use error::AuthError;
pub use mail::{LogMailer, MailError, Mailer, RecordingMailer, SentMail, SmtpMailer};
pub use service::NewUser;

pub const NAME: &str = "auth";

pub static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: &sqlx::migrate!("migrations/postgres"),
    sqlite: &sqlx::migrate!("migrations/sqlite"),
};

/// A started auth service.
pub struct Auth {
    pub handle: ServiceHandle,
    /// Verifies credentials against this service directly; share it with the other services of
    /// the process.
    pub authenticator: Arc<Authenticator>,
    pub identity: Arc<dyn IdentitySource>,
}

/// Starts the service with the mailer its configuration names.
pub async fn start(platform: &Platform, config: &AuthConfig, shutdown: CancellationToken) -> Result<Auth, AuthError> {
    start_with_mailer(platform, config, shutdown, mail::from_config(&config.mail)?).await
}

/// Starts the service: migrates its database, loads or creates the signing key, creates the
/// first admin if configured, and starts the outbox relay (stopped by `shutdown`).
pub async fn start_with_mailer(
    platform: &Platform,
    config: &AuthConfig,
    shutdown: CancellationToken,
    mailer: Arc<dyn Mailer>,
) -> Result<Auth, AuthError> {
    let (service, store) = open(platform, config, mailer).await?;
    tokio::spawn(store.outbox().clone().run(shutdown));
    if let Some(admin) = &config.first_admin {
        service.ensure_first_admin(admin).await?;
    }
    let identity: Arc<dyn IdentitySource> = Arc::new(identity::LocalIdentitySource(service.clone()));
    let tokens = &platform.config.tokens;
    let authenticator =
        Arc::new(Authenticator::new(identity.clone(), platform.cache.clone(), &tokens.issuer, &tokens.audience, true));
    let state = http::AppState { service, authn: authenticator.clone(), secure_cookie: config.refresh_cookie_secure };
    let (router, openapi) = http::routes().split_for_parts();
    let router = kit::http::service_layers(router.with_state(state), NAME);
    let readiness = Readiness::default()
        .with(Dependency::Database(NAME, store.db().clone()))
        .with(Dependency::Cache(platform.cache.clone()))
        .with(Dependency::Bus(platform.bus.clone()));
    Ok(Auth { handle: ServiceHandle { name: NAME, router, readiness, openapi }, authenticator, identity })
}

/// Creates a user outside the API, with the same rules as registration; `admin` gives the
/// Admin role besides User. Its `user.registered` event goes out when the service next runs.
pub async fn create_user(platform: &Platform, config: &AuthConfig, user: NewUser) -> Result<uuid::Uuid, AuthError> {
    let (service, _) = open(platform, config, Arc::new(LogMailer)).await?;
    service.create_user(user).await
}

/// The OpenAPI description of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::routes().into_openapi()
}

async fn open(
    platform: &Platform,
    config: &AuthConfig,
    mailer: Arc<dyn Mailer>,
) -> Result<(Arc<service::AuthService>, store::Store), AuthError> {
    config.validate()?;
    let db = platform.database(NAME, &MIGRATIONS).await?;
    let outbox = Outbox::new(db.clone(), NAME, platform.bus.clone());
    let store = store::Store::new(db, outbox);
    let signer = signing::Signer::load_or_create(&store, &platform.config.tokens, config.access_token_ttl).await?;
    let service = service::AuthService::new(store.clone(), signer, mailer, platform.cache.clone(), config.clone());
    Ok((Arc::new(service), store))
}
