//! Authentication shared by the gateway and every service: who is calling, from a bearer JWT or
//! a personal API key (`onk_…`).
//!
//! A JWT's signature is checked locally against the auth service's JWKS. Its `tv` (token version)
//! is compared with the user's current version, read from the cache and, on a miss, from the
//! auth service (introspection). The auth service deletes a user's cache entry whenever the
//! user's access changes, so a password change, a lock or a role change kills existing tokens
//! at once in every process that shares the cache; processes with a private cache also drop the
//! entry when the `user.updated` event arrives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use backon::Retryable;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::bus::{Event, Handler, HandlerError, Message};
use crate::cache::Cache;
use crate::problem::Problem;
use crate::tokens::{AccessClaims, Jwks, TokenError, Verifier};

/// Prefix of personal API keys.
pub const API_KEY_PREFIX: &str = "onk_";
/// How long a user's state or an API key's identity stays cached without an invalidation.
pub const STATE_TTL: Duration = Duration::from_secs(60);
/// Unknown key ids trigger at most one JWKS refresh per this interval.
const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    AccessToken,
    ApiKey,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Identity {
    pub user_id: Uuid,
    pub email: String,
    pub username: String,
    pub roles: Vec<String>,
    pub token_version: i64,
    pub credential: CredentialKind,
}

impl Identity {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    pub fn has_any_role(&self, roles: &[String]) -> bool {
        roles.is_empty() || roles.iter().any(|r| self.has_role(r))
    }

    fn from_claims(c: &AccessClaims) -> Self {
        Self {
            user_id: c.sub,
            email: c.email.clone(),
            username: c.username.clone(),
            roles: c.roles.clone(),
            token_version: c.tv,
            credential: CredentialKind::AccessToken,
        }
    }
}

/// What the auth service says a credential stands for now.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Introspection {
    /// The user behind the credential, with current roles and token version.
    pub identity: Identity,
    /// False when the account may not be used (locked, inactive or deleted).
    pub active: bool,
}

/// The current access state of a user, as cached.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserState {
    token_version: i64,
    active: bool,
}

/// Where the authenticator gets public keys and the current state behind a credential: the
/// auth service, in-process or over HTTP.
#[async_trait]
pub trait IdentitySource: Send + Sync + 'static {
    async fn jwks(&self) -> Result<Jwks, Problem>;
    /// `Ok(None)` when the credential is not genuine (bad signature, unknown or revoked API key).
    /// A genuine but stale JWT still introspects, so that its user's state can be cached.
    async fn introspect(&self, credential: &str) -> Result<Option<Introspection>, Problem>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("the token has been revoked")]
    Revoked,
    #[error("the account is locked, inactive or deleted")]
    AccountDisabled,
    #[error("the API key is invalid or revoked")]
    InvalidApiKey,
    #[error("the authorization header is malformed")]
    MalformedHeader,
}

impl AuthnError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthnError::Token(t) => t.code(),
            AuthnError::Revoked => "token_revoked",
            AuthnError::AccountDisabled => "account_disabled",
            AuthnError::InvalidApiKey => "invalid_api_key",
            AuthnError::MalformedHeader => "invalid_token",
        }
    }

    pub fn into_problem(self) -> Problem {
        Problem::unauthorized(self.code(), self.to_string())
    }
}

/// A 401 for a missing or refused credential, with the `WWW-Authenticate` challenge.
pub fn challenge(problem: Problem) -> Response {
    let error = if problem.code == "unauthenticated" { "" } else { ", error=\"invalid_token\"" };
    let mut res = problem.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer realm=\"ollamanet\"{error}")) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

pub fn unauthenticated() -> Problem {
    Problem::unauthorized("unauthenticated", "authentication is required")
}

pub fn cache_key_user(user_id: Uuid) -> String {
    format!("authn:user:{user_id}")
}

pub fn cache_key_api_key(hash: &str) -> String {
    format!("authn:key:{hash}")
}

