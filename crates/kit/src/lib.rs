//! Shared plumbing for OllamaNet services.

pub mod api;
pub mod authn;
pub mod bus;
pub mod cache;
pub mod config;
pub mod db;
pub mod http;
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
pub mod tokens;
pub mod upstream;

pub use problem::{FieldError, Problem};
pub use timestamp::Timestamp;
