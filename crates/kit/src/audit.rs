//! Audit records of administrative actions. A service that changes something on an admin's
//! request writes an [`AUDITED`] event to its outbox in the same transaction as the change, so an
//! action is never done without its record; the admin service keeps every record in its audit
//! log (`GET /api/admin/audit`). The event's envelope gives the time and the source service.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::authn::Identity;
use crate::bus::Event;

/// The event type of an audit record, on [`crate::bus::EVENTS_EXCHANGE`].
pub const AUDITED: &str = "admin.audited";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub actor_id: Uuid,
    /// The actor's username when they acted.
    pub actor: String,
    /// What was done, `<target type>.<verb>`: `user.lock`, `model.update`, `role.delete`.
    pub action: String,
    /// `user`, `role`, `model`, `tag`, `engine`.
    pub target_type: String,
    /// The target's key: a user id, a role or model name, a tag id, an engine node id.
    pub target_id: String,
    /// The fields the action changed, as they were (absent for a creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The same fields afterwards (absent for a deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// The request the admin made (`X-Request-Id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl AuditRecord {
    /// A record of `actor` doing `action` to `target_type` `target_id`, in the current request.
    pub fn new(actor: &Identity, action: &str, target_type: &str, target_id: impl ToString) -> Self {
        Self {
            actor_id: actor.user_id,
            actor: actor.username.clone(),
            action: action.to_owned(),
            target_type: target_type.to_owned(),
            target_id: target_id.to_string(),
            before: None,
            after: None,
            request_id: crate::request_id::current(),
        }
    }

    /// The changed fields before and after.
    pub fn change(mut self, before: Option<Value>, after: Option<Value>) -> Self {
        self.before = before;
        self.after = after;
        self
    }

    /// The event that carries this record, from `source` (the service's name).
    pub fn event(&self, source: &str) -> Event {
        Event::new(AUDITED, source, self)
    }
}
