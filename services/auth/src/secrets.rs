//! Opaque secrets (refresh tokens, API keys, reset tokens): random, shown to their owner once,
//! stored only as a SHA-256 digest so a database leak does not leak usable credentials.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

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

/// The refresh token `successor` was exchanged for, sealed with the token it replaces: XORed with
/// a digest of `presented` (a key used once, as every refresh token is rotated once). Only
/// someone who presents the old token can read it; the database alone cannot.
pub fn seal(presented: &str, successor: &str) -> Option<Vec<u8>> {
    let random = URL_SAFE_NO_PAD.decode(successor.strip_prefix(REFRESH_TOKEN_PREFIX)?).ok()?;
    let key = successor_key(presented);
    (random.len() == key.len()).then(|| random.iter().zip(key).map(|(a, b)| a ^ b).collect())
}

/// The successor that [`seal`] sealed, given the token it replaced.
pub fn unseal(presented: &str, sealed: &[u8]) -> Option<String> {
    let key = successor_key(presented);
    (sealed.len() == key.len()).then(|| {
        let random: Vec<u8> = sealed.iter().zip(key).map(|(a, b)| a ^ b).collect();
        format!("{REFRESH_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random))
    })
}

/// Independent of [`digest`], which the database holds, by its domain prefix.
fn successor_key(presented: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"ollamanet refresh successor\0");
    hasher.update(presented.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_successor_opens_only_with_the_token_it_replaces() {
        let (old, next) = (generate(REFRESH_TOKEN_PREFIX), generate(REFRESH_TOKEN_PREFIX));
        let sealed = seal(&old, &next).unwrap();
        assert_eq!(unseal(&old, &sealed).as_deref(), Some(next.as_str()));
        assert_ne!(unseal(&generate(REFRESH_TOKEN_PREFIX), &sealed).as_deref(), Some(next.as_str()));
        let raw = URL_SAFE_NO_PAD.decode(&next[REFRESH_TOKEN_PREFIX.len()..]).unwrap();
        assert_ne!(sealed, raw, "the successor is not stored as it is");
        assert!(unseal(&old, &sealed[1..]).is_none());
    }

    #[test]
    fn secrets_are_prefixed_random_and_digested() {
        let a = generate(REFRESH_TOKEN_PREFIX);
        assert!(a.starts_with("onr_") && a.len() == 4 + 43, "{a}");
        assert_ne!(a, generate(REFRESH_TOKEN_PREFIX));
        assert_eq!(digest(&a).len(), 64);
        assert_eq!(digest(&a), kit::authn::api_key_hash(&a));
    }
}
