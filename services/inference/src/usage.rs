//! Usage records: one per generation or embedding, published as `usage.recorded` through the
//! outbox, so that statistics (tokens and requests per user, model and day) lose nothing when
//! the broker is down.

use std::time::Duration;

use kit::Timestamp;
use kit::bus::Event;
use kit::db::{BeginWrite, Db};
use kit::outbox::Outbox;
use kit::with_db;
use ollama_api::types::Metrics;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::relay::Job;

pub const USAGE_RECORDED: &str = "usage.recorded";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    pub request_id: Option<String>,
    pub user_id: Uuid,
    pub model: String,
    pub node: String,
    /// `ollama` or `openai`.
    pub face: String,
    /// False when the client went away (or the stream broke) before the final counters.
    pub completed: bool,
    pub prompt_tokens: u64,
    pub eval_tokens: u64,
    pub prompt_eval_duration_ns: u64,
    pub eval_duration_ns: u64,
    pub total_duration_ns: u64,
    /// From the request's arrival to the first byte of the answer (includes any queueing).
    pub time_to_first_token_ms: Option<f64>,
    pub wall_ms: f64,
    pub at: Timestamp,
}

impl Usage {
    pub fn new(job: &Job, node: &str) -> Self {
        Self {
            request_id: kit::request_id::current(),
            user_id: job.identity.user_id,
            model: job.model.clone(),
            node: node.to_owned(),
            face: job.face.to_owned(),
            completed: false,
            prompt_tokens: 0,
            eval_tokens: 0,
            prompt_eval_duration_ns: 0,
            eval_duration_ns: 0,
            total_duration_ns: 0,
            time_to_first_token_ms: None,
            wall_ms: 0.0,
            at: Timestamp::now(),
        }
    }

    pub fn finish(&mut self, metrics: Option<Metrics>, first_byte: Option<Duration>, wall: Duration) {
        self.time_to_first_token_ms = first_byte.map(|d| d.as_secs_f64() * 1000.0);
        self.wall_ms = wall.as_secs_f64() * 1000.0;
        if let Some(m) = metrics {
            self.completed = true;
            self.prompt_tokens = m.prompt_eval_count.unwrap_or(0);
            self.eval_tokens = m.eval_count.unwrap_or(0);
            self.prompt_eval_duration_ns = m.prompt_eval_duration.unwrap_or(0);
            self.eval_duration_ns = m.eval_duration.unwrap_or(0);
            self.total_duration_ns = m.total_duration.unwrap_or(0);
        }
    }
}

/// Where finished usage records go.
#[derive(Clone)]
pub struct UsageSink {
    db: Db,
    outbox: Outbox,
}

impl UsageSink {
    pub fn new(db: Db, outbox: Outbox) -> Self {
        Self { db, outbox }
    }

    /// Records in the background: the caller is a stream being dropped.
    pub fn record(&self, usage: Usage) {
        metrics::counter!("inference_tokens_total", "model" => usage.model.clone(), "kind" => "prompt")
            .increment(usage.prompt_tokens);
        metrics::counter!("inference_tokens_total", "model" => usage.model.clone(), "kind" => "eval")
            .increment(usage.eval_tokens);
        if let Some(ms) = usage.time_to_first_token_ms {
            metrics::histogram!("inference_time_to_first_token_seconds", "model" => usage.model.clone())
                .record(ms / 1000.0);
        }
        let sink = self.clone();
        tokio::spawn(async move {
            if let Err(e) = sink.store(&usage).await {
                tracing::error!(error = %e, model = %usage.model, "usage record lost: the database refused it");
            }
        });
    }

    async fn store(&self, usage: &Usage) -> Result<(), sqlx::Error> {
        let event = Event::new(USAGE_RECORDED, "inference", usage);
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            self.outbox.enqueue(&mut tx, &event).await?;
            tx.commit().await?;
        });
        self.outbox.wake();
        Ok(())
    }
}
