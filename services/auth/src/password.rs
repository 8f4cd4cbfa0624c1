//! Argon2id password hashing on the blocking pool, bounded so that a burst of logins cannot take
//! every core or exhaust memory (each hash holds 19 MiB while it runs).

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::{OnceCell, Semaphore};

use crate::error::AuthError;
use crate::policy::PASSWORD_MAX_LENGTH;

/// OWASP's recommended Argon2id settings: 19 MiB, 2 passes, 1 lane.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub struct Hasher {
    permits: Semaphore,
    /// Verified against when a login names no user, so that the answer takes as long as for a
    /// real user and timing does not reveal which accounts exist.
    dummy: OnceCell<String>,
}

impl Hasher {
    pub fn new(concurrency: usize) -> Self {
        Self { permits: Semaphore::new(concurrency), dummy: OnceCell::new() }
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `password`.
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let password = password.to_owned();
        self.blocking(move || {
            argon2().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(AuthError::internal)
        })
        .await
    }

    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, AuthError> {
        // Never hash more than a valid password can be (the cost grows with the length), and
        // such a password cannot match anyway.
        if password.chars().count() > PASSWORD_MAX_LENGTH {
            return Ok(false);
        }
        let (password, hash) = (password.to_owned(), hash.to_owned());
        self.blocking(move || match argon2().verify_password(password.as_bytes(), hash.as_str()) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(e) => Err(AuthError::internal(format!("stored password hash is unusable: {e}"))),
        })
        .await
    }

    /// Spends the time of one verification without a user.
    pub async fn verify_dummy(&self, password: &str) -> Result<(), AuthError> {
        let dummy = self.dummy.get_or_try_init(|| async { self.hash(&crate::secrets::generate("")).await }).await?;
        self.verify(password, dummy).await.map(drop)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = self.permits.acquire().await.map_err(AuthError::internal)?;
        tokio::task::spawn_blocking(work).await.map_err(AuthError::internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_owasp_parameters_and_verifies() {
        let h = Hasher::new(1);
        let hash = h.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(h.verify("correct horse battery", &hash).await.unwrap());
        assert!(!h.verify("wrong horse battery", &hash).await.unwrap());
        assert!(h.verify("x", "not a hash").await.is_err());
        assert!(!h.verify(&"x".repeat(PASSWORD_MAX_LENGTH + 1), &hash).await.unwrap());
        h.verify_dummy("anything").await.unwrap();
    }
}
