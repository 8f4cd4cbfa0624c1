//! The web application's pages through the gateway: forms with CSRF tokens, a session in
//! HttpOnly cookies that is renewed, ended, and taken away by an admin's lock; escaped output.

use std::collections::BTreeMap;
use std::time::Duration;

use kit::testing::{Stack, TestInfra};
use ollamanet::app::Service;
use ollamanet::config::Urls;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::documents::{BOUNDARY, multipart};
use crate::fake_ollama::{FakeOllama, platform_on};
use crate::helpers::{Deployment, Mode, PASSWORD, base_config, eventually, spawn_process};
use crate::resilience::{FaultProxy, host_port};

/// A browser: its cookies, sent back as a browser would, and no redirect following, so that
/// each answer can be looked at. Its forms repeat the CSRF token of the last page that had one,
/// as a page's forms do.
pub(crate) struct Browser<'a> {
    d: &'a Deployment,
    client: reqwest::Client,
    pub(crate) cookies: BTreeMap<String, String>,
    /// The `Set-Cookie` lines of the last answer.
    last_set: Vec<String>,
    /// The headers of the last answer.
    pub(crate) last_headers: header::HeaderMap,
    /// The forms' token on the last page that had forms.
    csrf: Option<String>,
    /// Headers every request carries besides (what a browser says about where a request comes from).
    headers: Vec<(&'static str, String)>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(d: &'a Deployment) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let last_headers = header::HeaderMap::new();
        Self {
            d,
            client,
            cookies: BTreeMap::new(),
            last_set: Vec::new(),
            last_headers,
            csrf: None,
            headers: Vec::new(),
        }
    }

    /// From now on, send what a browser sends with a request made by a page of `origin`.
    pub(crate) fn sent_from(&mut self, origin: &str, fetch_site: Option<&str>) {
        self.headers = vec![("origin", origin.to_owned())];
        self.headers.extend(fetch_site.map(|site| ("sec-fetch-site", site.to_owned())));
    }

    /// Another tab of this browser: the same cookies, as they are now.
    pub(crate) fn tab(&self) -> Self {
        let mut tab = Browser::new(self.d);
        tab.cookies = self.cookies.clone();
        tab.csrf = self.csrf.clone();
        tab
    }

    /// The forms' token of the last page with forms.
    pub(crate) fn csrf(&self) -> String {
        self.csrf.clone().expect("a form's token: get a page first")
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
        let csrf = self.csrf();
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
        for (name, value) in &self.headers {
            req = req.header(*name, value);
        }
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
        self.last_headers = res.headers().clone();
        let body = res.text().await.unwrap();
        if let Some(token) = body.split("name=\"csrf\" value=\"").nth(1).and_then(|rest| rest.split('"').next()) {
            self.csrf = Some(token.to_owned());
        }
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
        let csrf = self.csrf();
        let mut form = fields.to_vec();
        form.push(("csrf", &csrf));
        self.send_accepting(Method::POST, path, Some(&form), accept).await
    }

    pub(crate) fn set_cookie(&self, name: &str) -> &str {
        self.last_set.iter().find(|c| c.starts_with(&format!("{name}="))).map(String::as_str).unwrap_or_default()
    }
}

