//! Opaque secrets (refresh tokens, API keys, reset tokens): random, shown to their owner once,
//! stored only as a SHA-256 digest so a database leak does not leak usable credentials.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

pub const REFRESH_TOKEN_PREFIX: &str = "onr_";
/// No prefix: a reset token travels only inside a link.
pub const RESET_TOKEN_PREFIX: &str = "";

/// `prefix` + base64url of 32 random bytes (256 bits).
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// How a secret is stored and looked up; the same digest the authenticator caches API keys under.
pub fn digest(secret: &str) -> String {
    kit::authn::api_key_hash(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_digested() {
        let a = generate(REFRESH_TOKEN_PREFIX);
        assert!(a.starts_with("onr_") && a.len() == 4 + 43, "{a}");
        assert_ne!(a, generate(REFRESH_TOKEN_PREFIX));
        assert_eq!(digest(&a).len(), 64);
        assert_eq!(digest(&a), kit::authn::api_key_hash(&a));
    }
}