/// The SHA-256 of an API key, hex: how keys are stored and cached (never the key itself).
pub fn api_key_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Extracts the bearer credential from an `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthnError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| AuthnError::MalformedHeader)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthnError::MalformedHeader)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthnError::MalformedHeader);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthnError::MalformedHeader);
    }
    Ok(Some(token))
}

pub struct Authenticator {
    source: Arc<dyn IdentitySource>,
    cache: Cache,
    /// Whether user state and API-key identities may be cached: only when the auth service
    /// invalidates the same cache (it runs in this process, or the cache is Redis). Otherwise a
    /// revocation would go unseen for the entry's lifetime, so every request asks the auth service.
    cache_state: bool,
    verifier: ArcSwap<Verifier>,
    /// When the JWKS was last fetched; serialises refreshes and rate-limits them.
    jwks_fetched: Mutex<Option<Instant>>,
    /// Verified JWT claims by token, so a repeated token costs no signature check.
    verified: moka::future::Cache<Arc<str>, Arc<AccessClaims>>,
}

impl Authenticator {
    /// `auth_in_process`: the auth service shares this process (and so this cache).
    pub fn new(
        source: Arc<dyn IdentitySource>,
        cache: Cache,
        issuer: &str,
        audience: &str,
        auth_in_process: bool,
    ) -> Self {
        Self {
            source,
            cache_state: auth_in_process || cache.is_shared(),
            cache,
            verifier: ArcSwap::from_pointee(Verifier::new(&Jwks::default(), issuer, audience)),
            jwks_fetched: Mutex::new(None),
            verified: moka::future::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(60)).build(),
        }
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Authenticates the request's bearer credential; `Ok(None)` when it carries none.
    pub async fn authenticate_headers(&self, headers: &HeaderMap) -> Result<Option<Identity>, Problem> {
        match bearer(headers) {
            Ok(None) => Ok(None),
            Ok(Some(token)) => self.authenticate(token).await.map(Some),
            Err(e) => Err(e.into_problem()),
        }
    }

    /// Authenticates one bearer credential. Errors are 401 problems, or 503 when the auth
    /// service cannot be asked.
    pub async fn authenticate(&self, credential: &str) -> Result<Identity, Problem> {
        if credential.len() > crate::tokens::MAX_TOKEN_LEN {
            return Err(AuthnError::Token(TokenError::TooLarge).into_problem());
        }
        if credential.starts_with(API_KEY_PREFIX) {
            return self.authenticate_api_key(credential).await;
        }
        let claims = self.verify_jwt(credential).await.map_err(|e| AuthnError::from(e).into_problem())?;
        let identity = Identity::from_claims(&claims);
        let state = self.user_state(identity.user_id, credential).await?;
        if !state.active {
            return Err(AuthnError::AccountDisabled.into_problem());
        }
        if state.token_version != identity.token_version {
            return Err(AuthnError::Revoked.into_problem());
        }
        Ok(identity)
    }

    async fn authenticate_api_key(&self, key: &str) -> Result<Identity, Problem> {
        let hash = api_key_hash(key);
        let cache_key = cache_key_api_key(&hash);
        let cached = if self.cache_state { self.cache.get_json::<Identity>(&cache_key).await } else { None };
        let mut identity = match cached {
            Some(i) => i,
            None => self.introspect_api_key(key, &cache_key).await?,
        };
        let state = self.user_state(identity.user_id, key).await?;
        if !state.active {
            return Err(AuthnError::AccountDisabled.into_problem());
        }
        if state.token_version != identity.token_version {
            // Roles or e-mail may have changed since the identity was cached.
            identity = self.introspect_api_key(key, &cache_key).await?;
        }
        Ok(identity)
    }

    async fn introspect_api_key(&self, key: &str, cache_key: &str) -> Result<Identity, Problem> {
        let intro = self.source.introspect(key).await?.ok_or_else(|| AuthnError::InvalidApiKey.into_problem())?;
        if !intro.active {
            return Err(AuthnError::AccountDisabled.into_problem());
        }
        self.store_state(&intro).await;
        if self.cache_state {
            self.cache.set_json(cache_key, &intro.identity, STATE_TTL).await;
        }
        Ok(intro.identity)
    }

    async fn user_state(&self, user_id: Uuid, credential: &str) -> Result<UserState, Problem> {
        if self.cache_state
            && let Some(state) = self.cache.get_json::<UserState>(&cache_key_user(user_id)).await
        {
            return Ok(state);
        }
        let intro = self.source.introspect(credential).await?.ok_or_else(|| AuthnError::Revoked.into_problem())?;
        if intro.identity.user_id != user_id {
            return Err(AuthnError::Revoked.into_problem());
        }
        Ok(self.store_state(&intro).await)
    }

    async fn store_state(&self, intro: &Introspection) -> UserState {
        let state = UserState { token_version: intro.identity.token_version, active: intro.active };
        if self.cache_state {
            self.cache.set_json(&cache_key_user(intro.identity.user_id), &state, STATE_TTL).await;
        }
        state
    }

    async fn verify_jwt(&self, token: &str) -> Result<Arc<AccessClaims>, TokenError> {
        if let Some(claims) = self.verified.get(token).await {
            // Cached claims were valid when cached; expiry still moves on.
            if claims.exp + crate::tokens::LEEWAY_SECS as i64 <= time::OffsetDateTime::now_utc().unix_timestamp() {
                return Err(TokenError::Expired);
            }
            return Ok(claims);
        }
        let kid = Verifier::key_id(token)?;
        if !self.verifier.load().has_key(&kid) {
            self.refresh_jwks().await;
        }
        let claims = Arc::new(self.verifier.load().verify(token)?);
        self.verified.insert(token.into(), claims.clone()).await;
        Ok(claims)
    }

    /// Fetches the JWKS again unless it was fetched very recently, so that a flood of tokens with
    /// made-up key ids cannot turn into a flood of requests to the auth service. New keys are
    /// added; keys already known are pinned (see [`Verifier::with_new_keys`]).
    async fn refresh_jwks(&self) {
        let mut fetched = self.jwks_fetched.lock().await;
        if fetched.is_some_and(|at| at.elapsed() < JWKS_REFRESH_INTERVAL) {
            return;
        }
        match self.source.jwks().await {
            Ok(jwks) => {
                let (verifier, conflicts) = self.verifier.load().with_new_keys(&jwks);
                if !conflicts.is_empty() {
                    tracing::warn!(kids = ?conflicts, "the JWKS answered other keys for known key ids; kept the known keys");
                }
                self.verifier.store(Arc::new(verifier));
                *fetched = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "could not fetch the JWKS"),
        }
    }

    /// Forgets what is cached about a user (their state, the verified tokens stay but are checked
    /// against the new state).
    pub async fn forget_user(&self, user_id: Uuid) {
        self.cache.delete(&cache_key_user(user_id)).await;
    }
}

/// Drops cached user state when a `user.*` event says it changed; needed by processes whose
/// cache is not shared with the auth service.
pub struct ForgetChangedUsers(pub Arc<Authenticator>);

#[derive(Deserialize)]
struct UserChanged {
    user_id: Uuid,
}

#[async_trait]
impl Handler for ForgetChangedUsers {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        let (_, data) = Event::decode::<UserChanged>(msg)?;
        self.0.forget_user(data.user_id).await;
        Ok(())
    }
}

/// The authenticated caller, for handlers. In all-in-one mode the gateway has already
/// authenticated the request and attached the [`Identity`]; a request that reached the service
/// over the network is authenticated here from its bearer credential. `X-User-*` headers are
/// never trusted.
pub struct CurrentUser(pub Identity);

impl<S> FromRequestParts<S> for CurrentUser
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Ok(CurrentUser(identity.clone()));
        }
        let authn = Arc::<Authenticator>::from_ref(state);
        match authn.authenticate_headers(&parts.headers).await {
            Ok(Some(identity)) => {
                parts.extensions.insert(identity.clone());
                Ok(CurrentUser(identity))
            }
            Ok(None) => Err(challenge(unauthenticated())),
            Err(p) if p.status == 401 => Err(challenge(p)),
            Err(p) => Err(p.into_response()),
        }
    }
}

/// An authenticated caller with the `Admin` role (checked again here, not only at the gateway).
pub struct Admin(pub Identity);

pub const ADMIN_ROLE: &str = "Admin";
pub const USER_ROLE: &str = "User";

impl<S> FromRequestParts<S> for Admin
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentUser(identity) = CurrentUser::from_request_parts(parts, state).await?;
        if !identity.has_role(ADMIN_ROLE) {
            return Err(Problem::forbidden("this operation requires the Admin role").into_response());
        }
        Ok(Admin(identity))
    }
}

/// Where the auth service publishes its public keys.
pub const JWKS_PATH: &str = "/api/auth/.well-known/jwks.json";
/// The auth service's internal introspection endpoint (not routed by the gateway).
pub const INTROSPECT_PATH: &str = "/api/auth/introspect";

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntrospectRequest {
    pub token: String,
}

/// The auth service reached through an [`Upstream`](crate::upstream::Upstream): over HTTP in
/// split mode.
pub struct RemoteIdentitySource(pub crate::upstream::Upstream);

fn auth_unavailable(e: impl std::fmt::Display) -> Problem {
    tracing::warn!(error = %e, "auth service unreachable");
    Problem::unavailable("auth_unavailable", "the auth service is not reachable")
}

#[async_trait]
impl IdentitySource for RemoteIdentitySource {
    // Both calls only read, so a failure (the auth service restarting, say) is retried with
    // backoff before the caller sees a 503.
    async fn jwks(&self) -> Result<Jwks, Problem> {
        (|| self.0.get_json(JWKS_PATH)).retry(crate::resilience::backoff(2)).await.map_err(auth_unavailable)
    }

    async fn introspect(&self, credential: &str) -> Result<Option<Introspection>, Problem> {
        let body = IntrospectRequest { token: credential.to_owned() };
        let (status, bytes) = (|| self.0.json(http::Method::POST, INTROSPECT_PATH, Some(&body)))
            .retry(crate::resilience::backoff(2))
            .await
            .map_err(auth_unavailable)?;
        match status.as_u16() {
            200 => serde_json::from_slice(&bytes).map(Some).map_err(auth_unavailable),
            401 => Ok(None),
            other => Err(auth_unavailable(format!("introspection answered {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    use super::*;
    use crate::tokens::{ACCESS_TOKEN_TYPE, Jwk};

    /// Answers whatever JWKS the test sets, as an auth instance (or an impostor) would.
    #[derive(Default)]
    struct Answers(std::sync::Mutex<Jwks>);

    #[async_trait]
    impl IdentitySource for Answers {
        async fn jwks(&self) -> Result<Jwks, Problem> {
            Ok(self.0.lock().unwrap().clone())
        }

        async fn introspect(&self, _: &str) -> Result<Option<Introspection>, Problem> {
            Ok(None)
        }
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn jwk(kid: &str, key: &SigningKey) -> Jwk {
        Jwk::ed25519(kid, &key.verifying_key().to_bytes())
    }

    fn token(kid: &str, key: &SigningKey) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = AccessClaims {
            iss: "ollamanet".into(),
            aud: "ollamanet".into(),
            sub: Uuid::now_v7(),
            email: "a@example.com".into(),
            username: "alice".into(),
            roles: vec![ADMIN_ROLE.into()],
            tv: 0,
            iat: now,
            nbf: now,
            exp: now + 600,
            jti: Uuid::now_v7().to_string(),
        };
        let header =
            Header { typ: Some(ACCESS_TOKEN_TYPE.into()), kid: Some(kid.into()), ..Header::new(Algorithm::EdDSA) };
        let der = key.to_pkcs8_der().unwrap();
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
    }

    /// A JWKS answer (from an impostor, or a confused instance) can add keys but never replace
    /// or withdraw one the authenticator already trusts.
    #[tokio::test]
    async fn known_keys_are_pinned_against_later_answers() {
        let (genuine, impostor, added) = (key(1), key(2), key(3));
        let answers = Arc::new(Answers::default());
        *answers.0.lock().unwrap() = Jwks { keys: vec![jwk("k1", &genuine)] };
        let authn = Authenticator::new(answers.clone(), Cache::memory(100), "ollamanet", "ollamanet", true);
        assert!(authn.verify_jwt(&token("k1", &genuine)).await.is_ok());

        // The next answer gives `k1` another key and leaves the genuine one out.
        *answers.0.lock().unwrap() = Jwks { keys: vec![jwk("k1", &impostor), jwk("k2", &added)] };
        *authn.jwks_fetched.lock().await = None;
        assert!(authn.verify_jwt(&token("k2", &added)).await.is_ok(), "a new key id is learnt");
        assert_eq!(authn.verify_jwt(&token("k1", &impostor)).await.err(), Some(TokenError::Invalid));
        assert!(authn.verify_jwt(&token("k1", &genuine)).await.is_ok(), "the known key stays");

        // An empty answer withdraws nothing either.
        *answers.0.lock().unwrap() = Jwks::default();
        *authn.jwks_fetched.lock().await = None;
        assert!(authn.verify_jwt(&token("k3", &impostor)).await.is_err());
        assert!(authn.verify_jwt(&token("k2", &added)).await.is_ok());
    }
}
