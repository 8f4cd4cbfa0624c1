//! An engine announced by name may not aim the platform at its own network: a name that resolves
//! to a loopback or private address, or does not resolve, is refused when announced, and a name
//! that resolves to a public address when announced and to 127.0.0.1 later (DNS rebinding) is
//! refused when the platform connects. (That an allowed announcement joins the fleet is shown by
//! `inference::an_announced_node_is_used_within_a_second` and `engine::announced_engines_are_used_within_a_second`.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use kit::bus::DISCOVERY_EXCHANGE;
use kit::testing::{Stack, TestInfra};
use kit::upstream::Resolve;
use ollamanet_inference::discovery::{NODE_HEARTBEAT, NodeHeartbeat};
use ollamanet_inference::validate::Dns;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::bus_forgery::counter;
use crate::helpers::{Deployment, base_config, eventually, without_engine};

/// A DNS double standing for the resolver of the network the platform runs in: each name gives its
/// answers in turn (the last one from then on), and a name it does not know does not resolve.
#[derive(Default)]
struct FakeDns {
    answers: Mutex<HashMap<String, Vec<IpAddr>>>,
    asked: Mutex<HashMap<String, usize>>,
}

impl FakeDns {
    fn answers(&self, name: &str, answers: &[&str]) {
        let ips = answers.iter().map(|a| a.parse().unwrap()).collect();
        self.answers.lock().unwrap().insert(name.to_owned(), ips);
    }

    fn asked(&self, name: &str) -> usize {
        self.asked.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Resolve for FakeDns {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        *self.asked.lock().unwrap().entry(host.to_owned()).or_default() += 1;
        let mut answers = self.answers.lock().unwrap();
        let list = answers.get_mut(host).ok_or_else(|| std::io::Error::other("NXDOMAIN"))?;
        Ok(vec![if list.len() > 1 { list.remove(0) } else { list[0] }])
    }
}

/// A test double for something on the platform's own loopback that an attacker wants reached:
/// counts every request.
async fn witness() -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { axum::Json(json!({"models": []})) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

/// Announces `url` the way an engine does (signed with the deployment's secret).
async fn announce(infra: &kit::config::InfraConfig, url: &str) {
    let engine = kit::config::Platform::new(infra.clone(), "announcer").unwrap();
    engine.bus.wait_connected().await;
    let beat = NodeHeartbeat {
        url: url.to_owned(),
        models: vec!["omega:latest".into()],
        load: 0,
        capacity: None,
        leaving: false,
    };
    let id = uuid::Uuid::now_v7().to_string();
    engine
        .bus
        .publish(DISCOVERY_EXCHANGE, NODE_HEARTBEAT, &id, serde_json::to_vec(&beat).unwrap().into())
        .await
        .unwrap();
    engine.bus.close().await;
}

#[tokio::test]
async fn announced_names_are_checked_when_announced_and_at_every_connect() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let (port, hits) = witness().await;
    let dns = Arc::new(FakeDns::default());
    dns.answers("loopback.engines.example", &["127.0.0.1"]);
    dns.answers("lan.engines.example", &["10.1.2.3"]);
    dns.answers("rebind.engines.example", &["93.184.216.34", "127.0.0.1"]);
    let mut config = base_config(&infra);
    config.inference.announce_policy.allowed_hosts = vec!["*.engines.example".parse().unwrap()];
    config.inference.announce_policy.resolver = Dns(dns.clone());
    let bus = config.infra.clone();
    let d = Deployment::in_process_with(infra, config, &without_engine()).await;
    let admin = d.admin_token("root").await;
    let engines = async || -> Vec<Value> {
        let (_, list) = d.call(Method::GET, "/api/admin/engines", Some(&admin), None).await;
        list["items"].as_array().unwrap().clone()
    };

    for name in ["loopback", "lan", "missing"] {
        announce(&bus, &format!("http://{name}.engines.example:{port}")).await;
    }
    eventually("the three announcements to be refused", async || {
        counter(&kit::telemetry::render_metrics(), "bus_dead_letters_total", "inference-nodes") >= 3
    })
    .await;
    assert_eq!(dns.asked("missing.engines.example"), 1, "the name was looked up, and did not resolve");
    assert_eq!(engines().await, Vec::<Value>::new(), "no refused name joins the fleet");

    // Public when announced: accepted. Loopback when the platform connects: refused there.
    announce(&bus, &format!("http://rebind.engines.example:{port}")).await;
    eventually("the rebinding node to be probed", async || {
        engines()
            .await
            .iter()
            .any(|n| n["url"].as_str().unwrap_or_default().contains("rebind") && !n["last_error"].is_null())
    })
    .await;
    assert!(dns.asked("rebind.engines.example") >= 2, "resolved again to connect");
    let node = engines().await.into_iter().next().unwrap();
    assert_eq!(node["healthy"], false, "{node}");
    let chat = json!({"model": "omega", "messages": [{"role": "user", "content": "hi"}], "stream": false});
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&admin), Some(chat)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the loopback service");
}
