//! RabbitMQ: durable topic exchanges, publisher confirms, manual acks, a dead-letter queue, and a
//! supervisor that reconnects with backoff forever and re-creates every consumer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::sign::{BusSecret, Delivered, Guard, SIGNATURE_HEADER};
use super::{BusError, BusStatus, DISCOVERY_EXCHANGE, Handler, HandlerError, Instance, Message, Subscription};

const DEAD_LETTER_EXCHANGE: &str = "ollamanet.dlx";
const DEAD_LETTER_QUEUE: &str = "ollamanet.dead-letter";
/// Per-instance queues outlive a short disconnect (messages wait for the instance) but are
/// removed by the broker once their instance has been gone this long.
const INSTANCE_QUEUE_EXPIRY_MS: i64 = 10 * 60 * 1000;
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct RabbitBus {
    shared: Arc<Shared>,
}

struct Shared {
    url: String,
    instance: Instance,
    /// Signs what this process publishes and checks what it consumes.
    secret: Option<BusSecret>,
    /// The live connection and its publishing channel, when connected.
    live: Mutex<Option<Live>>,
    connected: watch::Sender<bool>,
    subs: tokio::sync::Mutex<Vec<Consumer>>,
    shutdown: CancellationToken,
    closed: AtomicBool,
}

/// A subscription, its handler, and the guard that checks its deliveries (kept across
/// reconnections: the ids a discovery subscription has handled must outlive a connection).
#[derive(Clone)]
struct Consumer {
    sub: Subscription,
    handler: Arc<dyn Handler>,
    guard: Arc<Guard>,
}

#[derive(Clone)]
struct Live {
    conn: Arc<Connection>,
    publisher: Channel,
    declared: Arc<Mutex<HashSet<String>>>,
    /// Fired when the connection fails, to wake the supervisor.
    failed: Arc<Notify>,
}

impl RabbitBus {
    pub(super) fn start(url: String, instance: Instance, secret: Option<BusSecret>) -> Self {
        let (connected, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            url,
            instance,
            secret,
            live: Mutex::new(None),
            connected,
            subs: tokio::sync::Mutex::new(Vec::new()),
            shutdown: CancellationToken::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(supervise(shared.clone()));
        Self { shared }
    }

    pub(super) fn status(&self) -> BusStatus {
        if *self.shared.connected.borrow() { BusStatus::Connected } else { BusStatus::Disconnected }
    }

    pub(super) async fn wait_connected(&self) {
        let mut rx = self.shared.connected.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    pub(super) async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.shutdown.cancel();
        // A closed bus never consumes again. Its handlers hold services that hold the bus: kept,
        // they would keep each other (and the services' database pools) alive.
        self.shared.subs.lock().await.clear();
        let live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(live) = live {
            let _ = live.conn.close(200, "shutdown".into()).await;
        }
    }

    pub(super) async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        id: &str,
        body: Bytes,
    ) -> Result<(), BusError> {
        let live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(live) = live else { return Err(BusError::Disconnected) };
        let exchange = self.shared.name(exchange);
        let result = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            declare_exchange(&live, &exchange).await?;
            let timestamp = crate::timestamp::Timestamp::now().unix_seconds() as u64;
            let mut props = BasicProperties::default()
                .with_message_id(id.into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_timestamp(timestamp);
            if let Some(secret) = &self.shared.secret {
                let signature = secret.sign(&exchange, routing_key, id, timestamp, &body);
                let mut headers = FieldTable::default();
                headers.insert(SIGNATURE_HEADER.into(), AMQPValue::LongString(signature.into()));
                props = props.with_headers(headers);
            }
            let confirm = live
                .publisher
                .basic_publish(
                    exchange.as_str().into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await?
                .await?;
            if confirm.is_ack() { Ok(()) } else { Err(BusError::NotConfirmed) }
        })
        .await
        .unwrap_or(Err(BusError::Timeout));
        if let Err(e) = &result
            && !matches!(e, BusError::NotConfirmed)
        {
            live.failed.notify_one();
        }
        result
    }

