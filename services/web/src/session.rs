//! Who is visiting: the session in HttpOnly cookies, and the CSRF token of their forms.
//!
//! A signed-in browser holds the auth service's tokens in two cookies: the access token
//! (`ollamanet_access`, 15 minutes) and the refresh token (`ollamanet_session`, the session's
//! life). Both are `HttpOnly` (no script can read them) and `SameSite=Lax` (no other site's
//! form or script sends them with a POST). Every request checks the access token like any
//! service does (signature, expiry, the user's token version), so a locked or demoted user's
//! page is signed out on their next action; an expired one is renewed with the refresh token.
//! Forms carry a CSRF token besides (double submit: a random `ollamanet_csrf` cookie, `SameSite=
//! Strict`, that each form repeats in a hidden field), so that even a same-site attacker cannot
//! post as the user.

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kit::authn::Identity;
use kit::http::cookie;
use rand::RngCore;

use crate::AppState;
use crate::auth::Tokens;
use crate::error::WebError;
use crate::services::Caller;

pub const ACCESS_COOKIE: &str = "ollamanet_access";
pub const SESSION_COOKIE: &str = "ollamanet_session";
pub const CSRF_COOKIE: &str = "ollamanet_csrf";

fn set_cookie(name: &str, value: &str, max_age: u64, same_site: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}");
    // Values are base64url, JWTs or the auth service's opaque tokens: always header-safe.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// 256 random bits, URL- and header-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the header of a signed-in page shows; every form on the page also takes its `csrf`.
pub struct Nav<'a> {
    pub csrf: &'a str,
    pub username: &'a str,
    /// Whether to show the way to the administration pages.
    pub admin: bool,
}

/// Why a page is not for its visitor; answered with `Visitor::respond`.
pub enum Gate {
    /// Not signed in: to the sign-in page.
    SignIn,
    /// Signed in without the Admin role.
    AdminsOnly,
}

impl IntoResponse for Gate {
    fn into_response(self) -> Response {
        match self {
            Gate::SignIn => Redirect::to("/login").into_response(),
            Gate::AdminsOnly => WebError::AdminsOnly.into_response(),
        }
    }
}

/// The visitor of a page: signed in or not, and the cookies their response must set.
pub struct Visitor {
    pub identity: Option<Identity>,
    /// The access token, to call services as the visitor.
    pub access: Option<String>,
    /// The token every form of the page repeats.
    pub csrf: String,
    set_cookies: Vec<HeaderValue>,
    secure: bool,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secure = state.secure_cookies;
        let mut visitor =
            Visitor { identity: None, access: None, csrf: String::new(), set_cookies: Vec::new(), secure };
        match cookie(&parts.headers, CSRF_COOKIE).filter(|c| c.len() == 43) {
            Some(csrf) => visitor.csrf = csrf.to_owned(),
            None => {
                visitor.csrf = random_token();
                visitor.set_cookies.push(set_cookie(CSRF_COOKIE, &visitor.csrf, 60 * 60 * 24 * 365, "Strict", secure));
            }
        }
        if let Some(access) = cookie(&parts.headers, ACCESS_COOKIE)
            && let Ok(identity) = state.authn.authenticate(access).await
        {
            visitor.identity = Some(identity);
            visitor.access = Some(access.to_owned());
            return Ok(visitor);
        }
        let Some(refresh) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(visitor);
        };
        // The access token expired or was revoked: renew it, or end the session.
        match state.auth.refresh(refresh).await {
            Ok(tokens) => match state.authn.authenticate(&tokens.access_token).await {
                Ok(identity) => {
                    visitor.identity = Some(identity);
                    visitor.sign_in(&tokens);
                }
                Err(_) => visitor.sign_out(),
            },
            Err(_) => visitor.sign_out(),
        }
        Ok(visitor)
    }
}

impl Visitor {
    /// The user whose tokens these are is now signed in on this browser.
    pub fn sign_in(&mut self, tokens: &Tokens) {
        self.access = Some(tokens.access_token.clone());
        let secure = self.secure;
        self.set_cookies.push(set_cookie(ACCESS_COOKIE, &tokens.access_token, tokens.expires_in, "Lax", secure));
        self.set_cookies.push(set_cookie(
            SESSION_COOKIE,
            &tokens.refresh_token,
            tokens.refresh_expires_in,
            "Lax",
            secure,
        ));
    }

    /// Forgets the session's cookies.
    pub fn sign_out(&mut self) {
        self.identity = None;
        self.access = None;
        for name in [ACCESS_COOKIE, SESSION_COOKIE] {
            self.set_cookies.push(set_cookie(name, "", 0, "Lax", self.secure));
        }
    }

    /// The visitor as a caller of the services; anyone not signed in is sent to sign in.
    pub fn member(&self) -> Result<Caller<'_>, Gate> {
        match (&self.identity, &self.access) {
            (Some(identity), Some(access)) => Ok(Caller { identity, access }),
            _ => Err(Gate::SignIn),
        }
    }

    /// As `member`, for the administration pages: a signed-in user without the Admin role is
    /// refused. (The services the pages call check the role again.)
    pub fn admin(&self) -> Result<Caller<'_>, Gate> {
        let caller = self.member()?;
        if caller.identity.has_role(kit::authn::ADMIN_ROLE) { Ok(caller) } else { Err(Gate::AdminsOnly) }
    }

    /// The header of a signed-in page.
    pub fn nav(&self) -> Nav<'_> {
        let identity = self.identity.as_ref();
        Nav {
            csrf: &self.csrf,
            username: identity.map(|i| i.username.as_str()).unwrap_or_default(),
            admin: identity.is_some_and(|i| i.has_role(kit::authn::ADMIN_ROLE)),
        }
    }

    /// The form's token must be the session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), WebError> {
        if same(sent, &self.csrf) { Ok(()) } else { Err(WebError::Csrf) }
    }

    /// `response` with the cookies this visit changed.
    pub fn respond(self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        for cookie in self.set_cookies {
            response.headers_mut().append(SET_COOKIE, cookie);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("ab", "abc"));
        assert!(!same("", "a"));
        assert_eq!(random_token().len(), 43);
    }
}
