//! Message authentication on a shared broker. Anyone who can publish to RabbitMQ could otherwise
//! speak for the platform: announce a fake `auth` instance that the gateway then sends sign-ins
//! to, or say that a real instance or engine has left. With the deployment's `bus_secret`, every
//! message carries an HMAC-SHA256 over its exchange, routing key, id, timestamp and body, and a
//! consumer drops (and counts, `bus_rejected_total{reason}`) every message that does not verify.
//!
//! Discovery messages describe the present, so a consumer of the discovery exchange also drops
//! those stamped more than [`WINDOW`] away from its clock, and those whose id it has already
//! handled within the window: a captured heartbeat cannot be played back. Domain events are
//! checked for their signature only: they may wait in a durable queue for as long as a consumer
//! is down, and their handlers are idempotent by id.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The AMQP header carrying the signature (lower-case hex).
pub const SIGNATURE_HEADER: &str = "x-ollamanet-signature";
/// How far a discovery message's timestamp may be from the consumer's clock, either way; hosts
/// sharing a broker keep their clocks in sync (NTP) to well within it.
pub(super) const WINDOW: Duration = Duration::from_secs(60);
/// A shorter secret is refused: it is a key, not a password.
const MIN_SECRET_LEN: usize = 32;

/// The secret every process of a deployment shares to sign and check its bus messages.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct BusSecret(String);

impl BusSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// Says what is wrong with a secret that is too weak to sign with.
    pub fn check(&self) -> Result<(), String> {
        if self.0.trim().len() < MIN_SECRET_LEN {
            return Err(format!(
                "bus_secret must be at least {MIN_SECRET_LEN} characters (e.g. the output of `openssl rand -hex 32`)"
            ));
        }
        Ok(())
    }

    fn mac(&self, exchange: &str, routing_key: &str, id: &str, timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_bytes()).expect("HMAC takes a key of any length");
        // Length-prefixed, so that no two different messages sign the same bytes.
        for field in [b"ollamanet-bus-1".as_slice(), exchange.as_bytes(), routing_key.as_bytes(), id.as_bytes(), body] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac.update(&timestamp.to_be_bytes());
        mac
    }

    /// The signature of a message published to `exchange` (its full, namespaced name).
    pub fn sign(&self, exchange: &str, routing_key: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
        crate::authn::hex(&self.mac(exchange, routing_key, id, timestamp, body).finalize().into_bytes())
    }

    fn verify(
        &self,
        exchange: &str,
        routing_key: &str,
        id: &str,
        timestamp: u64,
        body: &[u8],
        signature: &str,
    ) -> bool {
        let Some(bytes) = unhex(signature) else { return false };
        self.mac(exchange, routing_key, id, timestamp, body).verify_slice(&bytes).is_ok()
    }
}

