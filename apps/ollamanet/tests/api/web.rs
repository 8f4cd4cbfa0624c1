//! The web application's pages through the gateway: forms with CSRF tokens, a session in
//! HttpOnly cookies that is renewed, ended, and taken away by an admin's lock; escaped output.

use std::collections::BTreeMap;
use std::time::Duration;

use kit::testing::TestInfra;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::documents::{BOUNDARY, multipart};
use crate::fake_ollama::{FakeOllama, platform_on};
use crate::helpers::{Deployment, Mode, PASSWORD, base_config};

/// A browser: its cookies, sent back as a browser would, and no redirect following, so that
/// each answer can be looked at.
pub(crate) struct Browser<'a> {
    d: &'a Deployment,
    client: reqwest::Client,
    pub(crate) cookies: BTreeMap<String, String>,
    /// The `Set-Cookie` lines of the last answer.
    last_set: Vec<String>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(d: &'a Deployment) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { d, client, cookies: BTreeMap::new(), last_set: Vec::new() }
    }

    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> (StatusCode, String, String) {
        self.send_accepting(method, path, form, "text/html").await
    }

    pub(crate) async fn send_accepting(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        accept: &str,
    ) -> (StatusCode, String, String) {
        let body = form.map(|form| ("application/x-www-form-urlencoded".to_owned(), urlencoded(form).into_bytes()));
        self.exchange(method, path, body, accept).await
    }

    /// Posts a file form (`multipart/form-data`) with the page's CSRF token, as a browser does.
    pub(crate) async fn post_file(&mut self, path: &str, name: &str, bytes: &[u8]) -> (StatusCode, String, String) {
        let csrf = self.cookies.get("ollamanet_csrf").cloned().expect("a CSRF cookie: get a page first");
        let body = multipart(&[("csrf", None, csrf.as_bytes()), ("file", Some(name), bytes)]);
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        self.exchange(Method::POST, path, Some((content_type, body)), "text/html").await
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(String, Vec<u8>)>,
        accept: &str,
    ) -> (StatusCode, String, String) {
        let mut req = self.client.request(method, self.d.at(path)).header(header::ACCEPT, accept);
        let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !jar.is_empty() {
            req = req.header(header::COOKIE, jar.join("; "));
        }
        if let Some((content_type, body)) = body {
            req = req.header(header::CONTENT_TYPE, content_type).body(body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let location = res.headers().get(header::LOCATION).map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        self.last_set =
            res.headers().get_all(header::SET_COOKIE).iter().map(|c| c.to_str().unwrap().to_owned()).collect();
        for line in &self.last_set {
            let (pair, attributes) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let body = res.text().await.unwrap();
        (status, location, body)
    }

    pub(crate) async fn get(&mut self, path: &str) -> (StatusCode, String, String) {
        self.send(Method::GET, path, None).await
    }

    /// Posts a form with the page's CSRF token.
    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String, String) {
        self.post_accepting(path, fields, "text/html").await
    }

    /// Posts a form as the page's script does, asking for `accept`.
    pub(crate) async fn post_accepting(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        accept: &str,
    ) -> (StatusCode, String, String) {
        let csrf = self.cookies.get("ollamanet_csrf").cloned().expect("a CSRF cookie: get a page first");
        let mut form = fields.to_vec();
        form.push(("csrf", &csrf));
        self.send_accepting(Method::POST, path, Some(&form), accept).await
    }

    pub(crate) fn set_cookie(&self, name: &str) -> &str {
        self.last_set.iter().find(|c| c.starts_with(&format!("{name}="))).map(String::as_str).unwrap_or_default()
    }
}

/// A form body as a browser sends it.
fn urlencoded(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

#[tokio::test]
async fn a_visitor_registers_signs_out_and_signs_in_again() {
    let d = Deployment::start(Mode::AllInOne).await;
    let mut b = Browser::new(&d);
    let (status, location, page) = b.get("/").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"), "signed out: {page}");
    let csrf = b.set_cookie("ollamanet_csrf").to_owned();
    assert!(csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"), "{csrf}");
    let (status, _, page) = b.get("/register").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("value=\"{}\"", b.cookies["ollamanet_csrf"])), "the form repeats the token");

    let (status, location, body) =
        b.post("/register", &[("username", "webby"), ("email", "webby@example.com"), ("password", PASSWORD)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/"), "{body}");
    for name in ["ollamanet_access", "ollamanet_session"] {
        let line = b.set_cookie(name);
        assert!(line.contains("HttpOnly") && line.contains("SameSite=Lax") && line.contains("Path=/"), "{line}");
    }
    let (status, location, _) = b.get("/").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/chat"), "the start page is the chat");
    let (status, _, home) = b.get("/chat").await;
    assert_eq!(status, StatusCode::OK, "{home}");
    assert!(home.contains("webby") && home.contains("No conversations here"), "{home}");

    // The start page lists the user's conversations, read from the conversation service as them.
    let token =
        d.call(Method::POST, "/api/auth/login", None, Some(json!({"login": "webby", "password": PASSWORD}))).await.1;
    let token = token["access_token"].as_str().unwrap().to_owned();
    let (status, _) = d
        .call(
            Method::POST,
            "/api/conversations",
            Some(&token),
            Some(json!({"model": "m", "title": "Plans for <b>May</b>"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, _, home) = b.get("/chat").await;
    assert!(
        home.contains("Plans for &#60;b&#62;May&#60;/b&#62;") || home.contains("Plans for &lt;b&gt;May&lt;/b&gt;"),
        "escaped: {home}"
    );

    let (status, location, _) = b.post("/logout", &[]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
    assert!(!b.cookies.contains_key("ollamanet_session"), "the session's cookies are cleared");
    assert_eq!(b.get("/chat").await.1, "/login");

    let (status, _, page) = b.post("/login", &[("login", "webby"), ("password", "wrong password here")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("That name or password is not right.") && page.contains("value=\"webby\""), "{page}");
    let (status, location, _) = b.post("/login", &[("login", "webby@example.com"), ("password", PASSWORD)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/"));
    assert_eq!(b.get("/chat").await.0, StatusCode::OK);
}

#[tokio::test]
async fn forms_without_the_sessions_token_are_refused() {
    let d = Deployment::start(Mode::AllInOne).await;
    let mut b = Browser::new(&d);
    b.get("/login").await;
    // Another site's form: the browser sends no Strict cookie, or the field is not the cookie's.
    let forged = [("login", "x"), ("password", "y"), ("csrf", "A".repeat(43).leak() as &str)];
    let (status, _, page) = b.send(Method::POST, "/login", Some(&forged)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("Form expired"), "{page}");
    let mut stranger = Browser::new(&d);
    let forged_registration = [
        ("username", "x"),
        ("email", "x@example.com"),
        ("password", PASSWORD),
        ("csrf", "A".repeat(43).leak() as &str),
    ];
    let (status, _, _) = stranger.send(Method::POST, "/register", Some(&forged_registration)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF cookie at all");
    let (status, _, _) = b.send(Method::POST, "/logout", Some(&[("csrf", "")])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, page) = b.send(Method::POST, "/login", Some(&[("login", "only this")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an incomplete form gets a page saying so");
    assert!(page.contains("Incomplete form"), "{page}");
}

#[tokio::test]
async fn pages_escape_what_visitors_type_and_forbid_foreign_scripts() {
    let d = Deployment::start(Mode::AllInOne).await;
    let mut b = Browser::new(&d);
    let res = d.client.get(d.at("/login")).send().await.unwrap();
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    b.get("/login").await;
    let attack = "\"><script>alert(1)</script><a href=\"javascript:alert(2)\">";
    let (_, _, page) = b.post("/login", &[("login", attack), ("password", "whatever it is")]).await;
    assert!(!page.contains("<script>alert(1)</script>") && !page.contains("href=\"javascript:"), "{page}");
}

#[tokio::test]
async fn a_locked_users_page_signs_them_out_on_their_next_action() {
    let d = Deployment::start(Mode::AllInOne).await;
    let admin = d.admin_token("root").await;
    let mut b = Browser::new(&d);
    b.get("/register").await;
    b.post("/register", &[("username", "lockee"), ("email", "lockee@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(b.get("/chat").await.0, StatusCode::OK);
    let (_, users) = d.call(Method::GET, "/api/admin/users?q=lockee", Some(&admin), None).await;
    let id = users["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) =
        d.call(Method::POST, &format!("/api/admin/users/{id}/lock"), Some(&admin), Some(json!({"minutes": 30}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, location, _) = b.get("/chat").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
    assert!(!b.cookies.contains_key("ollamanet_session") && !b.cookies.contains_key("ollamanet_access"));
    let (status, _, page) = b.post("/login", &[("login", "lockee"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("This account is locked"), "{page}");
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_from_the_session() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.auth.access_token_ttl = Duration::from_secs(1);
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let mut b = Browser::new(&d);
    b.get("/register").await;
    b.post("/register", &[("username", "renewed"), ("email", "renewed@example.com"), ("password", PASSWORD)]).await;
    let first = b.cookies["ollamanet_access"].clone();
    // The access cookie's Max-Age (the token's life) has passed: the browser no longer sends it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.cookies.remove("ollamanet_access");
    let (status, _, page) = b.get("/chat").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_ne!(b.cookies["ollamanet_access"], first, "a new access token");
    assert!(b.set_cookie("ollamanet_session").contains("HttpOnly"), "and a new refresh token (rotation)");
}

/// A conversation from the pages: created with a model the user may use, a message sent as a
/// plain form (the page comes back with the reply) and as the page's script sends it (the reply
/// streams); a reply holding a script, raw HTML and a `javascript:` link renders inert.
#[tokio::test]
async fn a_user_chats_from_the_pages_and_replies_render_inert() {
    let node = FakeOllama::start("<script>alert(1)</script> **bold** [x](javascript:alert(2))", &["alpha"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let mut b = Browser::new(&d);
    b.get("/register").await;
    b.post("/register", &[("username", "chatty"), ("email", "chatty@example.com"), ("password", PASSWORD)]).await;
    let (status, _, page) = b.get("/chat").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<option value=\"alpha:latest\">"), "the models the user may use: {page}");

    let (status, conversation, page) = b.post("/chat", &[("model", "alpha:latest"), ("title", "First steps")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert!(conversation.starts_with("/chat/"), "{conversation}");
    let (status, _, page) = b.get(&conversation).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("First steps") && page.contains("id=\"send\""), "{page}");

    let (status, location, body) = b.post(&format!("{conversation}/messages"), &[("content", "hi <b>there</b>")]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, conversation.as_str()), "{body}");
    let (_, _, page) = b.get(&conversation).await;
    assert!(page.contains("hi &#60;b&#62;there&#60;/b&#62;") || page.contains("hi &lt;b&gt;there&lt;/b&gt;"), "{page}");
    assert!(page.contains("<strong>bold</strong>"), "the reply's Markdown is rendered: {page}");
    assert!(!page.contains("<script>alert(1)") && !page.contains("javascript:"), "the reply is inert: {page}");

    let (status, _, events) =
        b.post_accepting(&format!("{conversation}/messages"), &[("content", "again")], "text/event-stream").await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert!(
        events.contains("event: start") && events.contains("event: delta") && events.contains("event: done"),
        "{events}"
    );

    // Regenerating the last reply makes a second branch of it; the page can switch between them.
    let (_, _, page) = b.get(&conversation).await;
    let last_reply =
        page.rsplit("/regenerate\"").nth(1).and_then(|before| before.rsplit("/messages/").next()).unwrap().to_owned();
    let (status, location, body) = b.post(&format!("{conversation}/messages/{last_reply}/regenerate"), &[]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, conversation.as_str()), "{body}");
    let (_, _, page) = b.get(&conversation).await;
    assert!(page.contains("2/2") && page.contains("aria-label=\"Previous version\""), "{page}");
    let previous = page.split("name=\"message\" value=\"").nth(1).unwrap()[..36].to_owned();
    let (status, _, _) = b.post(&format!("{conversation}/branch"), &[("message", &previous)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = b.get(&conversation).await;
    assert!(page.contains("1/2") && page.contains("aria-label=\"Next version\""), "{page}");

    // Editing a message of the user's branches the conversation there.
    let first_message = page.split("name=\"edit_of\" value=\"").nth(1).unwrap()[..36].to_owned();
    let (status, _, body) =
        b.post(&format!("{conversation}/messages"), &[("content", "hello, edited"), ("edit_of", &first_message)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, _, page) = b.get(&conversation).await;
    assert!(page.contains("hello, edited") && !page.contains("hi &#60;b&#62;") && page.contains("2/2"), "{page}");

    // Stopping with no reply under way changes nothing and comes back to the conversation.
    let (status, location, _) = b.post(&format!("{conversation}/stop"), &[]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, conversation.as_str()));

    let other = Browser::new(&d).get(&conversation).await;
    assert_eq!((other.0, other.1.as_str()), (StatusCode::SEE_OTHER, "/login"), "signed out, nothing is shown");
}
