//! What the admin service learns from the bus: audit records from every service (its own
//! catalog changes included) and usage records from inference.

use std::sync::Arc;

use async_trait::async_trait;
use kit::audit::AuditRecord;
use kit::bus::{Event, Handler, HandlerError, Message};
use ollamanet_catalog::Catalog;
use serde::Deserialize;
use uuid::Uuid;

use crate::store::{Store, UsageRow};

/// The inference service's `usage.recorded` (the fields counted here).
pub const USAGE_RECORDED: &str = "usage.recorded";

/// Keeps every `admin.audited` record in the audit log.
pub struct AuditEvents(pub Store);

#[async_trait]
impl Handler for AuditEvents {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        let (event, record) = Event::decode::<AuditRecord>(msg)?;
        self.0
            .record_audit(event.id, event.occurred_at, &event.source, &record)
            .await
            .map_err(|e| HandlerError::Transient(e.to_string()))
    }
}

#[derive(Deserialize)]
struct Usage {
    user_id: Uuid,
    model: String,
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    eval_tokens: i64,
    at: kit::Timestamp,
}

/// Sums usage per day, user and model, and counts each model's requests in the catalog (its
/// "most used" order).
pub struct UsageEvents {
    pub store: Store,
    pub catalog: Arc<Catalog>,
}

#[async_trait]
impl Handler for UsageEvents {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        let (event, usage) = Event::decode::<Usage>(msg)?;
        let transient = |e: &dyn std::fmt::Display| HandlerError::Transient(e.to_string());
        let day = usage.at.0.date().to_string();
        let model = ollamanet_catalog::normalize_name(&usage.model).unwrap_or(usage.model);
        let row = UsageRow {
            day,
            user_id: usage.user_id,
            model,
            requests: 1,
            prompt_tokens: usage.prompt_tokens,
            eval_tokens: usage.eval_tokens,
        };
        if self.store.count_usage(event.id, &row).await.map_err(|e| transient(&e))? {
            // A model outside the catalog has nothing to count.
            self.catalog.count_requests(&row.model, 1).await.map_err(|e| transient(&e))?;
        }
        Ok(())
    }
}