impl std::fmt::Debug for BusSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusSecret(***)")
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Why a message was dropped; the `reason` label of `bus_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rejection {
    /// No signature, timestamp or id.
    Unsigned,
    /// A signature that does not match the message.
    BadSignature,
    /// A discovery message stamped outside the window.
    Stale,
    /// A discovery message whose id was already handled within the window.
    Replayed,
}

impl Rejection {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Rejection::Unsigned => "unsigned",
            Rejection::BadSignature => "bad_signature",
            Rejection::Stale => "stale",
            Rejection::Replayed => "replayed",
        }
    }
}

/// A delivery as the guard sees it.
pub(super) struct Delivered<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub id: &'a str,
    pub timestamp: Option<u64>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// Checks the deliveries of one subscription. Without a secret (a library user that never set
/// one; the platform refuses to start so on a broker) it lets everything through.
pub(super) struct Guard {
    secret: Option<BusSecret>,
    /// For discovery subscriptions: ids handled, until when (unix seconds) they are remembered.
    handled: Option<Mutex<HashMap<String, u64>>>,
}

impl Guard {
    pub fn new(secret: Option<BusSecret>, fresh_only: bool) -> Self {
        Self { secret, handled: fresh_only.then(Mutex::default) }
    }

    pub fn check(&self, m: &Delivered<'_>, now: u64) -> Result<(), Rejection> {
        let Some(secret) = &self.secret else { return Ok(()) };
        let (Some(timestamp), Some(signature)) = (m.timestamp, m.signature) else { return Err(Rejection::Unsigned) };
        if m.id.is_empty() {
            return Err(Rejection::Unsigned);
        }
        if !secret.verify(m.exchange, m.routing_key, m.id, timestamp, m.body, signature) {
            return Err(Rejection::BadSignature);
        }
        if let Some(handled) = &self.handled {
            if now.abs_diff(timestamp) > WINDOW.as_secs() {
                return Err(Rejection::Stale);
            }
            if handled.lock().unwrap_or_else(|e| e.into_inner()).contains_key(m.id) {
                return Err(Rejection::Replayed);
            }
        }
        Ok(())
    }

    /// Remembers a handled message's id for as long as its timestamp is within the window (after
    /// that it is refused as stale anyway). Not called for a message to be redelivered.
    pub fn handled(&self, id: &str, timestamp: Option<u64>, now: u64) {
        let (Some(handled), Some(timestamp)) = (&self.handled, timestamp) else { return };
        let mut handled = handled.lock().unwrap_or_else(|e| e.into_inner());
        handled.retain(|_, until| *until >= now);
        handled.insert(id.to_owned(), timestamp + WINDOW.as_secs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000;

    fn secret() -> BusSecret {
        BusSecret::new("0123456789abcdef0123456789abcdef")
    }

    fn delivered<'a>(signature: Option<&'a str>, timestamp: u64, body: &'a [u8]) -> Delivered<'a> {
        Delivered {
            exchange: "ns.service-discovery",
            routing_key: "service.heartbeat",
            id: "m-1",
            timestamp: Some(timestamp),
            signature,
            body,
        }
    }

    #[test]
    fn a_signature_covers_every_part_of_the_message() {
        let s = secret();
        let sig = s.sign("ns.service-discovery", "service.heartbeat", "m-1", NOW, b"{}");
        let guard = Guard::new(Some(s.clone()), false);
        assert_eq!(guard.check(&delivered(Some(&sig), NOW, b"{}"), NOW), Ok(()));
        assert_eq!(guard.check(&delivered(Some(&sig), NOW, b"{ }"), NOW), Err(Rejection::BadSignature));
        assert_eq!(guard.check(&delivered(Some(&sig), NOW + 1, b"{}"), NOW), Err(Rejection::BadSignature));
        let other_key = Delivered { routing_key: "service.discover", ..delivered(Some(&sig), NOW, b"{}") };
        assert_eq!(guard.check(&other_key, NOW), Err(Rejection::BadSignature));
        let other_namespace = Delivered { exchange: "other.service-discovery", ..delivered(Some(&sig), NOW, b"{}") };
        assert_eq!(guard.check(&other_namespace, NOW), Err(Rejection::BadSignature));
        let other_id = Delivered { id: "m-2", ..delivered(Some(&sig), NOW, b"{}") };
        assert_eq!(guard.check(&other_id, NOW), Err(Rejection::BadSignature));
        let forged = BusSecret::new("another secret of at least 32 chars").sign(
            "ns.service-discovery",
            "service.heartbeat",
            "m-1",
            NOW,
            b"{}",
        );
        assert_eq!(guard.check(&delivered(Some(&forged), NOW, b"{}"), NOW), Err(Rejection::BadSignature));
        assert_eq!(guard.check(&delivered(None, NOW, b"{}"), NOW), Err(Rejection::Unsigned));
        assert_eq!(guard.check(&delivered(Some("zz"), NOW, b"{}"), NOW), Err(Rejection::BadSignature));
    }

    #[test]
    fn discovery_messages_are_fresh_and_once_only() {
        let s = secret();
        let guard = Guard::new(Some(s.clone()), true);
        let old = NOW - WINDOW.as_secs() - 1;
        let sig = s.sign("ns.service-discovery", "service.heartbeat", "m-1", old, b"{}");
        assert_eq!(guard.check(&delivered(Some(&sig), old, b"{}"), NOW), Err(Rejection::Stale));

        let sig = s.sign("ns.service-discovery", "service.heartbeat", "m-1", NOW, b"{}");
        assert_eq!(guard.check(&delivered(Some(&sig), NOW, b"{}"), NOW), Ok(()));
        guard.handled("m-1", Some(NOW), NOW);
        assert_eq!(guard.check(&delivered(Some(&sig), NOW, b"{}"), NOW + 5), Err(Rejection::Replayed));
        // Once out of the window, the id is forgotten and the message is stale instead.
        let later = NOW + WINDOW.as_secs() + 1;
        guard.handled("m-2", Some(later), later);
        assert_eq!(guard.check(&delivered(Some(&sig), NOW, b"{}"), later), Err(Rejection::Stale));
    }

    #[test]
    fn events_are_checked_for_their_signature_only() {
        let s = secret();
        let guard = Guard::new(Some(s.clone()), false);
        let old = NOW - 3600;
        let sig = s.sign("ns.service-discovery", "service.heartbeat", "m-1", old, b"{}");
        assert_eq!(guard.check(&delivered(Some(&sig), old, b"{}"), NOW), Ok(()));
        guard.handled("m-1", Some(old), NOW);
        assert_eq!(guard.check(&delivered(Some(&sig), old, b"{}"), NOW), Ok(()));
    }

    #[test]
    fn without_a_secret_everything_passes() {
        assert_eq!(Guard::new(None, true).check(&delivered(None, 0, b"x"), NOW), Ok(()));
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        assert!(BusSecret::new("short").check().is_err());
        assert!(secret().check().is_ok());
        assert_eq!(format!("{:?}", secret()), "BusSecret(***)");
    }
}
