//! The in-process bus: each subscription has its own ordered channel and task, so a slow handler
//! never blocks the publisher.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Handler, HandlerError, Message, Subscription, topic_matches};

/// How often a transiently failing message is retried before it is dropped as dead.
const MAX_ATTEMPTS: u32 = 5;

#[derive(Default)]
pub(super) struct LocalBus {
    subs: RwLock<Vec<LocalSub>>,
}

struct LocalSub {
    sub: Subscription,
    tx: mpsc::UnboundedSender<Message>,
}

impl LocalBus {
    pub(super) fn publish(&self, exchange: &str, routing_key: &str, id: &str, body: Bytes) {
        let subs = self.subs.read().unwrap_or_else(|e| e.into_inner());
        for s in subs.iter() {
            if s.sub.exchange == exchange && s.sub.bindings.iter().any(|b| topic_matches(b, routing_key)) {
                let msg = Message {
                    id: id.to_owned(),
                    routing_key: routing_key.to_owned(),
                    body: body.clone(),
                    redelivered: false,
                };
                // A closed channel means the consumer task ended with the runtime; nothing to do.
                let _ = s.tx.send(msg);
            }
        }
    }

    pub(super) fn subscribe(&self, sub: Subscription, handler: Arc<dyn Handler>) {
        let mut subs = self.subs.write().unwrap_or_else(|e| e.into_inner());
        // In one process a shared (work-queue) subscription has exactly one consumer.
        if sub.shared && subs.iter().any(|s| s.sub.shared && s.sub.name == sub.name) {
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let name = sub.name.clone();
        tokio::spawn(async move {
            while let Some(mut msg) = rx.recv().await {
                let mut attempt = 1;
                loop {
                    match handler.handle(&msg).await {
                        Ok(()) => break,
                        Err(HandlerError::Transient(e)) if attempt < MAX_ATTEMPTS => {
                            tracing::warn!(subscription = %name, id = %msg.id, error = %e, attempt, "handler failed; retrying");
                            tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt))).await;
                            msg.redelivered = true;
                            attempt += 1;
                        }
                        Err(e) => {
                            metrics::counter!("bus_dead_letters_total", "subscription" => name.clone()).increment(1);
                            tracing::error!(subscription = %name, id = %msg.id, key = %msg.routing_key, error = %e, "message dead-lettered");
                            break;
                        }
                    }
                }
            }
        });
        subs.push(LocalSub { sub, tx });
    }
}
