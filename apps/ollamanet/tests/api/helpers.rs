//! Deployments under test: the platform in this test process (all-in-one) or as separate
//! `ollamanet` processes (split), on the stack `OLLAMANET_TEST_STACK` selects.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use kit::testing::TestInfra;
use ollamanet::app::{App, Hooks, Options, Service};
use ollamanet::config::{AppConfig, Urls};
use ollamanet_auth::RecordingMailer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "correct horse battery staple";
/// The operators' token every test deployment is configured with (`ops_token`).
pub const OPS_TOKEN: &str = "test-ops-token";

/// The platform without its embedded engine: for tests whose engines are other processes or
/// test doubles.
pub fn without_engine() -> Vec<Service> {
    Service::ALL.into_iter().filter(|s| *s != Service::Engine).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    AllInOne,
    Split,
}

pub struct Deployment {
    /// The gateway's base URL.
    pub url: String,
    /// Owns the test's backends; dropping it removes them.
    _infra: TestInfra,
    pub config: AppConfig,
    pub client: reqwest::Client,
    /// Mail the platform sent (all-in-one only: a split process logs its mail).
    pub mail: Option<Arc<RecordingMailer>>,
    /// The embedded engine's counters (all-in-one with the engine only).
    pub engine: Option<ollamanet_engine::EngineStats>,
    shutdown: Option<CancellationToken>,
    _children: Vec<Child>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some(s) = &self.shutdown {
            s.cancel();
        }
    }
}

/// The configuration every test deployment starts from: the test's own backends, fast hashing
/// limits left as in production, rate limits high enough not to interfere.
pub fn base_config(infra: &TestInfra) -> AppConfig {
    let mut config = AppConfig { listen: "127.0.0.1:0".into(), infra: infra.config.clone(), ..AppConfig::default() };
    config.infra.ops_token = Some(OPS_TOKEN.into());
    config.auth.refresh_cookie_secure = false;
    config.web.secure_cookies = false;
    // Documents are read by `ollamanet extract-document` and templates rendered by `ollamanet
    // render-templates`; in process the program running is this test binary, which has neither.
    config.conversation.documents.extract_program = Some(env!("CARGO_BIN_EXE_ollamanet").into());
    config.engine.template_program = Some(env!("CARGO_BIN_EXE_ollamanet").into());
    config.gateway.rate_limits.anonymous.per_minute = 100_000;
    config.gateway.rate_limits.anonymous.burst = 10_000;
    config.gateway.rate_limits.authenticated.per_minute = 100_000;
    config.gateway.rate_limits.authenticated.burst = 10_000;
    for quota in config.gateway.rate_limits.classes.values_mut() {
        quota.per_minute = 100_000;
        quota.burst = 10_000;
    }
    config
}

pub fn client() -> reqwest::Client {
    client_waiting(Duration::from_secs(30))
}

/// A client whose requests (streamed bodies included) may take `timeout`.
fn client_waiting(timeout: Duration) -> reqwest::Client {
    kit::tls::install_crypto_provider();
    reqwest::Client::builder().timeout(timeout).build().expect("client")
}

impl Deployment {
    /// Gives every request five minutes instead of 30 s: a real model on a busy 2-core machine
    /// can take longer than that for a reply and its title.
    pub fn patient(mut self) -> Self {
        self.client = client_waiting(Duration::from_secs(300));
        self
    }

    pub async fn start(mode: Mode) -> Self {
        let infra = TestInfra::new().await;
        let config = base_config(&infra);
        Self::start_with(mode, infra, config).await
    }

    pub async fn start_with(mode: Mode, infra: TestInfra, config: AppConfig) -> Self {
        match mode {
            Mode::AllInOne => Self::in_process(infra, config).await,
            Mode::Split => Self::split(infra, config).await,
        }
    }

    async fn in_process(infra: TestInfra, config: AppConfig) -> Self {
        Self::in_process_with(infra, config, &Service::ALL).await
    }

    /// The given services in this test process.
    pub async fn in_process_with(infra: TestInfra, config: AppConfig, services: &[Service]) -> Self {
        let mail = Arc::new(RecordingMailer::default());
        let options = Options { hooks: Hooks { mailer: Some(mail.clone()) }, ..Options::default() };
        let app = App::build(&config, services, options).await.expect("build app");
        let engine = app.engine().cloned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = app.shutdown.clone();
        tokio::spawn(app.serve(listener, kit::server::ServeOptions::default()));
        Self {
            url,
            _infra: infra,
            config,
            client: client(),
            mail: Some(mail),
            engine,
            shutdown: Some(shutdown),
            _children: Vec::new(),
        }
    }

    async fn split(infra: TestInfra, config: AppConfig) -> Self {
        Self::apart(infra, config, &["auth"]).await
    }

    /// Each of `services` as a process of its own (in order: each learns the URLs of those before
    /// it), and a gateway process in front of them all.
    pub async fn apart(infra: TestInfra, mut config: AppConfig, services: &[&str]) -> Self {
        let mut children = Vec::new();
        for service in services {
            let (child, url) = spawn_process(&infra, &config, service).await;
            config.upstreams.insert((*service).into(), Urls(vec![url]));
            children.push(child);
        }
        let (gateway, url) = spawn_process(&infra, &config, "gateway").await;
        children.push(gateway);
        Self {
            url,
            _infra: infra,
            config,
            client: client(),
            mail: None,
            engine: None,
            shutdown: None,
            _children: children,
        }
    }