/// A browser in which `username` has just registered, on their profile page.
pub(crate) async fn signed_up<'a>(d: &'a Deployment, username: &str) -> Browser<'a> {
    let mut b = Browser::new(d);
    b.get("/register").await;
    let email = format!("{username}@example.com");
    let (status, _, page) =
        b.post("/register", &[("username", username), ("email", &email), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let (status, _, page) = b.get("/profile").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    b
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
    let token = b.csrf();
    assert_eq!(token.len(), 43, "the form has a token");
    assert!(!page.contains(&b.cookies["ollamanet_csrf"]), "derived from the cookie, not the cookie itself");

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

    b.get("/login").await;
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
    b.get("/login").await;
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

/// A stranger who knows a user's name guesses passwords at the sign-in page: five, then fifty.
/// The user's browser stays signed in (its session renews after the guesses) and their API key
/// keeps working; only new sign-ins wait.
#[tokio::test]
async fn a_strangers_wrong_passwords_sign_nobody_out() {
    let d = Deployment::start(Mode::AllInOne).await;
    let mut victim = signed_up(&d, "victim").await;
    let (_, tokens) =
        d.call(Method::POST, "/api/auth/login", None, Some(json!({"login": "victim", "password": PASSWORD}))).await;
    let token = tokens["access_token"].as_str().unwrap();
    let (status, key) = d.call(Method::POST, "/api/auth/keys", Some(token), Some(json!({"name": "cli"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();

    let mut stranger = Browser::new(&d);
    stranger.get("/login").await;
    let mut tried = 0;
    for guesses in [5, 50] {
        while tried < guesses {
            let guess = format!("guess number {tried}");
            let (status, _, page) = stranger.post("/login", &[("login", "victim"), ("password", &guess)]).await;
            if tried < 5 {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
            } else {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "later guesses wait: {page}");
                assert!(page.contains("Too many wrong passwords"), "{page}");
            }
            tried += 1;
        }
        // The victim's access token has expired (the browser dropped its cookie): it renews.
        victim.cookies.remove("ollamanet_access");
        let (status, _, page) = victim.get("/profile").await;
        assert_eq!(status, StatusCode::OK, "signed in after {guesses} wrong passwords: {page}");
        assert!(victim.cookies.contains_key("ollamanet_session") && victim.cookies.contains_key("ollamanet_access"));
        let (status, me) = d.call(Method::GET, "/api/auth/me", Some(&key), None).await;
        assert_eq!(status, StatusCode::OK, "the API key works after {guesses} wrong passwords: {me}");
    }
    let (status, _, page) = victim.post("/profile/keys", &[("name", "still here")]).await;
    assert_eq!(status, StatusCode::CREATED, "the session's forms work: {page}");
    // Signing in anew waits, with the right password too.
    let mut elsewhere = Browser::new(&d);
    elsewhere.get("/login").await;
    let (status, _, _) = elsewhere.post("/login", &[("login", "victim"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// Several tabs whose access token expired together renew the one session at once: each of them
/// stays signed in, with the same renewed session, and so does every tab after them.
#[tokio::test]
async fn tabs_renewing_one_session_at_once_all_stay_signed_in() {
    let d = Deployment::start(Mode::AllInOne).await;
    let mut b = signed_up(&d, "tabby").await;
    b.cookies.remove("ollamanet_access");
    let before = b.cookies["ollamanet_session"].clone();
    let mut tabs: Vec<Browser> = (0..6).map(|_| b.tab()).collect();
    let pages = futures::future::join_all(tabs.iter_mut().map(|tab| tab.get("/profile"))).await;
    for (status, _, page) in &pages {
        assert_eq!(*status, StatusCode::OK, "{page}");
    }
    let sessions: std::collections::HashSet<&String> = tabs.iter().map(|t| &t.cookies["ollamanet_session"]).collect();
    assert_eq!(sessions.len(), 1, "one renewed session: {sessions:?}");
    assert!(!sessions.contains(&before), "renewed");
    for tab in &mut tabs {
        tab.cookies.remove("ollamanet_access");
        let (status, _, page) = tab.get("/profile").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let (status, _, page) = tab.post("/profile/keys", &[("name", "tab")]).await;
        assert_eq!(status, StatusCode::CREATED, "{page}");
    }
}

/// The sign-in service cannot be reached while a browser's session needs renewing: the page says
/// so, the browser keeps its session, and the session renews once the service is back.
#[tokio::test]
async fn an_unreachable_sign_in_service_does_not_sign_the_browser_out() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    let (_auth, auth_url) = spawn_process(&infra, &config, "auth").await;
    let proxy = FaultProxy::start(host_port(&auth_url, 80)).await;
    config.upstreams.insert("auth".into(), Urls(vec![proxy.url_for(&auth_url)]));
    let d = Deployment::in_process_with(infra, config, &[Service::Gateway, Service::Web]).await;
    let mut b = signed_up(&d, "steady").await;
    b.cookies.remove("ollamanet_access");
    let session = b.cookies["ollamanet_session"].clone();

    proxy.down();
    let (status, _, page) = b.get("/profile").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert!(page.contains("not reachable right now"), "{page}");
    assert_eq!(b.set_cookie("ollamanet_session"), "", "the session's cookie is left alone");
    assert_eq!(b.cookies["ollamanet_session"], session);

    proxy.up();
    eventually("the session renewing", async || b.get("/profile").await.0 == StatusCode::OK).await;
    let (status, _, page) = b.post("/profile/keys", &[("name", "after the outage")]).await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
}

/// The auth service answers `503 database_unavailable` while a browser's session needs renewing:
/// the browser keeps its session. (Postgres is reached through a fault proxy, on the full stack.)
#[tokio::test]
async fn a_503_from_the_sign_in_service_does_not_sign_the_browser_out() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let mut config = base_config(&infra);
    let db = config.infra.database_url.clone().unwrap();
    let proxy = FaultProxy::start(host_port(&db, 5432)).await;
    config.infra.database_url = Some(proxy.url_for(&db));
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let mut b = signed_up(&d, "patient").await;
    b.cookies.remove("ollamanet_access");
    let session = b.cookies["ollamanet_session"].clone();

    proxy.down();
    let (status, body) = d.call(Method::POST, "/api/auth/refresh", None, Some(json!({"refresh_token": "x"}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("database_unavailable")));
    let (status, _, page) = b.get("/profile").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert_eq!(b.set_cookie("ollamanet_session"), "", "the session's cookie is left alone");
    assert_eq!(b.cookies["ollamanet_session"], session);

    proxy.up();
    eventually("the session renewing", async || b.get("/profile").await.0 == StatusCode::OK).await;
}

/// A sibling subdomain can set cookies for this site. It plants a token cookie of its own in the
/// victim's browser (one it got by visiting, so it knows the form token that goes with it) and
/// posts a form that repeats it: refused, as the victim's forms are bound to their session.
#[tokio::test]
async fn a_planted_csrf_cookie_cannot_post_as_the_victim() {
    let d = Deployment::start(Mode::AllInOne).await;
    let mut victim = signed_up(&d, "target").await;
    let mut attacker = Browser::new(&d);
    attacker.get("/login").await;
    let (planted, planted_token) = (attacker.cookies["ollamanet_csrf"].clone(), attacker.csrf());
    victim.cookies.insert("ollamanet_csrf".into(), planted.clone());
    for field in [&planted_token, &planted] {
        let forged = [("name", "planted"), ("csrf", field.as_str())];
        let (status, _, page) = victim.send(Method::POST, "/profile/keys", Some(&forged)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
        assert!(page.contains("Form expired"), "{page}");
    }
    let (_, _, page) = victim.get("/profile").await;
    assert!(!page.contains("planted"), "no key was made: {page}");
    let (status, _, page) = victim.post("/profile/keys", &[("name", "mine")]).await;
    assert_eq!(status, StatusCode::CREATED, "the victim's own form works: {page}");
}

/// A form that another site, or a sibling subdomain, makes the user's browser post is refused by
/// where the browser says it comes from, even when it carries a good token; the site's own forms
/// pass. Every page keeps images to this site.
#[tokio::test]
async fn forms_posted_from_another_origin_are_refused() {
    let d = Deployment::start(Mode::AllInOne).await;
    let mut b = signed_up(&d, "homebody").await;
    let csp = b.last_headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("img-src 'self' data:;"), "{csp}");
    let sibling = format!("http://evil.{}", d.url.trim_start_matches("http://"));
    for (origin, site) in [
        ("https://evil.example", Some("cross-site")),
        (sibling.as_str(), Some("same-site")),
        ("https://evil.example", None),
        ("null", None),
    ] {
        let mut tab = b.tab();
        tab.sent_from(origin, site);
        let (status, _, page) = tab.post("/profile/keys", &[("name", "forged")]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin} {site:?}: {page}");
        assert!(page.contains("Sent from another site"), "{page}");
    }
    // Signing the visitor in to another account (the attacker's) is refused the same way.
    let mut visitor = Browser::new(&d);
    visitor.get("/login").await;
    visitor.sent_from("https://evil.example", Some("cross-site"));
    let (status, _, _) = visitor.post("/login", &[("login", "homebody"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!visitor.cookies.contains_key("ollamanet_session"));

    let (_, _, page) = b.get("/profile").await;
    assert!(!page.contains("forged"), "nothing was made: {page}");
    for site in [Some("same-origin"), None] {
        let mut tab = b.tab();
        tab.sent_from(&d.url, site);
        let (status, _, page) = tab.post("/profile/keys", &[("name", "own")]).await;
        assert_eq!(status, StatusCode::CREATED, "{site:?}: {page}");
    }
}

/// The address of the site in a mailed link, made a path of the test's deployment.
fn followed(d: &Deployment, mail: &str) -> String {
    let site = d.config.auth.public_url.trim_end_matches('/');
    let link = mail.split_whitespace().find(|w| w.starts_with(site)).unwrap_or_else(|| panic!("a link: {mail}"));
    link[site.len()..].to_owned()
}

/// Forgot the password: the mailed link, followed, opens the page that sets a new one.
#[tokio::test]
async fn a_mailed_reset_link_opens_the_reset_page() {
    let d = Deployment::start(Mode::AllInOne).await;
    d.register("forgetful").await;
    let mut b = Browser::new(&d);
    let (status, _, page) = b.get("/forgot").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, _, page) = b.post("/forgot", &[("email", "forgetful@example.com")]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mail = d.mail.as_ref().unwrap().wait_for("forgetful@example.com").await;

    let (status, _, page) = b.get(&followed(&d, &mail.body)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Set a new password") && page.contains("name=\"token\" value=\""), "{page}");
    let token = page.split("name=\"token\" value=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
    let (status, location, page) = b.post("/reset", &[("token", token), ("password", "a freshly chosen phrase")]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login?reset=true"), "{page}");
    let (_, _, page) = b.get(&location).await;
    assert!(page.contains("Your password is changed"), "{page}");
    let (status, location, _) =
        b.post("/login", &[("login", "forgetful"), ("password", "a freshly chosen phrase")]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/"));
}

/// When a stranger spends the account's whole budget of wrong passwords, the password alone no
/// longer signs in; the owner, still signed in where they were, is mailed a link that sets a new
/// one.
#[tokio::test]
async fn after_the_budget_the_owner_signs_in_again_through_the_mailed_link() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.auth.lockout_threshold = 3;
    config.auth.lockout_first_wait = Duration::ZERO;
    config.auth.reset_required_after = 3;
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let mut owner = signed_up(&d, "besieged").await;
    let mut stranger = Browser::new(&d);
    stranger.get("/login").await;
    for n in 0..3 {
        let guess = format!("guess number {n}");
        let (status, _, _) = stranger.post("/login", &[("login", "besieged"), ("password", &guess)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, page) = stranger.post("/login", &[("login", "besieged"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("it needs a new password"), "{page}");

    owner.cookies.remove("ollamanet_access");
    let (status, _, page) = owner.get("/profile").await;
    assert_eq!(status, StatusCode::OK, "the owner is still signed in: {page}");
    let mail = d.mail.as_ref().unwrap().wait_for("besieged@example.com").await;
    assert_eq!(mail.subject, "Choose a new OllamaNet password");
    let (status, _, page) = owner.get(&followed(&d, &mail.body)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let token = page.split("name=\"token\" value=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
    let (status, _, page) = owner.post("/reset", &[("token", token), ("password", "my own new phrase")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    owner.get("/login").await;
    let (status, location, _) = owner.post("/login", &[("login", "besieged"), ("password", "my own new phrase")]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/"));
}

/// What `ollamanet serve --only auth --listen <listen>` writes to stderr until it listens, with
/// mail going to the log (the default).
async fn start_up_log(listen: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let infra = TestInfra::new().await;
    let file = infra.data_dir().join("mail-to-log.toml");
    std::fs::write(&file, ollamanet::config::to_toml(&base_config(&infra), false)).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ollamanet"))
        .args(["--config", file.to_str().unwrap(), "serve", "--listen", listen, "--only", "auth"])
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("AMQP_URL")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("listening on ") {
                return;
            }
        }
        panic!("ollamanet exited before listening");
    })
    .await
    .expect("started in time");
    child.kill().await.unwrap();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).await.unwrap();
    log
}

/// Reset links in the log are fine on a developer's machine, not where others can connect: the
/// server says so once, at start.
#[tokio::test]
async fn mail_to_the_log_is_flagged_at_start_when_others_can_connect() {
    let warning = "password-reset links are written to the log";
    let open = start_up_log("0.0.0.0:0").await;
    assert_eq!(open.matches(warning).count(), 1, "{open}");
    let local = start_up_log("127.0.0.1:0").await;
    assert_eq!(local.matches(warning).count(), 0, "{local}");
}