    /// Registers the subscription; when connected, returns once its queue is bound. The
    /// supervisor holds the same lock while it (re)starts consumers, so none is missed or doubled.
    pub(super) async fn subscribe(&self, sub: Subscription, handler: Arc<dyn Handler>) {
        let mut subs = self.shared.subs.lock().await;
        // Discovery messages describe the present: only fresh ones count, each once.
        let guard = Arc::new(Guard::new(self.shared.secret.clone(), sub.exchange == DISCOVERY_EXCHANGE));
        let consumer = Consumer { sub, handler, guard };
        subs.push(consumer.clone());
        let live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(live) = live
            && let Err(e) = start_consumer(&self.shared, &live, consumer).await
        {
            tracing::warn!(error = %e, "starting consumer failed; reconnecting");
            live.failed.notify_one();
        }
    }
}

impl Shared {
    fn name(&self, base: &str) -> String {
        format!("{}{}", self.instance.namespace, base)
    }

    fn set_live(&self, live: Option<Live>) {
        let up = live.is_some();
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = live;
        self.connected.send_replace(up);
    }
}

async fn supervise(shared: Arc<Shared>) {
    let mut delay = Duration::from_millis(250);
    loop {
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, connect(&shared)).await.unwrap_or_else(|_| {
            Err(lapin::Error::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")))
        });
        match attempt {
            Ok(live) => {
                delay = Duration::from_millis(250);
                if let Err(e) = go_live(&shared, &live).await {
                    tracing::warn!(error = %e, "starting consumers failed; reconnecting");
                    let _ = live.conn.close(320, "reconnecting".into()).await;
                    tokio::time::sleep(delay).await;
                    continue;
                }
                tracing::info!(service = %shared.instance.service, "connected to RabbitMQ");
                let failed = live.failed.clone();
                let mut events = live.conn.events_listener();
                tokio::select! {
                    _ = failed.notified() => {}
                    _ = async { while let Some(ev) = events.next().await { if let lapin::Event::Error(e) = ev { tracing::warn!(error = %e, "RabbitMQ connection error"); break; } } } => {}
                    _ = shared.shutdown.cancelled() => { shared.set_live(None); return; }
                }
                shared.set_live(None);
                let _ = live.conn.close(320, "reconnecting".into()).await;
                tracing::warn!("disconnected from RabbitMQ; reconnecting");
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "RabbitMQ not reachable");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shared.shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn connect(shared: &Arc<Shared>) -> Result<Live, lapin::Error> {
    let props = ConnectionProperties::default()
        .with_connection_name(format!("{}.{}", shared.instance.service, shared.instance.id).into());
    let conn = Arc::new(Connection::connect(&shared.url, props).await?);
    let publisher = conn.create_channel().await?;
    publisher.confirm_select(ConfirmSelectOptions::default()).await?;

    // The dead-letter exchange and its queue, where poison messages of every queue end up.
    let dlx = shared.name(DEAD_LETTER_EXCHANGE);
    publisher
        .exchange_declare(dlx.as_str().into(), ExchangeKind::Fanout, durable_exchange(), FieldTable::default())
        .await?;
    let dlq = shared.name(DEAD_LETTER_QUEUE);
    publisher
        .queue_declare(
            dlq.as_str().into(),
            QueueDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    publisher
        .queue_bind(
            dlq.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    Ok(Live { conn, publisher, declared: Arc::new(Mutex::new(HashSet::new())), failed: Arc::new(Notify::new()) })
}

/// Starts every registered consumer on the new connection, then publishes it as live, all under
/// the subscriptions lock so that a concurrent `subscribe` is neither missed nor started twice.
async fn go_live(shared: &Arc<Shared>, live: &Live) -> Result<(), lapin::Error> {
    let subs = shared.subs.lock().await;
    for consumer in subs.iter() {
        start_consumer(shared, live, consumer.clone()).await?;
    }
    shared.set_live(Some(live.clone()));
    Ok(())
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { durable: true, ..Default::default() }
}

async fn declare_exchange(live: &Live, exchange: &str) -> Result<(), lapin::Error> {
    if live.declared.lock().unwrap_or_else(|e| e.into_inner()).contains(exchange) {
        return Ok(());
    }
    live.publisher
        .exchange_declare(exchange.into(), ExchangeKind::Topic, durable_exchange(), FieldTable::default())
        .await?;
    live.declared.lock().unwrap_or_else(|e| e.into_inner()).insert(exchange.to_owned());
    Ok(())
}

async fn start_consumer(shared: &Arc<Shared>, live: &Live, consumer: Consumer) -> Result<(), lapin::Error> {
    let Consumer { sub, handler, guard } = consumer;
    let channel = live.conn.create_channel().await?;
    channel.basic_qos(32, BasicQosOptions::default()).await?;
    let exchange = shared.name(&sub.exchange);
    declare_exchange(live, &exchange).await?;

    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(shared.name(DEAD_LETTER_EXCHANGE).into()));
    let queue = if sub.shared {
        shared.name(&format!("{}.{}", shared.instance.service, sub.name))
    } else {
        args.insert("x-expires".into(), AMQPValue::LongLongInt(INSTANCE_QUEUE_EXPIRY_MS));
        shared.name(&format!("{}.{}.{}", shared.instance.service, sub.name, shared.instance.id))
    };
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args)
        .await?;
    for binding in &sub.bindings {
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                binding.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let tag: ShortString = format!("{}.{}", shared.instance.service, shared.instance.id).into();
    let mut consumer = channel
        .basic_consume(queue.as_str().into(), tag, BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let failed = live.failed.clone();
    tokio::spawn(async move {
        // Keep the channel alive as long as its consumer.
        let _channel = channel;
        while let Some(delivery) = consumer.next().await {
            let delivery = match delivery {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(queue = %queue, error = %e, "consumer stopped");
                    failed.notify_one();
                    return;
                }
            };
            let msg = Message {
                id: delivery.properties.message_id().as_ref().map(|s| s.to_string()).unwrap_or_default(),
                routing_key: delivery.routing_key.to_string(),
                body: Bytes::from(delivery.data.clone()),
                redelivered: delivery.redelivered,
            };
            let timestamp = *delivery.properties.timestamp();
            let now = crate::timestamp::Timestamp::now().unix_seconds() as u64;
            let signature =
                delivery.properties.headers().as_ref().and_then(|h| match h.inner().get(SIGNATURE_HEADER) {
                    Some(AMQPValue::LongString(s)) => std::str::from_utf8(s.as_bytes()).ok(),
                    _ => None,
                });
            let checked = guard.check(
                &Delivered {
                    exchange: delivery.exchange.as_str(),
                    routing_key: &msg.routing_key,
                    id: &msg.id,
                    timestamp,
                    signature,
                    body: &msg.body,
                },
                now,
            );
            if let Err(rejection) = checked {
                // Dropped, not dead-lettered: a forger must not be able to fill a queue.
                metrics::counter!("bus_rejected_total", "reason" => rejection.reason()).increment(1);
                tracing::warn!(queue = %queue, id = %msg.id, key = %msg.routing_key, reason = rejection.reason(), "bus message rejected");
                if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                    tracing::warn!(queue = %queue, error = %e, "ack failed");
                }
                continue;
            }
            let outcome = handler.handle(&msg).await;
            if !matches!(&outcome, Err(HandlerError::Transient(_)) if !msg.redelivered) {
                guard.handled(&msg.id, timestamp, now);
            }
            let acked = match outcome {
                Ok(()) => delivery.ack(BasicAckOptions::default()).await,
                // A message that already failed once goes to the dead-letter queue rather than
                // looping forever.
                Err(HandlerError::Transient(e)) if !msg.redelivered => {
                    tracing::warn!(queue = %queue, id = %msg.id, error = %e, "handler failed; requeueing once");
                    delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await
                }
                Err(e) => {
                    metrics::counter!("bus_dead_letters_total", "subscription" => queue.clone()).increment(1);
                    tracing::error!(queue = %queue, id = %msg.id, key = %msg.routing_key, error = %e, "message dead-lettered");
                    delivery.reject(BasicRejectOptions { requeue: false }).await
                }
            };
            if let Err(e) = acked {
                tracing::warn!(queue = %queue, error = %e, "ack failed");
            }
        }
    });
    Ok(())
}
