//! Retry with backoff and a circuit breaker, for calls that leave the process.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::ExponentialBuilder;

/// Backoff for retrying idempotent calls: jittered exponential, a few attempts.
pub fn backoff(max_times: usize) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(max_times)
        .with_jitter()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The value exported in metrics: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe call is allowed through; its outcome closes or re-opens the breaker.
    HalfOpen {
        probing: bool,
    },
}

/// Opens after `threshold` consecutive failures and rejects calls for `open_for`; then lets one
/// probe through. Callers ask [`CircuitBreaker::allow`] before the call and report the outcome.
#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self { state: Mutex::new(State::Closed { failures: 0 }), threshold: threshold.max(1), open_for }
    }

    pub fn allow(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *state {
            State::Closed { .. } => true,
            State::Open { until } if Instant::now() >= *until => {
                *state = State::HalfOpen { probing: true };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { probing } if !*probing => {
                *probing = true;
                true
            }
            State::HalfOpen { .. } => false,
        }
    }

    pub fn record_success(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = State::Closed { failures: 0 };
    }

    pub fn record_failure(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let open = match &mut *state {
            State::Closed { failures } => {
                *failures += 1;
                *failures >= self.threshold
            }
            State::HalfOpen { .. } => true,
            State::Open { .. } => false,
        };
        if open {
            *state = State::Open { until: Instant::now() + self.open_for };
        }
    }

    pub fn state(&self) -> BreakerState {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &*state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_probes_once() {
        let b = CircuitBreaker::new(2, Duration::from_millis(20));
        b.record_failure();
        assert!(b.allow());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow(), "one probe after the open period");
        assert!(!b.allow(), "only one probe at a time");
        b.record_failure();
        assert!(!b.allow(), "failed probe re-opens");
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow());
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow() && b.allow());
    }
}
