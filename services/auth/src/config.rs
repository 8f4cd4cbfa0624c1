//! The auth service's settings (`[auth]` in the configuration file).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::AuthError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(with = "kit::config::duration")]
    pub access_token_ttl: Duration,
    #[serde(with = "kit::config::duration")]
    pub refresh_token_ttl: Duration,
    #[serde(with = "kit::config::duration")]
    pub reset_token_ttl: Duration,
    /// A refresh token used within this long hands out the token it was exchanged for, so that
    /// several requests of one browser refreshing at once are not taken for theft; later, its
    /// reuse revokes the session. `0s` turns the grace off.
    #[serde(with = "kit::config::duration")]
    pub refresh_grace: Duration,
    /// Failed password attempts in a row after which every further attempt must wait.
    pub lockout_threshold: u32,
    /// The first wait; each further failure doubles it, up to `lockout_duration`.
    #[serde(with = "kit::config::duration")]
    pub lockout_first_wait: Duration,
    /// The longest wait between attempts.
    #[serde(with = "kit::config::duration")]
    pub lockout_duration: Duration,
    /// Failed attempts in a row after which the password no longer signs in at all: the owner
    /// is mailed a reset link and must choose a new password (sessions already open stay).
    pub reset_required_after: u32,
    pub password_min_length: usize,
    /// Password hashes computed at once; each takes 19 MiB and one core for tens of milliseconds.
    pub hash_concurrency: usize,
    /// Where users reach the web application; password-reset links point here.
    pub public_url: String,
    /// Off only for plain-HTTP development setups: browsers drop `Secure` cookies on `http://`.
    pub refresh_cookie_secure: bool,
    /// Created at start when no user has its e-mail address.
    pub first_admin: Option<FirstAdmin>,
    pub mail: MailConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 86_400),
            reset_token_ttl: Duration::from_secs(3600),
            refresh_grace: Duration::from_secs(30),
            lockout_threshold: 5,
            lockout_first_wait: Duration::from_secs(60),
            lockout_duration: Duration::from_secs(15 * 60),
            reset_required_after: 20,
            password_min_length: 10,
            hash_concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            public_url: "http://127.0.0.1:8080".into(),
            refresh_cookie_secure: true,
            first_admin: None,
            mail: MailConfig::default(),
        }
    }
}

impl AuthConfig {
    /// Rejects settings that would only fail later, at the first request that needs them.
    pub(crate) fn validate(&self) -> Result<(), AuthError> {
        let bad = |msg: &str| Err(AuthError::Config(msg.to_owned()));
        // Expiry times are computed by adding these to now; absurd values would overflow.
        let sane = Duration::from_secs(1)..=Duration::from_secs(3650 * 86_400);
        let ttls = [self.access_token_ttl, self.refresh_token_ttl, self.reset_token_ttl, self.lockout_duration];
        if !ttls.iter().all(|d| sane.contains(d)) {
            return bad(
                "access_token_ttl, refresh_token_ttl, reset_token_ttl and lockout_duration must be 1s to 3650d",
            );
        }
        if self.refresh_grace > Duration::from_secs(300) {
            return bad("refresh_grace must be at most 5m");
        }
        if self.lockout_threshold == 0 {
            return bad("lockout_threshold must be at least 1");
        }
        if self.lockout_first_wait > self.lockout_duration {
            return bad("lockout_first_wait must not be longer than lockout_duration");
        }
        if self.reset_required_after < self.lockout_threshold {
            return bad("reset_required_after must be at least lockout_threshold");
        }
        if self.hash_concurrency == 0 {
            return bad("hash_concurrency must be at least 1");
        }
        if !(1..=crate::policy::PASSWORD_MAX_LENGTH).contains(&self.password_min_length) {
            return bad("password_min_length must be between 1 and 256");
        }
        if self.mail.transport == MailTransport::Smtp && self.mail.smtp_url.is_none() {
            return bad("mail.transport = \"smtp\" needs mail.smtp_url");
        }
        Ok(())
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstAdmin {
    pub email: String,
    pub username: String,
    pub password: String,
}

/// Keeps the password out of logs and panic messages.
impl std::fmt::Debug for FirstAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstAdmin")
            .field("email", &self.email)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    pub transport: MailTransport,
    /// e.g. `smtps://user:password@mail.example.com:465` or `smtp://localhost:25`.
    pub smtp_url: Option<String>,
    /// The `From` header of every mail.
    pub from: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self { transport: MailTransport::Log, smtp_url: None, from: "OllamaNet <noreply@localhost>".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Mails are written to the log (development).
    #[default]
    Log,
    Smtp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_rejects_unknown_keys() {
        let c: AuthConfig = toml::from_str(
            "access_token_ttl = \"5m\"\nlockout_threshold = 3\n[mail]\ntransport = \"smtp\"\nsmtp_url = \"smtp://localhost\"",
        )
        .unwrap();
        assert_eq!(c.access_token_ttl, Duration::from_secs(300));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(c.lockout_threshold, 3);
        assert_eq!(c.mail.transport, MailTransport::Smtp);
        c.validate().unwrap();

        assert!(toml::from_str::<AuthConfig>("acces_token_ttl = \"5m\"").is_err());
        let no_url: AuthConfig = toml::from_str("[mail]\ntransport = \"smtp\"").unwrap();
        assert!(no_url.validate().is_err());
        let forever: AuthConfig = toml::from_str("refresh_token_ttl = \"99999999d\"").unwrap();
        assert!(forever.validate().is_err());
        let no_budget: AuthConfig = toml::from_str("lockout_threshold = 5\nreset_required_after = 4").unwrap();
        assert!(no_budget.validate().is_err());
        let backwards: AuthConfig = toml::from_str("lockout_first_wait = \"1h\"\nlockout_duration = \"1m\"").unwrap();
        assert!(backwards.validate().is_err());
    }
}
