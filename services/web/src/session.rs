//! Who is visiting: the session in HttpOnly cookies, and the CSRF token of their forms.
//!
//! A signed-in browser holds the auth service's tokens in two cookies: the access token
//! (`ollamanet_access`, 15 minutes) and the refresh token (`ollamanet_session`, the session's
//! life). Both are `HttpOnly` (no script can read them) and `SameSite=Lax` (no other site's
//! form or script sends them with a POST). Every request checks the access token like any
//! service does (signature, expiry, the user's token version), so a locked or demoted user's
//! page is signed out on their next action; an expired one is renewed with the refresh token.
//! Only an answer saying the session is over (`invalid_refresh_token`, `refresh_token_reused`,
//! `refresh_token_expired`) signs the browser out; any other failure to renew (the auth service
//! unreachable or busy) shows an error page and keeps the cookies for the next try.
//!
//! Forms carry a CSRF token bound to the session. A plain double-submit cookie is not enough:
//! a sibling subdomain can set cookies for this host, so it could plant a token cookie and post
//! a form repeating it. Both session cookies therefore also hold the session's key, a random
//! secret chosen when the user signed in (`<key>.<token>`), and a signed-in visitor's forms must
//! repeat a token derived from the key of the very cookie that authenticated the request. A
//! planted cookie can only replace that by replacing the session itself. Visitors who are not
//! signed in (the sign-in, registration and reset forms) are bound to the `ollamanet_csrf`
//! cookie alone; for them, and for everyone as a second line, `refuse_cross_origin` turns away
//! any state-changing request that the browser says comes from another origin.

use axum::extract::{FromRequestParts, Request};
use axum::http::header::{HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kit::authn::Identity;
use kit::http::cookie;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::auth::{Renewal, Tokens};
use crate::error::WebError;
use crate::services::Caller;

pub const ACCESS_COOKIE: &str = "ollamanet_access";
pub const SESSION_COOKIE: &str = "ollamanet_session";
pub const CSRF_COOKIE: &str = "ollamanet_csrf";

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Length of a key: 256 bits in base64url.
const KEY_LEN: usize = 43;

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

/// A session cookie's value split into the session's key and the auth service's token.
fn keyed(value: &str) -> Option<(&str, &str)> {
    let (key, token) = value.split_once('.')?;
    (key.len() == KEY_LEN && !token.is_empty()).then_some((key, token))
}

/// The token forms carry for `key`: derived from it, so that pages never show the key itself.
fn form_token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::new().chain_update(b"ollamanet form\0").chain_update(key).finalize())
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
    /// The session's refresh token as it is after this request (renewed or not).
    refresh: Option<String>,
    /// What the forms' token derives from: the session's key, or the `ollamanet_csrf` cookie.
    key: String,
    /// The token every form of the page repeats.
    pub csrf: String,
    set_cookies: Vec<HeaderValue>,
    secure: bool,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let mut visitor = Visitor {
            identity: None,
            access: None,
            refresh: None,
            key: String::new(),
            csrf: String::new(),
            set_cookies: Vec::new(),
            secure: state.secure_cookies,
        };
        let session = cookie(headers, SESSION_COOKIE);
        if let Some((key, access)) = cookie(headers, ACCESS_COOKIE).and_then(keyed) {
            match state.authn.authenticate(access).await {
                Ok(identity) => {
                    visitor.identity = Some(identity);
                    visitor.access = Some(access.to_owned());
                    visitor.refresh = session.and_then(keyed).map(|(_, refresh)| refresh.to_owned());
                    visitor.bind(key);
                    return Ok(visitor);
                }
                // Nobody could tell whether the token is good: try again later, still signed in.
                Err(problem) if problem.status >= 500 => {
                    return Err(WebError::Unavailable("the sign-in service").into_response());
                }
                Err(_) => {}
            }
        }
        match session.map(keyed) {
            None => {}
            // A cookie without a key (set before sessions had one): the session cannot go on.
            Some(None) => visitor.sign_out(),
            Some(Some((key, refresh))) => match state.auth.refresh(refresh).await {
                Renewal::Renewed(tokens) => {
                    visitor.keep(key, &tokens);
                    match state.authn.authenticate(&tokens.access_token).await {
                        Ok(identity) => {
                            visitor.identity = Some(identity);
                            return Ok(visitor);
                        }
                        Err(problem) if problem.status >= 500 => {
                            return Err(visitor.respond(WebError::Unavailable("the sign-in service")));
                        }
                        Err(_) => visitor.sign_out(),
                    }
                }
                Renewal::Ended => visitor.sign_out(),
                Renewal::Failed(e) => return Err(e.into_response()),
            },
        }
        match cookie(headers, CSRF_COOKIE).filter(|c| c.len() == KEY_LEN) {
            Some(key) => visitor.bind(key),
            None => {
                let key = random_token();
                let line = set_cookie(CSRF_COOKIE, &key, 60 * 60 * 24 * 365, "Strict", visitor.secure);
                visitor.set_cookies.push(line);
                visitor.bind(&key);
            }
        }
        Ok(visitor)
    }
}