    /// `ollamanet serve ARGS` as a process of its own, with these environment variables.
    pub async fn process(infra: TestInfra, config: AppConfig, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let (child, url) = spawn_serve_env(&infra, &config, args, envs).await;
        Self {
            url,
            _infra: infra,
            config,
            client: client(),
            mail: None,
            engine: None,
            shutdown: None,
            _children: vec![child],
        }
    }

    /// A platform the test started itself, answering at `url`, on the test's backends.
    pub fn running(infra: TestInfra, config: AppConfig, url: String) -> Self {
        Self {
            url,
            _infra: infra,
            config,
            client: client(),
            mail: None,
            engine: None,
            shutdown: None,
            _children: Vec::new(),
        }
    }

    /// The process id of the (first) `ollamanet` process of a deployment of processes.
    pub fn pid(&self) -> u32 {
        self._children.first().and_then(Child::id).expect("a deployment of processes")
    }

    /// Sends SIGTERM to the deployment's (first) process; its exit status if it exits within
    /// `deadline`.
    pub async fn terminate(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.pid().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        tokio::time::timeout(deadline, self._children[0].wait()).await.ok().map(Result::unwrap)
    }

    /// The test's backends and data directory.
    pub fn infra(&self) -> &TestInfra {
        &self._infra
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.at(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The process's metrics, read with the operators' token.
    pub async fn metrics(&self) -> String {
        let res = self.client.get(self.at("/metrics")).bearer_auth(OPS_TOKEN).send().await.expect("metrics");
        assert_eq!(res.status(), StatusCode::OK, "metrics with the ops token");
        res.text().await.expect("metrics body")
    }

    /// Registers a user and returns the token response.
    pub async fn register(&self, username: &str) -> Value {
        let email = format!("{username}@example.com");
        let (status, body) = self
            .call(
                Method::POST,
                "/api/auth/register",
                None,
                Some(json!({"username": username, "email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {username}: {body}");
        body
    }

    /// Registers a user and returns their access token.
    pub async fn user_token(&self, username: &str) -> String {
        self.register(username).await["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates an administrator the way an operator does (`ollamanet users create --admin`)
    /// and logs them in.
    pub async fn admin_token(&self, username: &str) -> String {
        let platform = kit::config::Platform::new(self.config.infra.clone(), "test-cli").unwrap();
        let new = ollamanet_auth::NewUser {
            email: format!("{username}@example.com"),
            username: username.into(),
            password: PASSWORD.into(),
            admin: true,
        };
        ollamanet_auth::create_user(&platform, &self.config.auth, new).await.expect("create admin");
        let (status, body) = self
            .call(Method::POST, "/api/auth/login", None, Some(json!({"login": username, "password": PASSWORD})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

/// Starts `ollamanet serve --only <service>` on a free port with `config` and returns the child
/// and its base URL.
pub async fn spawn_process(infra: &TestInfra, config: &AppConfig, service: &str) -> (Child, String) {
    spawn_serve(infra, config, &["--only", service]).await
}

/// `ollamanet serve ARGS` on a free port with `config`; returns the process and its URL.
pub async fn spawn_serve(infra: &TestInfra, config: &AppConfig, args: &[&str]) -> (Child, String) {
    spawn_serve_env(infra, config, args, &[]).await
}

/// [`spawn_serve`] with these environment variables set.
pub async fn spawn_serve_env(
    infra: &TestInfra,
    config: &AppConfig,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Child, String) {
    let service = args.join(" ");
    let file = infra.data_dir().join(format!("serve-{}.toml", uuid_suffix()));
    std::fs::write(&file, ollamanet::config::to_toml(config, false)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ollamanet"))
        .args(["--config", file.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("AMQP_URL")
        .env("RUST_LOG", "warn")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ollamanet");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return addr.to_owned();
            }
        }
        panic!("ollamanet serve {service} exited before listening");
    })
    .await
    .expect("process started in time");
    (child, format!("http://{addr}"))
}

fn uuid_suffix() -> String {
    uuid::Uuid::now_v7().simple().to_string()[24..].to_owned()
}

/// Waits until the probes have seen `nodes` nodes healthy.
pub async fn wait_for_nodes(d: &Deployment, nodes: usize) {
    let admin = d.admin_token("fleetadmin").await;
    eventually("the nodes to be probed healthy", async || {
        let (_, list) = d.call(Method::GET, "/api/admin/engines", Some(&admin), None).await;
        list["items"].as_array().is_some_and(|l| l.iter().filter(|n| n["healthy"] == true).count() >= nodes)
    })
    .await;
}

/// Waits until `check` holds, checking every 100 ms for at most 30 s.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 30 s");
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: String,
    pub data: Value,
}

/// Reads server-sent events from a response as they arrive.
pub struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    pub fn new(res: reqwest::Response) -> Self {
        use futures::StreamExt;
        Self { body: res.bytes_stream().boxed(), buf: String::new() }
    }

    /// The next event (comments and keep-alives skipped), or None when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        use futures::StreamExt;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::from("message"), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(SseEvent { event, id, data: serde_json::from_str(&data).unwrap_or(Value::String(data)) });
            }
            match tokio::time::timeout(Duration::from_secs(60), self.body.next()).await.expect("an event in time") {
                Some(Ok(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Every remaining event.
    pub async fn rest(mut self) -> Vec<SseEvent> {
        let mut all = Vec::new();
        while let Some(e) = self.next().await {
            all.push(e);
        }
        all
    }
}

/// The text the `delta` events among `events` carry.
pub fn deltas(events: &[SseEvent]) -> String {
    events.iter().filter(|e| e.event == "delta").filter_map(|e| e.data["content"].as_str()).collect()
}
