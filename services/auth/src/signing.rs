//! The Ed25519 keys that sign access tokens: kept in the database so that every instance of the
//! service signs with the same key and publishes the same JWKS.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kit::Timestamp;
use kit::tokens::{ACCESS_TOKEN_TYPE, AccessClaims, Jwk, Jwks, TokenConfig, TokenError, Verifier};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::AuthError;
use crate::store::{SigningKeyRecord, Store, UserRecord};

pub struct Signer {
    kid: String,
    key: EncodingKey,
    jwks: Jwks,
    verifier: Verifier,
    config: TokenConfig,
    ttl: Duration,
}

impl Signer {
    /// Loads the signing keys, creating the first one when there is none. Instances that start
    /// together each try to insert generation 1; the unique generation lets one win and the
    /// re-read gives every instance the winner.
    pub async fn load_or_create(store: &Store, config: &TokenConfig, ttl: Duration) -> Result<Self, AuthError> {
        let mut keys = store.signing_keys().await?;
        if keys.is_empty() {
            store.insert_signing_key(1, &generate_key()?, Timestamp::now()).await?;
            keys = store.signing_keys().await?;
        }
        let jwks = Jwks {
            keys: keys
                .iter()
                .map(|k| {
                    let public: [u8; 32] = k.public_key.as_slice().try_into().map_err(|_| {
                        AuthError::Internal(format!("signing key {} has a malformed public key", k.kid))
                    })?;
                    Ok(Jwk::ed25519(&k.kid, &public))
                })
                .collect::<Result<_, AuthError>>()?,
        };
        let newest = keys.first().ok_or_else(|| AuthError::internal("no signing key after creating one"))?;
        Ok(Self {
            kid: newest.kid.clone(),
            key: EncodingKey::from_ed_der(&newest.private_key),
            verifier: Verifier::new(&jwks, &config.issuer, &config.audience),
            jwks,
            config: config.clone(),
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Checks signature, `typ`, issuer, audience and expiry; not the token version.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.verifier.verify(token)
    }

    pub fn issue(&self, user: &UserRecord, now: Timestamp) -> Result<String, AuthError> {
        let iat = now.unix_seconds();
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: user.id,
            email: user.email.clone(),
            username: user.username.clone(),
            roles: user.roles.clone(),
            tv: user.token_version,
            iat,
            nbf: iat,
            exp: iat + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
            jti: Uuid::now_v7().to_string(),
        };
        let header = Header {
            typ: Some(ACCESS_TOKEN_TYPE.to_owned()),
            kid: Some(self.kid.clone()),
            ..Header::new(Algorithm::EdDSA)
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(AuthError::internal)
    }
}

fn generate_key() -> Result<SigningKeyRecord, AuthError> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key().to_bytes();
    let private = key.to_pkcs8_der().map_err(AuthError::internal)?.as_bytes().to_vec();
    Ok(SigningKeyRecord { kid: thumbprint(&public), private_key: private, public_key: public.to_vec() })
}

/// The RFC 7638 JWK thumbprint: a key id that follows from the key itself.
fn thumbprint(public: &[u8; 32]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037, appendix A.3.
        let x = URL_SAFE_NO_PAD.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        assert_eq!(thumbprint(&x.try_into().unwrap()), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }
}