impl Visitor {
    /// Binds the page's forms to `key`.
    fn bind(&mut self, key: &str) {
        key.clone_into(&mut self.key);
        self.csrf = form_token(key);
    }

    /// The user whose tokens these are is now signed in on this browser, in a session of its
    /// own (a new key: nothing planted before the sign-in can post as the user).
    pub fn sign_in(&mut self, tokens: &Tokens) {
        self.keep(&random_token(), tokens);
    }

    /// The session's tokens were renewed: the same session, the same key.
    pub fn renew(&mut self, tokens: &Tokens) {
        let key = self.key.clone();
        self.keep(&key, tokens);
    }

    fn keep(&mut self, key: &str, tokens: &Tokens) {
        self.access = Some(tokens.access_token.clone());
        self.refresh = Some(tokens.refresh_token.clone());
        self.bind(key);
        let (access, session) = (format!("{key}.{}", tokens.access_token), format!("{key}.{}", tokens.refresh_token));
        let secure = self.secure;
        self.set_cookies.push(set_cookie(ACCESS_COOKIE, &access, tokens.expires_in, "Lax", secure));
        self.set_cookies.push(set_cookie(SESSION_COOKIE, &session, tokens.refresh_expires_in, "Lax", secure));
    }

    /// Forgets the session's cookies.
    pub fn sign_out(&mut self) {
        self.identity = None;
        self.access = None;
        self.refresh = None;
        for name in [ACCESS_COOKIE, SESSION_COOKIE] {
            self.set_cookies.push(set_cookie(name, "", 0, "Lax", self.secure));
        }
    }

    /// The session's refresh token, to renew or end the session.
    pub fn refresh_token(&self) -> Option<&str> {
        self.refresh.as_deref()
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

/// Refuses a request that changes something when the browser says it comes from another origin:
/// `Sec-Fetch-Site` other than `same-origin` (or `none`, typed by the user), or else an `Origin`
/// whose host is not the one the request was sent to. A sibling subdomain is another origin,
/// though the same site. Clients that send neither (not a browser) pass, to the CSRF token.
pub async fn refuse_cross_origin(request: Request, next: Next) -> Response {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !reads && from_elsewhere(request.headers()) {
        return WebError::CrossOrigin.into_response();
    }
    next.run(request).await
}

fn from_elsewhere(headers: &HeaderMap) -> bool {
    let text = |name: &HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or_default().trim());
    if let Some(site) = text(&SEC_FETCH_SITE) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text(&ORIGIN) else { return false };
    // `Origin: null` comes from sandboxed frames, files and cross-origin redirects.
    let Some((_, origin_host)) = origin.split_once("://") else { return true };
    // The gateway passes the host the browser asked for in `X-Forwarded-Host`.
    let host = text(&FORWARDED_HOST).and_then(|h| h.split(',').next()).or_else(|| text(&HOST));
    !host.is_some_and(|host| origin_host.eq_ignore_ascii_case(host.trim()))
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
        assert_eq!(random_token().len(), KEY_LEN);
    }

    #[test]
    fn session_cookies_hold_a_key_and_a_token() {
        let key = random_token();
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln";
        assert_eq!(keyed(&format!("{key}.{jwt}")), Some((key.as_str(), jwt)));
        assert_eq!(keyed(jwt), None, "a token without a key");
        assert_eq!(keyed(&format!("{key}.")), None);
        let token = form_token(&key);
        assert_eq!(token.len(), KEY_LEN);
        assert!(token != key && token != form_token(&random_token()));
    }

    #[test]
    fn requests_from_other_origins_are_recognised() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
            }
            h
        };
        for own in [
            headers(&[]),
            headers(&[("sec-fetch-site", "same-origin"), ("origin", "https://evil.example")]),
            headers(&[("sec-fetch-site", "none")]),
            headers(&[("origin", "https://chat.example.org"), ("host", "chat.example.org")]),
            headers(&[
                ("origin", "https://chat.example.org"),
                ("x-forwarded-host", "chat.example.org"),
                ("host", "web:8080"),
            ]),
        ] {
            assert!(!from_elsewhere(&own), "{own:?}");
        }
        for foreign in [
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site"), ("origin", "https://chat.example.org")]),
            headers(&[("origin", "https://evil.example.org"), ("host", "chat.example.org")]),
            headers(&[("origin", "null"), ("host", "chat.example.org")]),
            headers(&[("origin", "https://chat.example.org")]),
        ] {
            assert!(from_elsewhere(&foreign), "{foreign:?}");
        }
    }
}
