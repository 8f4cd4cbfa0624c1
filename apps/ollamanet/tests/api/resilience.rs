//! Dependencies failing under a running platform. Each backend is reached through a fault proxy
//! (a test double standing for the network between the platform and the real server), so one
//! test can "stop" Redis, RabbitMQ or Postgres without disturbing tests running beside it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kit::bus::{EVENTS_EXCHANGE, Handler, HandlerError, Message, Subscription};
use kit::testing::{Stack, TestInfra};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{Deployment, Mode, base_config, eventually};

/// Forwards TCP to `target` while up; when down, drops every connection and refuses new ones.
pub(crate) struct FaultProxy {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FaultProxy {
    pub(crate) async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (u, c) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if !u.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(handle);
            }
        });
        Self { port, up, conns }
    }

    pub(crate) fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub(crate) fn up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub(crate) fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
        format!("{scheme}://{userinfo}127.0.0.1:{}/{path}", self.port)
    }
}

pub(crate) fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.contains(':') { host.to_owned() } else { format!("{host}:{default_port}") }
}

async fn ready_status(d: &Deployment) -> (StatusCode, Value) {
    let res = d.client.get(d.at("/ready")).bearer_auth(crate::helpers::OPS_TOKEN).send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

#[tokio::test]
async fn redis_down_degrades_the_cache_and_recovers() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let mut config = base_config(&infra);
    let redis = config.infra.redis_url.clone().unwrap();
    let proxy = FaultProxy::start(host_port(&redis, 6379)).await;
    config.infra.redis_url = Some(proxy.url_for(&redis));
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let token = d.user_token("ivan").await;

    proxy.down();
    // Sign-up, sign-in and authenticated calls keep working without the cache.
    let other = d.user_token("judy").await;
    assert_eq!(d.call(Method::GET, "/api/auth/me", Some(&token), None).await.0, StatusCode::OK);
    assert_eq!(d.call(Method::GET, "/api/auth/me", Some(&other), None).await.0, StatusCode::OK);
    let (status, ready) = ready_status(&d).await;
    assert_eq!(status, StatusCode::OK, "a cache outage does not take the service out of rotation");
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["cache"]["status"], "down");

    proxy.up();
    eventually("the cache reconnecting", async || ready_status(&d).await.1["status"] == "ready").await;
    assert_eq!(d.call(Method::GET, "/api/auth/me", Some(&token), None).await.0, StatusCode::OK);
}

struct Collect(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl Handler for Collect {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(msg.routing_key.clone());
        Ok(())
    }
}

#[tokio::test]
async fn rabbitmq_down_queues_events_in_the_outbox_and_catches_up() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let mut config = base_config(&infra);
    let amqp = config.infra.amqp_url.clone().unwrap();
    let proxy = FaultProxy::start(host_port(&amqp, 5672)).await;
    config.infra.amqp_url = Some(proxy.url_for(&amqp));
    // A consumer on the real broker, as another service would be.
    let observer = kit::config::Platform::new(infra.config.clone(), "observer").unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    observer.bus.wait_connected().await;
    let sub = Subscription::broadcast(EVENTS_EXCHANGE, "observer", &["user.#"]);
    observer.bus.subscribe(sub, Arc::new(Collect(seen.clone()))).await;
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    eventually("the platform connecting to RabbitMQ", async || {
        ready_status(&d).await.1["checks"]["bus"]["status"] == "up"
    })
    .await;

    proxy.down();
    eventually("the bus noticing the outage", async || ready_status(&d).await.1["checks"]["bus"]["status"] == "down")
        .await;
    d.register("kate").await;
    d.register("liam").await;
    let (status, ready) = ready_status(&d).await;
    assert_eq!((status, ready["status"].as_str()), (StatusCode::OK, Some("degraded")));
    assert!(seen.lock().unwrap().is_empty(), "nothing can be delivered while the broker is unreachable");

    proxy.up();
    eventually("both events delivered after the broker returns", async || {
        seen.lock().unwrap().iter().filter(|k| *k == "user.registered").count() >= 2
    })
    .await;
    observer.bus.close().await;
}

#[tokio::test]
async fn postgres_down_answers_503_and_recovers_without_restart() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let mut config = base_config(&infra);
    let db = config.infra.database_url.clone().unwrap();
    let proxy = FaultProxy::start(host_port(&db, 5432)).await;
    config.infra.database_url = Some(proxy.url_for(&db));
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let token = d.user_token("mia").await;

    proxy.down();
    let (status, body) = d
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(serde_json::json!({"login": "mia", "password": crate::helpers::PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "database_unavailable");
    let (status, ready) = ready_status(&d).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");

    proxy.up();
    eventually("the service answering again", async || {
        d.call(Method::GET, "/api/auth/me", Some(&token), None).await.0 == StatusCode::OK
    })
    .await;
    let (status, _) = ready_status(&d).await;
    assert_eq!(status, StatusCode::OK);
}
