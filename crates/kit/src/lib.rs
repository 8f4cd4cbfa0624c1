//! Shared plumbing for OllamaNet services.

pub mod api;
pub mod audit;
pub mod authn;
pub mod bus;
pub mod cache;
pub mod config;
pub mod db;
pub mod http;
pub mod net;
pub mod outbox;
pub mod problem;
pub mod ratelimit;
pub mod registry;
pub mod request_id;
pub mod resilience;
pub mod server;
pub mod service;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timestamp;
pub mod tls;
pub mod tokens;
pub mod upstream;

pub use problem::{FieldError, Problem};
pub use timestamp::Timestamp;

/// An error with its causes, `outer: inner: root` — HTTP clients put the useful part (refused
/// connection, unknown certificate issuer) in the sources, not in their own message.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
