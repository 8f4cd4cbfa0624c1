//! Spawns the auth service on a free port with its own backends, and talks to it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kit::bus::{EVENTS_EXCHANGE, Event, Handler, HandlerError, Message, Subscription};
use kit::config::Platform;
use kit::testing::TestInfra;
use ollamanet_auth::{AuthConfig, RecordingMailer};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub mailer: Arc<RecordingMailer>,
    pub platform: Platform,
    pub config: AuthConfig,
    pub shutdown: CancellationToken,
    /// Owns the test's backends; dropping it removes them.
    _infra: TestInfra,
}

/// Settings for tests: the production defaults except a small lockout threshold and a
/// recognisable public URL.
pub fn test_config() -> AuthConfig {
    AuthConfig {
        lockout_threshold: 3,
        hash_concurrency: 2,
        public_url: "http://app.test/".into(),
        ..AuthConfig::default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(config: AuthConfig) -> Self {
        let infra = TestInfra::new().await;
        let platform = Platform::new(infra.config.clone(), "auth").expect("platform");
        Self::serve(infra, platform, config).await
    }

    /// Starts the service on `platform` and serves it on a free port.
    async fn serve(infra: TestInfra, platform: Platform, config: AuthConfig) -> Self {
        let shutdown = CancellationToken::new();
        let mailer = Arc::new(RecordingMailer::default());
        let auth = ollamanet_auth::start_with_mailer(&platform, &config, shutdown.clone(), mailer.clone())
            .await
            .expect("auth starts");
        let app = kit::http::ops_routes("auth", auth.handle.readiness.clone(), None).merge(auth.handle.router);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(kit::server::serve(listener, app, shutdown.clone(), kit::server::ServeOptions::default()));
        kit::tls::install_crypto_provider();
        Self { base, client: reqwest::Client::new(), mailer, platform, config, shutdown, _infra: infra }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn send(&self, req: RequestBuilder) -> Res {
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
        };
        Res { status, headers, body, text }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Res {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// A request with `Authorization: Bearer <credential>` and, when given, a JSON body.
    pub async fn call(&self, method: Method, path: &str, credential: &str, body: Option<&Value>) -> Res {
        let mut req = self.request(method, path).bearer_auth(credential);
        if let Some(body) = body {
            req = req.json(body);
        }
        self.send(req).await
    }

    pub async fn me(&self, credential: &str) -> Res {
        self.call(Method::GET, "/api/auth/me", credential, None).await
    }

    pub async fn register(&self, user: &TestUser) -> Res {
        self.post(
            "/api/auth/register",
            &json!({"username": user.username, "email": user.email, "password": user.password}),
        )
        .await
    }

    /// Registers a fresh user and returns it with its first session.
    pub async fn new_user(&self) -> (TestUser, Session) {
        let user = TestUser::unique();
        let res = self.register(&user).await;
        assert_eq!(res.status, 201, "{}", res.text);
        let session = Session::from(&res);
        (user, session)
    }

    pub async fn login(&self, login: &str, password: &str) -> Res {
        self.post("/api/auth/login", &json!({"login": login, "password": password})).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Res {
        self.post("/api/auth/refresh", &json!({"refresh_token": refresh_token})).await
    }

    /// Creates a user with the Admin role the way `ollamanet users create --admin` does, and
    /// logs it in.
    pub async fn admin(&self) -> Session {
        let user = TestUser::unique();
        let new = ollamanet_auth::NewUser {
            email: user.email.clone(),
            username: user.username.clone(),
            password: user.password.clone(),
            admin: true,
        };
        ollamanet_auth::create_user(&self.platform, &self.config, new).await.expect("admin created");
        let res = self.login(&user.username, &user.password).await;
        assert_eq!(res.status, 200, "{}", res.text);
        Session::from(&res)
    }
}

impl TestApp {
    /// Runs `statement`, with the user id as `$1`, on the service's database: for account states
    /// that only other services will set, and for expiry without waiting. Like those services,
    /// it then drops the user's cached state.
    pub async fn sql(&self, statement: &'static str, user_id: Uuid) {
        let db = self.platform.database("auth", &ollamanet_auth::MIGRATIONS).await.expect("database");
        kit::with_db!(&db, |pool| {
            sqlx::query(statement).bind(user_id).execute(pool).await.expect("statement runs");
        });
        db.close().await;
        self.platform.cache.delete(&kit::authn::cache_key_user(user_id)).await;
    }
}

/// The token of the reset link in a recorded mail; the link opens the web's reset page.
pub fn reset_token(body: &str) -> String {
    let page = format!("http://app.test{}?token=", kit::api::RESET_PASSWORD_PAGE);
    let start = body.find(&page).expect("reset link in the mail");
    let link = body[start..].split_whitespace().next().unwrap();
    link.split_once("token=").unwrap().1.to_owned()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub username: String,
    pub email: String,
    pub password: String,
}

impl TestUser {
    pub fn unique() -> Self {
        let tag = &Uuid::new_v4().simple().to_string()[..10];
        Self { username: format!("user_{tag}"), email: format!("user.{tag}@example.org"), password: PASSWORD.into() }
    }
}

/// The tokens of a token response.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: Uuid,
}

impl From<&Res> for Session {
    fn from(res: &Res) -> Self {
        Self {
            access: res.body["access_token"].as_str().expect("access_token").to_owned(),
            refresh: res.body["refresh_token"].as_str().expect("refresh_token").to_owned(),
            user_id: res.body["user"]["id"].as_str().expect("user.id").parse().expect("uuid"),
        }
    }
}

pub struct Res {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Res {
    /// The problem `code`.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// `(field, code)` of every field error.
    pub fn field_errors(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (e["field"].as_str().unwrap_or("").to_owned(), e["code"].as_str().unwrap_or("").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "{}", self.text);
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{}", self.text);
    }

    /// The refresh token the `Set-Cookie` header sets, and the cookie's attributes.
    pub fn refresh_cookie(&self) -> Option<(String, Vec<String>)> {
        let cookie = self
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("ollamanet_refresh="))?;
        let mut parts = cookie.split(';').map(|p| p.trim().to_owned());
        let value = parts.next()?.trim_start_matches("ollamanet_refresh=").to_owned();
        Some((value, parts.collect()))
    }
}

/// Collects `user.*` and `admin.*` (audit) events from the bus.
pub struct EventLog {
    events: Mutex<Vec<Event>>,
    arrived: Notify,
}

#[async_trait]
impl Handler for EventLog {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        let event: Event = serde_json::from_slice(&msg.body).map_err(|e| HandlerError::Poison(e.to_string()))?;
        self.events.lock().expect("event log").push(event);
        self.arrived.notify_waiters();
        Ok(())
    }
}

impl EventLog {
    /// Subscribes to `user.*` and `admin.*`; once it returns, every event published reaches the log.
    pub async fn subscribe(app: &TestApp) -> Arc<Self> {
        let log = Arc::new(Self { events: Mutex::new(Vec::new()), arrived: Notify::new() });
        let sub = Subscription::broadcast(EVENTS_EXCHANGE, &format!("test-{}", Uuid::now_v7()), &["user.#", "admin.#"]);
        app.platform.bus.wait_connected().await;
        app.platform.bus.subscribe(sub, log.clone()).await;
        log
    }

    /// Waits (at most 10 s) for an event matching `pred`.
    pub async fn expect(&self, pred: impl Fn(&Event) -> bool) -> Event {
        tokio::time::timeout(Duration::from_secs(10), self.wait_for(pred)).await.expect("event published")
    }

    /// Every event so far that matches `pred`.
    pub fn all(&self, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        self.events.lock().expect("event log").iter().filter(|e| pred(e)).cloned().collect()
    }

    async fn wait_for(&self, pred: impl Fn(&Event) -> bool) -> Event {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(e) = self.events.lock().expect("event log").iter().find(|e| pred(e)) {
                return e.clone();
            }
            arrived.await;
        }
    }
}

/// Decodes a JWT's header and claims without verifying it.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine;
    let decode = |part: &str| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url");
        serde_json::from_slice(&bytes).expect("json")
    };
    let mut parts = token.split('.');
    (decode(parts.next().expect("header")), decode(parts.next().expect("claims")))
}
