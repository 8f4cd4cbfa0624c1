//! Someone who can publish to the broker but does not hold the deployment's `bus_secret`: forged,
//! tampered and played-back discovery messages are dropped and counted, and change nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use futures::StreamExt;
use kit::bus::{BusSecret, DISCOVERY_EXCHANGE, SIGNATURE_HEADER};
use kit::registry::{HEARTBEAT, Heartbeat};
use kit::testing::{Stack, TestInfra};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use ollamanet_inference::discovery::{NODE_HEARTBEAT, NodeHeartbeat, URL_CHANGED, UrlChanged};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::fake_ollama::{FakeOllama, config_with_nodes};
use crate::helpers::{
    Deployment, OPS_TOKEN, PASSWORD, base_config, client, eventually, spawn_process, wait_for_nodes, without_engine,
};

/// A test double for a server an attacker runs: answers every request and counts them.
struct Impostor {
    url: String,
    hits: Arc<AtomicUsize>,
}

impl Impostor {
    async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = Router::new().fallback(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { axum::Json(json!({"access_token": "from the impostor", "keys": []})) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// How a forged message is signed.
enum Signed<'a> {
    Not,
    /// With this secret, stamped `age` ago.
    With(&'a BusSecret, Duration),
}

/// A connection to the test deployment's broker, as anyone with publish rights has one: it
/// publishes straight to the deployment's (namespaced) discovery exchange.
struct Broker {
    _conn: Connection,
    channel: Channel,
    exchange: String,
}

impl Broker {
    async fn connect(infra: &TestInfra) -> Self {
        let conn = Connection::connect(&kit::testing::amqp_url(), ConnectionProperties::default()).await.unwrap();
        let channel = conn.create_channel().await.unwrap();
        let exchange = format!("{}{DISCOVERY_EXCHANGE}", infra.config.bus_namespace);
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel
            .exchange_declare(exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .unwrap();
        Self { _conn: conn, channel, exchange }
    }

    async fn publish(&self, key: &str, body: &impl Serialize, signed: Signed<'_>) {
        let body = serde_json::to_vec(body).unwrap();
        let id = uuid::Uuid::now_v7().to_string();
        let now = kit::Timestamp::now().unix_seconds() as u64;
        let mut props = BasicProperties::default().with_message_id(id.as_str().into()).with_timestamp(now);
        if let Signed::With(secret, age) = signed {
            let timestamp = now - age.as_secs();
            let signature = secret.sign(&self.exchange, key, &id, timestamp, &body);
            let mut headers = FieldTable::default();
            headers.insert(SIGNATURE_HEADER.into(), AMQPValue::LongString(signature.into()));
            props = props.with_timestamp(timestamp).with_headers(headers);
        }
        self.send(key, &body, props).await;
    }

    /// Publishes a captured message again, exactly as it was.
    async fn replay(&self, captured: &lapin::message::Delivery) {
        self.send(captured.routing_key.as_str(), &captured.data, captured.properties.clone()).await;
    }

    async fn send(&self, key: &str, body: &[u8], props: BasicProperties) {
        self.channel
            .basic_publish(self.exchange.as_str().into(), key.into(), BasicPublishOptions::default(), body, props)
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Starts receiving a copy of every message published under `key` from now on.
    async fn listen(&self, key: &str) -> Consumer {
        let queue = format!("{}.eavesdropper", self.exchange);
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        self.channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await.unwrap();
        self.channel
            .queue_bind(
                queue.as_str().into(),
                self.exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.channel
            .basic_consume(
                queue.as_str().into(),
                "eavesdropper".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap()
    }
}

/// The next message `consumer` gets that satisfies `wanted`.
async fn next_where(consumer: &mut Consumer, wanted: impl Fn(&Heartbeat) -> bool) -> lapin::message::Delivery {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let delivery = consumer.next().await.expect("the eavesdropper's queue is open").unwrap();
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            if serde_json::from_slice(&delivery.data).is_ok_and(|hb: Heartbeat| wanted(&hb)) {
                return delivery;
            }
        }
    })
    .await
    .expect("a heartbeat within 30 s")
}

/// The sum of a counter's samples whose labels contain `label` (Prometheus text format).
pub fn counter(metrics: &str, name: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Split deployment on RabbitMQ, where the gateway finds the auth service through heartbeats. A
/// fake `auth` instance (which would receive every password and serve its own signing keys), a
/// forged goodbye of the real one, a captured heartbeat played back, and genuine-looking messages
/// stamped two minutes ago are all dropped by the gateway: sign-in keeps working, the impostor is
/// never called.
#[tokio::test]
async fn forged_and_played_back_heartbeats_change_nothing() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let config = base_config(&infra);
    let secret = config.infra.bus_secret.clone().unwrap();
    let broker = Broker::connect(&infra).await;
    let (_auth, _) = spawn_process(&infra, &config, "auth").await;
    let (_gateway, url) = spawn_process(&infra, &config, "gateway").await;
    let http = client();
    let metrics =
        async || http.get(format!("{url}/metrics")).bearer_auth(OPS_TOKEN).send().await.unwrap().text().await.unwrap();

    let mut registered = false;
    for _ in 0..100 {
        let res = http
            .post(format!("{url}/api/auth/register"))
            .json(&json!({"username": "nora", "email": "nora@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::CREATED {
            registered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(registered, "the gateway discovers the auth instance");
    let sign_in = async || {
        let body = json!({"login": "nora", "password": PASSWORD});
        let res = http.post(format!("{url}/api/auth/login")).json(&body).send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    };

    // A genuine heartbeat, sent while the gateway listens, as anyone on the broker can see it.
    let mut heard = broker.listen(HEARTBEAT).await;
    let genuine = next_where(&mut heard, |hb| hb.name == "auth" && !hb.leaving).await;
    let real: Heartbeat = serde_json::from_slice(&genuine.data).unwrap();

    let impostor = Impostor::start().await;
    let fake = Heartbeat {
        name: "auth".into(),
        instance_id: "impostor".into(),
        base_url: impostor.url.clone(),
        version: real.version.clone(),
        capabilities: Vec::new(),
        leaving: false,
    };
    let goodbye = Heartbeat { leaving: true, ..real.clone() };
    let not_ours = BusSecret::new("a secret that is not the deployment's own");
    let two_minutes = Duration::from_secs(120);
    for hb in [&fake, &goodbye] {
        broker.publish(HEARTBEAT, hb, Signed::Not).await;
        broker.publish(HEARTBEAT, hb, Signed::With(&not_ours, Duration::ZERO)).await;
        // What a captured genuine message looks like when played back after the window.
        broker.publish(HEARTBEAT, hb, Signed::With(&secret, two_minutes)).await;
    }
    broker.replay(&genuine).await;

    // The gateway's registry drops each one (counted in its process).
    eventually("the gateway to drop every forged heartbeat", async || {
        let m = metrics().await;
        counter(&m, "bus_rejected_total", r#"reason="unsigned""#) >= 2
            && counter(&m, "bus_rejected_total", r#"reason="bad_signature""#) >= 2
            && counter(&m, "bus_rejected_total", r#"reason="stale""#) >= 2
            && counter(&m, "bus_rejected_total", r#"reason="replayed""#) >= 1
    })
    .await;
    for _ in 0..10 {
        let (status, body) = sign_in().await;
        assert_eq!(status, StatusCode::OK, "sign-in goes to the real auth instance: {body}");
    }
    assert_eq!(impostor.hits(), 0, "the gateway never calls the impostor");
}

/// All-in-one on RabbitMQ with a configured engine node: a `leaving` message for it, forged or
/// even signed with the deployment's secret, does not take it out of the fleet.
#[tokio::test]
async fn a_leaving_message_never_removes_a_configured_node() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let node = FakeOllama::start("node-k", &["kappa"]).await;
    let config = config_with_nodes(&infra, &[&node]);
    let secret = config.infra.bus_secret.clone().unwrap();
    let d = Deployment::in_process_with(infra, config, &without_engine()).await;
    wait_for_nodes(&d, 1).await;
    let token = d.user_token("kim").await;
    let broker = Broker::connect(d.infra()).await;

    let goodbye = NodeHeartbeat { url: node.url.clone(), models: Vec::new(), load: 0, capacity: None, leaving: true };
    broker.publish(NODE_HEARTBEAT, &goodbye, Signed::Not).await;
    broker.publish(NODE_HEARTBEAT, &goodbye, Signed::With(&secret, Duration::ZERO)).await;
    // Then an announcement every instance refuses (nothing is allowed by default): once it is
    // counted, the two goodbyes before it on the same queue have been handled.
    let refused =
        UrlChanged { new_url: "http://203.0.113.9:11434".into(), timestamp: None, service_id: None, version: None };
    broker.publish(URL_CHANGED, &refused, Signed::With(&secret, Duration::ZERO)).await;
    eventually("the inference service to handle the goodbyes", async || {
        let m = kit::telemetry::render_metrics();
        counter(&m, "bus_rejected_total", r#"reason="unsigned""#) >= 1
            && counter(&m, "bus_dead_letters_total", "inference-nodes") >= 1
    })
    .await;

    let admin = d.admin_token("root").await;
    let (_, engines) = d.call(Method::GET, "/api/admin/engines", Some(&admin), None).await;
    let items = engines["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{engines}");
    assert_eq!(items[0]["source"], "configured");
    let chat = json!({"model": "kappa", "messages": [{"role": "user", "content": "hi"}], "stream": false});
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&token), Some(chat)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["content"], "Hello from node-k");
}
