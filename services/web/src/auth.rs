//! The auth service, as the web pages use it: every call is the browser's own (sign in,
//! register, renew, sign out, reset a password), made on the server with the browser's input.

use axum::http::{Method, StatusCode};
use kit::upstream::Upstream;
use serde::Deserialize;
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

/// Why the auth service said no, as the page shows it.
#[derive(Debug, Default)]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// Field → message.
    pub fields: Vec<(String, String)>,
}

impl Refusal {
    fn from_problem(status: StatusCode, body: &[u8]) -> Self {
        let problem: Value = serde_json::from_slice(body).unwrap_or_default();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let fields = problem["errors"]
            .as_array()
            .map(|errors| errors.iter().map(|e| (text(&e["field"]), text(&e["message"]))).collect())
            .unwrap_or_default();
        Self { status: status.as_u16(), code: text(&problem["code"]), message: text(&problem["detail"]), fields }
    }

    /// The message of `field`, if the refusal names it.
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }
}

pub enum Outcome<T> {
    Done(T),
    Refused(Refusal),
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

    async fn tokens(&self, path: &str, body: Value) -> Result<Outcome<Tokens>, WebError> {
        let (status, bytes) = self.post(path, body).await?;
        if status.is_success() {
            let tokens = serde_json::from_slice(&bytes).map_err(|e| WebError::Internal(e.to_string()))?;
            return Ok(Outcome::Done(tokens));
        }
        if status.is_server_error() {
            return Err(WebError::Unavailable("the sign-in service"));
        }
        Ok(Outcome::Refused(Refusal::from_problem(status, &bytes)))
    }

    pub async fn login(&self, login: &str, password: &str) -> Result<Outcome<Tokens>, WebError> {
        self.tokens("/api/auth/login", json!({"login": login, "password": password})).await
    }

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Result<Outcome<Tokens>, WebError> {
        self.tokens("/api/auth/register", json!({"username": username, "email": email, "password": password})).await
    }

    /// New tokens for a session's refresh token; anything but success ends the session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ()> {
        match self.tokens("/api/auth/refresh", json!({"refresh_token": refresh_token})).await {
            Ok(Outcome::Done(tokens)) => Ok(tokens),
            _ => Err(()),
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
        let (status, bytes) =
            self.post("/api/auth/password/reset", json!({"token": token, "new_password": password})).await?;
        if status.is_success() {
            Ok(Outcome::Done(()))
        } else if status.is_server_error() {
            Err(WebError::Unavailable("the sign-in service"))
        } else {
            Ok(Outcome::Refused(Refusal::from_problem(status, &bytes)))
        }
    }
}
