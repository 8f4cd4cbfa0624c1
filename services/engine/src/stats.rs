//! Counters the tests and `/metrics` read.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    tokens_generated: AtomicU64,
    requests_cancelled: AtomicU64,
    requests_rejected: AtomicU64,
}

impl Stats {
    pub fn record_token(&self) {
        self.tokens_generated.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("engine_tokens_generated_total").increment(1);
    }

    pub fn record_cancelled(&self) {
        self.requests_cancelled.fetch_add(1, Ordering::SeqCst);
        metrics::counter!("engine_requests_cancelled_total").increment(1);
    }

    pub fn record_rejected(&self) {
        self.requests_rejected.fetch_add(1, Ordering::SeqCst);
        metrics::counter!("engine_requests_rejected_total").increment(1);
    }

    pub fn tokens_generated(&self) -> u64 {
        self.tokens_generated.load(Ordering::SeqCst)
    }

    pub fn requests_cancelled(&self) -> u64 {
        self.requests_cancelled.load(Ordering::SeqCst)
    }

    pub fn requests_rejected(&self) -> u64 {
        self.requests_rejected.load(Ordering::SeqCst)
    }
}
