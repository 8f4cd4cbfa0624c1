//! `ollamanet doctor`: what in a configuration makes a deployment unsafe, checked before anyone
//! can exploit it. `serve` logs the same findings when it starts.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ollamanet_auth::MailTransport;

use crate::app::Service;
use crate::config::AppConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth a look; may be intended.
    Warning,
    /// Someone other than the operator can exploit it.
    Unsafe,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    /// The setting that decides it.
    pub setting: &'static str,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Unsafe => "UNSAFE",
        };
        write!(f, "{level:<7} {}: {}", self.setting, self.message)
    }
}

/// Tokens shorter than this are guessable offline or by patient online guessing.
const MIN_SECRET_LEN: usize = 24;

/// Whether clients other than this machine's can reach `listen`. An address that does not parse
/// (a host name) is taken as reachable: it is the cautious answer.
pub fn exposed(listen: &str) -> bool {
    match listen.parse::<SocketAddr>() {
        Ok(addr) => !addr.ip().is_loopback(),
        Err(_) => !listen.starts_with("localhost:"),
    }
}

fn loopback_url(url: &str) -> bool {
    let host = url.split_once("://").map_or(url, |(_, rest)| rest).split(['/', ':']).next().unwrap_or_default();
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The findings for a process running `services` with `config`.
pub fn check(config: &AppConfig, services: &[Service]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut say = |severity, setting, message: String| out.push(Finding { severity, setting, message });
    let exposed = exposed(&config.listen);
    let runs = |s: Service| services.contains(&s);

    if let Some(token) = &config.infra.ops_token
        && token.len() < MIN_SECRET_LEN
    {
        say(
            Severity::Unsafe,
            "ops_token",
            format!("is shorter than {MIN_SECRET_LEN} characters: anyone who guesses it reads the metrics"),
        );
    }
    if config.gateway.cors.allowed_origins.iter().any(|o| o == "*") && runs(Service::Gateway) {
        say(
            Severity::Warning,
            "gateway.cors.allowed_origins",
            "is \"*\": any web site may call the API from its visitors' browsers (without cookies)".into(),
        );
    }
    if runs(Service::Auth) {
        let auth = &config.auth;
        if auth.first_admin.is_some() {
            say(
                Severity::Warning,
                "auth.first_admin",
                "holds a password in the configuration: remove it once the administrator exists".into(),
            );
        }
        if exposed {
            say(
                Severity::Warning,
                "listen",
                format!(
                    "{} is reachable from other machines and anyone who reaches it can register an account",
                    config.listen
                ),
            );
            if auth.mail.transport == MailTransport::Log {
                say(
                    Severity::Unsafe,
                    "auth.mail.transport",
                    "is \"log\": password-reset links are written to the log, where whoever reads it can take \
                     over any account; set transport = \"smtp\" and smtp_url"
                        .into(),
                );
            }
            if !auth.refresh_cookie_secure {
                say(
                    Severity::Unsafe,
                    "auth.refresh_cookie_secure",
                    "is off: refresh tokens travel in cookies over plain HTTP".into(),
                );
            }
            if loopback_url(&auth.public_url) {
                say(
                    Severity::Warning,
                    "auth.public_url",
                    format!("is {}: mailed links point at a machine that is not the user's", auth.public_url),
                );
            }
        }
    }
    if runs(Service::Inference)
        && exposed
        && config.inference.uncatalogued == Some(ollamanet_inference::Uncatalogued::Users)
    {
        say(
            Severity::Warning,
            "inference.uncatalogued",
            "is \"users\": every account may use any model pulled onto an engine before an admin catalogues it".into(),
        );
    }
    if services == [Service::Engine] && config.engine.key.is_none() {
        if exposed {
            say(
                Severity::Unsafe,
                "engine.key",
                format!(
                    "is unset and the engine listens on {}: anyone who reaches it could delete, pull and run any \
                     model (serve refuses to start so)",
                    config.listen
                ),
            );
        } else {
            say(
                Severity::Warning,
                "engine.key",
                "is unset: every process on this machine may use the engine's API, which deletes and pulls models"
                    .into(),
            );
        }
    }
    if runs(Service::Inference) && config.infra.amqp_url.is_some() && config.inference.engine_key.is_none() {
        say(
            Severity::Warning,
            "inference.engine_key",
            "is unset: engines announced with `serve --only engine --announce` need their key and answer 401".into(),
        );
    }
    if runs(Service::Web) && exposed && !config.web.secure_cookies {
        say(
            Severity::Unsafe,
            "web.secure_cookies",
            "is off: browser sessions travel in cookies over plain HTTP".into(),
        );
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_exposed_unless_it_is_loopback() {
        assert!(!exposed("127.0.0.1:8080"));
        assert!(!exposed("[::1]:8080"));
        assert!(!exposed("localhost:8080"));
        assert!(exposed("0.0.0.0:8080"));
        assert!(exposed("[::]:8080"));
        assert!(exposed("10.0.0.2:8081"));
        assert!(exposed("chat.example.com:443"));
    }

    #[test]
    fn the_defaults_on_loopback_are_safe() {
        let findings = check(&AppConfig::default(), &Service::ALL);
        assert!(findings.iter().all(|f| f.severity != Severity::Unsafe), "{findings:?}");
    }

    #[test]
    fn an_exposed_listener_with_mail_in_the_log_is_unsafe() {
        let config = AppConfig { listen: "0.0.0.0:8080".into(), ..AppConfig::default() };
        let findings = check(&config, &Service::ALL);
        assert!(
            findings.iter().any(|f| f.severity == Severity::Unsafe && f.setting == "auth.mail.transport"),
            "{findings:?}"
        );
        assert!(findings.iter().all(|f| f.setting != "auth.mail.transport" || f.message.contains("reset")));
        let without_auth = check(&config, &[Service::Gateway]);
        assert!(without_auth.iter().all(|f| f.setting != "auth.mail.transport"), "only where auth runs");
    }

    #[test]
    fn an_engine_without_a_key_is_reported() {
        let mut config = AppConfig::default();
        let finding = |config: &AppConfig| {
            check(config, &[Service::Engine]).into_iter().find(|f| f.setting == "engine.key").map(|f| f.severity)
        };
        assert_eq!(finding(&config), Some(Severity::Warning), "on loopback every local process may use it");
        config.listen = "0.0.0.0:11434".into();
        assert_eq!(finding(&config), Some(Severity::Unsafe));
        config.engine.key = Some("0123456789abcdef".into());
        assert_eq!(finding(&config), None);
        assert!(
            check(&AppConfig::default(), &Service::ALL).iter().all(|f| f.setting != "engine.key"),
            "beside inference the engine has no listener"
        );
    }

    #[test]
    fn uncatalogued_models_open_to_users_on_an_exposed_listener_are_reported() {
        let mut config = AppConfig { listen: "0.0.0.0:8080".into(), ..AppConfig::default() };
        let reported =
            |config: &AppConfig| check(config, &Service::ALL).iter().any(|f| f.setting == "inference.uncatalogued");
        assert!(!reported(&config), "the default keeps them for admins there");
        config.inference.uncatalogued = Some(ollamanet_inference::Uncatalogued::Users);
        assert!(reported(&config));
        config.listen = "127.0.0.1:8080".into();
        assert!(!reported(&config));
    }
}
