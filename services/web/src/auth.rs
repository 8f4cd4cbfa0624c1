//! The auth service, as the web pages use it: every call is the browser's own (sign in,
//! register, renew, sign out, reset a password), made on the server with the browser's input.

use axum::http::{Method, StatusCode};
use kit::upstream::Upstream;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::WebError;

/// The tokens of a session.
#[derive(Debug, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
}

/// Why a service said no (its problem), as the page shows it.
#[derive(Debug, Default)]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// Field → message.
    pub fields: Vec<(String, String)>,
}

impl Refusal {
    pub fn from_problem(status: StatusCode, body: &[u8]) -> Self {
        let problem: Value = serde_json::from_slice(body).unwrap_or_default();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let fields = problem["errors"]
            .as_array()
            .map(|errors| errors.iter().map(|e| (text(&e["field"]), text(&e["message"]))).collect())
            .unwrap_or_default();
        Self { status: status.as_u16(), code: text(&problem["code"]), message: text(&problem["detail"]), fields }
    }

    /// The refusal, with its detail shown at `field` when its `code` is about that field (a wrong
    /// current password is refused as a whole, not as a field).
    pub fn at_field(mut self, code: &str, field: &str) -> Self {
        if self.code == code && self.field(field).is_none() {
            self.fields.push((field.to_owned(), self.message.clone()));
        }
        self
    }

    /// What was wrong, with the fields it names: an error page that says how to correct a form.
    pub fn reason(&self) -> String {
        let detail = if self.message.is_empty() { "refused" } else { self.message.as_str() };
        if self.fields.is_empty() {
            return detail.to_owned();
        }
        let fields: Vec<String> = self.fields.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        format!("{detail} ({})", fields.join("; "))
    }

    /// The message of `field`, if the refusal names it.
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }
}

/// What renewing a session came to.
pub enum Renewal {
    Renewed(Tokens),
    /// The auth service says the session is over: its token is unknown, revoked, reused or expired.
    Ended,
    /// No answer, or a refusal that does not end the session: the page says so, and the cookies
    /// stay for the next try.
    Failed(WebError),
}

/// The refusals of a refresh that end a session; nothing else signs a browser out.
const SESSION_OVER: [&str; 3] = ["invalid_refresh_token", "refresh_token_reused", "refresh_token_expired"];

pub enum Outcome<T> {
    Done(T),
    Refused(Refusal),
}

impl<T> Outcome<T> {
    /// What was done; a refusal as the error page that gives its reason.
    pub fn done(self) -> Result<T, WebError> {
        match self {
            Outcome::Done(value) => Ok(value),
            Outcome::Refused(r) => Err(WebError::Refused(r.reason())),
        }
    }
}

#[derive(Clone)]
pub struct AuthClient(pub Upstream);

impl AuthClient {
    async fn post(&self, path: &str, body: Value) -> Result<(StatusCode, bytes::Bytes), WebError> {
        self.0.json(Method::POST, path, Some(&body)).await.map_err(|e| {
            tracing::warn!(error = %e, path, "auth service call failed");
            WebError::Unavailable("the sign-in service")
        })
    }

    /// A call whose refusal a page shows (a wrong password, a taken name).
    async fn submit<T: DeserializeOwned>(&self, path: &str, body: Value) -> Result<Outcome<T>, WebError> {
        let (status, bytes) = self.post(path, body).await?;
        crate::services::outcome(status, bytes, "the sign-in service")
    }

    pub async fn login(&self, login: &str, password: &str) -> Result<Outcome<Tokens>, WebError> {
        self.submit("/api/auth/login", json!({"login": login, "password": password})).await
    }

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Result<Outcome<Tokens>, WebError> {
        self.submit("/api/auth/register", json!({"username": username, "email": email, "password": password})).await
    }

    /// New tokens for a session's refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Renewal {
        match self.submit("/api/auth/refresh", json!({"refresh_token": refresh_token})).await {
            Ok(Outcome::Done(tokens)) => Renewal::Renewed(tokens),
            Ok(Outcome::Refused(r)) if SESSION_OVER.contains(&r.code.as_str()) => Renewal::Ended,
            Ok(Outcome::Refused(r)) => Renewal::Failed(WebError::SessionRefused(r.status, r.reason())),
            Err(e) => Renewal::Failed(e),
        }
    }

    /// Ends the session at the auth service (its refresh token family is revoked).
    pub async fn logout(&self, refresh_token: &str) {
        if let Err(e) = self.post("/api/auth/logout", json!({"refresh_token": refresh_token})).await {
            tracing::warn!(error = %e, "could not end the session at the auth service");
        }
    }

    /// Asks for a reset mail; the answer is the same whether the address is known or not.
    pub async fn forgot(&self, email: &str) -> Result<(), WebError> {
        let (status, _) = self.post("/api/auth/password/forgot", json!({"email": email})).await?;
        if status.is_server_error() { Err(WebError::Unavailable("the sign-in service")) } else { Ok(()) }
    }

    pub async fn reset(&self, token: &str, password: &str) -> Result<Outcome<()>, WebError> {
        self.submit("/api/auth/password/reset", json!({"token": token, "new_password": password})).await
    }
}
