//! Per-route instruments, registered once when the route table is compiled rather than looked up
//! by label on every request.

use std::sync::Mutex;
use std::time::Duration;

use http::StatusCode;
use metrics::{Counter, Histogram, Label, SharedString};

#[derive(Debug)]
pub struct RouteMetrics {
    labels: [Label; 2],
    duration: Histogram,
    /// Request counters by status, registered on first use (a route sees a handful of statuses).
    requests: Mutex<Vec<(StatusCode, Counter)>>,
}

impl RouteMetrics {
    pub fn new(service: &str, route: &str) -> Self {
        let labels = [
            Label::new("service", SharedString::from_owned(service.to_owned())),
            Label::new("route", SharedString::from_owned(route.to_owned())),
        ];
        let duration = metrics::histogram!("gateway_request_duration_seconds", labels.to_vec());
        Self { labels, duration, requests: Mutex::new(Vec::new()) }
    }

    pub fn record(&self, status: StatusCode, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        match requests.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => counter.increment(1),
            None => {
                let mut labels = self.labels.to_vec();
                labels.push(Label::new("status", SharedString::from_owned(status.as_u16().to_string())));
                let counter = metrics::counter!("gateway_requests_total", labels);
                counter.increment(1);
                requests.push((status, counter));
            }
        }
    }
}
