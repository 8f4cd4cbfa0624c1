//! Access tokens: the claims every service agrees on, the JWKS format, and verification.
//!
//! Tokens are EdDSA (Ed25519) JWTs with header `typ: at+jwt` (RFC 9068). Only the auth service
//! signs; everyone else verifies with the public keys it publishes as a JWKS.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who issues access tokens and for whom; the auth service signs with these and every verifier
/// checks them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self { issuer: "ollamanet".into(), audience: "ollamanet".into() }
    }
}

/// The JWT header `typ` of an access token; anything else (a refresh token, an ID token) is refused.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    pub email: String,
    pub username: String,
    pub roles: Vec<String>,
    /// The user's token version when the token was issued; a token whose `tv` is older than the
    /// user's current version is dead.
    pub tv: i64,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

/// One public key, as RFC 8037 (OKP / Ed25519).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
}

impl Jwk {
    pub fn ed25519(kid: &str, public_key: &[u8; 32]) -> Self {
        use base64::Engine;
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public_key),
            kid: kid.to_owned(),
            use_: "sig".into(),
            alg: "EdDSA".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// Why a token was refused. Each maps to a stable problem `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed or its signature is invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token is too large")]
    TooLarge,
    #[error("the token was signed with an unknown key")]
    UnknownKey,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Invalid => "invalid_token",
            TokenError::Expired => "token_expired",
            TokenError::TooLarge => "token_too_large",
            TokenError::UnknownKey => "invalid_token",
        }
    }
}

/// Verifies access tokens against a set of public keys.
#[derive(Clone)]
pub struct Verifier {
    /// By key id: the public key as published (`x`) and decoded.
    keys: HashMap<String, (String, DecodingKey)>,
    validation: Validation,
}

fn usable(jwks: &Jwks) -> impl Iterator<Item = (String, (String, DecodingKey))> + '_ {
    jwks.keys
        .iter()
        .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
        .filter_map(|k| DecodingKey::from_ed_components(&k.x).ok().map(|d| (k.kid.clone(), (k.x.clone(), d))))
}

impl Verifier {
    pub fn new(jwks: &Jwks, issuer: &str, audience: &str) -> Self {
        let keys = usable(jwks).collect();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Self { keys, validation }
    }

    pub fn has_key(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// These keys plus those of `jwks` with new key ids. A known key id keeps its key whatever
    /// `jwks` says, and a key `jwks` leaves out is kept: one answer (from an instance that is
    /// not the auth service, say) can add keys but never replace or withdraw one. Returns the
    /// key ids `jwks` gave another key, for the caller to report.
    pub fn with_new_keys(&self, jwks: &Jwks) -> (Self, Vec<String>) {
        let mut next = self.clone();
        let mut conflicts = Vec::new();
        for (kid, (x, key)) in usable(jwks) {
            match next.keys.get(&kid) {
                Some((known, _)) if *known != x => conflicts.push(kid),
                Some(_) => {}
                None => {
                    next.keys.insert(kid, (x, key));
                }
            }
        }
        (next, conflicts)
    }

    /// The key id a token claims to be signed with, after the checks that need no key:
    /// size, `alg` exactly EdDSA, `typ` exactly `at+jwt`.
    pub fn key_id(token: &str) -> Result<String, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(TokenError::Invalid);
        }
        header.kid.filter(|k| !k.is_empty() && k.len() <= 128).ok_or(TokenError::Invalid)
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let kid = Self::key_id(token)?;
        let (_, key) = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        let claims = data.claims;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if claims.iat > now + LEEWAY_SECS as i64 {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}
