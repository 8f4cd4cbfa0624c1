//! Engine administration (`/api/admin/engines…`): the fleet's state, the models of one node,
//! pulling a model onto a node and deleting one from it. Pulls and deletes are admin actions:
//! each writes an audit record (`admin.audited`) through the outbox.
//!
//! A pull runs as a task of its own rather than inside the admin's request. Ollama stops a pull
//! when its client goes away; an admin who closes the page, or whose connection drops, should not
//! throw away a download of many gigabytes. The request only follows the task, and a second
//! request for the same model on the same node follows the same task instead of starting another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use http::StatusCode;
use kit::audit::AuditRecord;
use kit::authn::Identity;
use kit::db::{BeginWrite, Db};
use kit::outbox::Outbox;
use kit::{Problem, Timestamp, with_db};
use ollama_api::ClientError;
use ollama_api::client::ItemStream;
use ollama_api::types::{DeleteRequest, ModelDetails, ModelEntry, ProgressResponse, PullRequest, RunningModel};
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;

use crate::admission::Admission;
use crate::error::InferenceError;
use crate::fleet::{Fleet, Node, NodeStatus, full_name, same_model};
use crate::validate;

/// Admin calls to a node (its models, a delete) give up after this: a hung node must not hold
/// the admin's request forever.
const NODE_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A pull that reports nothing for this long is given up. Ollama reports every few hundred
/// milliseconds while it downloads; the longest silence is the digest check of a large layer.
const PULL_STALL: Duration = Duration::from_secs(15 * 60);
/// Progress events a slow follower may fall behind by; it skips the older ones (each event
/// states the whole progress of its layer, so nothing is lost but intermediate values).
const PULL_EVENTS: usize = 256;

/// The fleet as `GET /api/admin/engines` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EngineList {
    pub items: Vec<NodeStatus>,
    /// Always null: the fleet is one page.
    pub next_cursor: Option<String>,
    /// The admission queue. It is the platform's, not a node's: a waiting request takes the
    /// first node with a free slot.
    pub admission: AdmissionLoad,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdmissionLoad {
    /// Generations running on the fleet.
    pub running: usize,
    /// Generations waiting for a slot.
    pub waiting: usize,
    /// Generations the healthy nodes can run at once.
    pub capacity: usize,
}

/// A model installed on a node, as the node's `/api/tags` reports it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeModel {
    pub name: String,
    pub model: String,
    /// Bytes on disk.
    pub size: u64,
    pub digest: String,
    pub modified_at: Timestamp,
    /// `format`, `family`, `families`, `parameter_size`, `quantization_level`, …
    #[schema(value_type = Object)]
    pub details: ModelDetails,
    /// Present while the model is in memory (the node's `/api/ps`).
    pub loaded: Option<Loaded>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Loaded {
    /// Bytes in memory, all devices.
    pub size: u64,
    /// Bytes in GPU memory.
    pub size_vram: u64,
    /// When it unloads if unused.
    pub expires_at: Timestamp,
    pub context_length: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeModels {
    pub items: Vec<NodeModel>,
    /// Always null: a node's models are one page.
    pub next_cursor: Option<String>,
}

impl NodeModel {
    fn new(m: ModelEntry, running: &[RunningModel]) -> Self {
        let loaded = running.iter().find(|r| same_model(&r.name, &m.name)).map(|r| Loaded {
            size: r.size,
            size_vram: r.size_vram,
            expires_at: Timestamp(r.expires_at),
            context_length: r.context_length,
        });
        Self {
            name: m.name,
            model: m.model,
            size: m.size,
            digest: m.digest,
            modified_at: Timestamp(m.modified_at),
            details: m.details,
            loaded,
        }
    }
}

/// What a pull's followers receive.
#[derive(Debug, Clone)]
pub enum PullEvent {
    /// One of Ollama's progress lines (`status`, and while a layer downloads `digest`, `total`,
    /// `completed`).
    Progress(ProgressResponse),
    /// The model is on the node.
    Done(PullDone),
    /// The pull ended without the model.
    Failed(Problem),
}

#[derive(Debug, Clone, Serialize)]
pub struct PullDone {
    pub node: String,
    pub model: String,
    pub status: &'static str,
}

/// A pull in progress on a node, followed by any number of requests.
pub struct Pull {
    node: String,
    model: String,
    request_id: Option<String>,
    log: Mutex<PullLog>,
    events: broadcast::Sender<PullEvent>,
}

/// What a follower that arrives late starts from.
#[derive(Default)]
struct PullLog {
    last: Option<ProgressResponse>,
    end: Option<PullEvent>,
}

impl Pull {
    fn new(node: &str, model: &str) -> Self {
        Self {
            node: node.to_owned(),
            model: model.to_owned(),
            request_id: kit::request_id::current(),
            log: Mutex::default(),
            events: broadcast::channel(PULL_EVENTS).0,
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, PullLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The events from now on: the latest progress first, then each new one, until the end.
    pub fn follow(&self) -> impl Stream<Item = PullEvent> + Send + 'static {
        // Under the lock, so that no event falls between the backlog and the subscription.
        let log = self.log();
        let backlog: Vec<PullEvent> =
            log.last.iter().cloned().map(PullEvent::Progress).chain(log.end.iter().cloned()).collect();
        let live = log.end.is_none().then(|| self.events.subscribe());
        drop(log);
        let live = futures::stream::unfold(live, |rx| async move {
            let mut rx = rx?;
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        let more = matches!(event, PullEvent::Progress(_));
                        return Some((event, more.then_some(rx)));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        futures::stream::iter(backlog).chain(live)
    }

    fn publish(&self, event: PullEvent) {
        let mut log = self.log();
        match &event {
            PullEvent::Progress(p) => log.last = Some(p.clone()),
            PullEvent::Done(_) | PullEvent::Failed(_) => log.end = Some(event.clone()),
        }
        // No receiver is fine: nobody follows the pull at the moment.
        let _ = self.events.send(event);
    }

    fn fail(&self, status: StatusCode, code: &str, detail: impl Into<String>) {
        let mut problem = Problem::new(status, code, detail);
        problem.request_id = self.request_id.clone();
        self.publish(PullEvent::Failed(problem));
    }
}

/// A pull registered but not yet accepted by its node. If its start fails, or is abandoned
/// because the admin's request went away, whoever joined meanwhile hears why and the registry
/// forgets it, so that it cannot hold back the next pull of the model.
struct Unstarted<'a> {
    engines: &'a Engines,
    key: &'a (String, String),
    pull: &'a Pull,
    why: Option<Problem>,
}

impl Drop for Unstarted<'_> {
    fn drop(&mut self) {
        if let Some(mut problem) = self.why.take() {
            problem.request_id.clone_from(&self.pull.request_id);
            self.pull.publish(PullEvent::Failed(problem));
            self.engines.forget(self.key);
        }
    }
}

pub struct Engines {
    fleet: Arc<Fleet>,
    admission: Arc<Admission>,
    db: Db,
    outbox: Outbox,
    /// Pulls running, by node id and full model name.
    pulls: Mutex<HashMap<(String, String), Arc<Pull>>>,
}

fn engine_error(node: &Node, error: impl std::fmt::Display) -> InferenceError {
    InferenceError::Engine { node: node.id.clone(), message: error.to_string() }
}

/// The codes, and their statuses, with which OllamaNet's engine refuses a pull because of its
/// registry. They reach the admin as they are; any other refusal is the node's `engine_error`.
const REGISTRY_FAILURES: [(&str, StatusCode); 5] = [
    ("registry_unavailable", StatusCode::BAD_GATEWAY),
    ("registry_timeout", StatusCode::GATEWAY_TIMEOUT),
    ("registry_error", StatusCode::BAD_GATEWAY),
    ("registry_redirect_refused", StatusCode::BAD_GATEWAY),
    ("model_not_found", StatusCode::NOT_FOUND),
];

/// Why a node did not start a pull.
fn pull_refused(node: &Node, error: ClientError) -> InferenceError {
    if let ClientError::Status { status, message, code: Some(code) } = &error
        && let Some((code, _)) = REGISTRY_FAILURES.iter().find(|(c, s)| c == code && s == status)
    {
        return InferenceError::Registry { node: node.id.clone(), status: *status, code, message: message.clone() };
    }
    engine_error(node, error)
}

/// A call to a node, bounded by [`NODE_CALL_TIMEOUT`].
async fn bounded<T>(node: &Node, call: impl Future<Output = Result<T, ClientError>>) -> Result<T, ClientError> {
    tokio::time::timeout(NODE_CALL_TIMEOUT, call).await.unwrap_or_else(|_| {
        Err(ClientError::Status {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!("{} did not answer within {NODE_CALL_TIMEOUT:?}", node.id),
            code: None,
        })
    })
}

impl Engines {
    pub fn new(fleet: Arc<Fleet>, admission: Arc<Admission>, db: Db, outbox: Outbox) -> Self {
        Self { fleet, admission, db, outbox, pulls: Mutex::default() }
    }

    pub fn list(&self) -> EngineList {
        let (running, waiting) = self.admission.load();
        EngineList {
            items: self.fleet.nodes().iter().map(|n| n.status()).collect(),
            next_cursor: None,
            admission: AdmissionLoad { running, waiting, capacity: self.fleet.capacity() },
        }
    }

    fn node(&self, id: &str) -> Result<Arc<Node>, InferenceError> {
        self.fleet.get(id).ok_or_else(|| InferenceError::UnknownNode(id.to_owned()))
    }

    pub fn status(&self, id: &str) -> Result<NodeStatus, InferenceError> {
        Ok(self.node(id)?.status())
    }

    /// The models installed on a node and which of them are loaded, asked of the node now.
    pub async fn models(&self, id: &str) -> Result<NodeModels, InferenceError> {
        let node = self.node(id)?;
        let (tags, ps) = bounded(&node, async { tokio::try_join!(node.client.tags(), node.client.ps()) })
            .await
            .map_err(|e| engine_error(&node, e))?;
        let items = tags.models.into_iter().map(|m| NodeModel::new(m, &ps.models)).collect();
        Ok(NodeModels { items, next_cursor: None })
    }

    /// Deletes `model` from a node, then records who did it.
    pub async fn delete(&self, admin: &Identity, id: &str, model: &str) -> Result<(), InferenceError> {
        validate::model_name(model).map_err(InferenceError::InvalidModelName)?;
        let node = self.node(id)?;
        bounded(&node, node.client.delete(&DeleteRequest { model: model.to_owned() })).await.map_err(|e| {
            match e.status() {
                Some(StatusCode::NOT_FOUND) => {
                    InferenceError::UnknownModel { node: node.id.clone(), model: model.into() }
                }
                _ => engine_error(&node, e),
            }
        })?;
        // Requests for the model must stop going to this node now, not at the next probe.
        self.fleet.probe(&node).await;
        let record = AuditRecord::new(admin, "engine.delete_model", "engine", &node.id)
            .change(Some(json!({"model": model})), None);
        self.audit(&record).await.inspect_err(|e| {
            tracing::error!(node = %node.id, model, error = %e, "model deleted, but its audit record was not written");
        })
    }

    /// Starts pulling `model` onto a node (or joins the pull of it already running there) and
    /// returns the pull to follow. Refused before the node is contacted when the name is invalid.
    pub async fn pull(
        self: &Arc<Self>,
        admin: &Identity,
        id: &str,
        model: &str,
        insecure: bool,
    ) -> Result<Arc<Pull>, InferenceError> {
        validate::model_name(model).map_err(InferenceError::InvalidModelName)?;
        let node = self.node(id)?;
        let key = (node.id.clone(), full_name(model));
        let pull = {
            let mut pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(running) = pulls.get(&key) {
                return Ok(running.clone());
            }
            let pull = Arc::new(Pull::new(&node.id, model));
            pulls.insert(key.clone(), pull.clone());
            pull
        };
        let mut unstarted = Unstarted {
            engines: self,
            key: &key,
            pull: &pull,
            why: Some(Problem::new(
                StatusCode::BAD_GATEWAY,
                "pull_failed",
                "the request that started the pull went away before the node accepted it",
            )),
        };
        let progress = match self.start_pull(admin, &node, model, insecure).await {
            Ok(progress) => progress,
            Err(e) => {
                unstarted.why = Some(e.problem());
                return Err(e);
            }
        };
        unstarted.why = None;
        drop(unstarted);
        tokio::spawn(self.clone().run_pull(key, pull.clone(), node, progress));
        Ok(pull)
    }

    /// Asks the node to pull; once it has accepted, records who asked. Without the record the
    /// pull does not go on: dropping the progress stream stops it.
    async fn start_pull(
        &self,
        admin: &Identity,
        node: &Node,
        model: &str,
        insecure: bool,
    ) -> Result<ItemStream<ProgressResponse>, InferenceError> {
        let req = PullRequest { model: model.to_owned(), insecure, stream: None };
        let progress = bounded(node, node.client.pull_stream(&req)).await.map_err(|e| pull_refused(node, e))?;
        let record = AuditRecord::new(admin, "engine.pull", "engine", &node.id)
            .change(None, Some(json!({"model": model, "insecure": insecure})));
        self.audit(&record).await?;
        Ok(progress)
    }

    async fn run_pull(
        self: Arc<Self>,
        key: (String, String),
        pull: Arc<Pull>,
        node: Arc<Node>,
        mut progress: ItemStream<ProgressResponse>,
    ) {
        let outcome = loop {
            match tokio::time::timeout(PULL_STALL, progress.next()).await {
                Ok(Some(Ok(p))) if p.is_success() => break Ok(()),
                Ok(Some(Ok(p))) => pull.publish(PullEvent::Progress(p)),
                Ok(Some(Err(e))) => break Err(("pull_failed", e.to_string())),
                Ok(None) => break Err(("pull_failed", "the engine ended the pull before it finished".to_owned())),
                Err(_) => {
                    break Err(("pull_stalled", format!("no progress for {} minutes", PULL_STALL.as_secs() / 60)));
                }
            }
        };
        drop(progress);
        // The fleet learns of the new model before the admin does, so that it is routable as
        // soon as the admin hears it is there.
        self.fleet.probe(&node).await;
        match outcome {
            Ok(()) => {
                tracing::info!(node = %pull.node, model = %pull.model, "model pulled");
                pull.publish(PullEvent::Done(PullDone {
                    node: pull.node.clone(),
                    model: pull.model.clone(),
                    status: "success",
                }));
            }
            Err((code, detail)) => {
                tracing::warn!(node = %pull.node, model = %pull.model, error = %detail, "model pull failed");
                pull.fail(StatusCode::BAD_GATEWAY, code, detail);
            }
        }
        self.forget(&key);
    }

    fn forget(&self, key: &(String, String)) {
        self.pulls.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// Writes an audit record to the outbox: it reaches the admin service's audit log even if
    /// the broker is down now.
    async fn audit(&self, record: &AuditRecord) -> Result<(), InferenceError> {
        let event = record.event(crate::NAME);
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            self.outbox.enqueue(&mut tx, &event).await?;
            tx.commit().await?;
        });
        self.outbox.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(status: &str) -> PullEvent {
        PullEvent::Progress(ProgressResponse::status(status))
    }

    fn statuses(events: &[PullEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                PullEvent::Progress(p) => p.status.clone(),
                PullEvent::Done(_) => "done".into(),
                PullEvent::Failed(p) => p.code.clone(),
            })
            .collect()
    }

    #[tokio::test]
    async fn followers_see_the_latest_progress_then_every_event_to_the_end() {
        let pull = Pull::new("local", "tiny");
        let early = pull.follow();
        pull.publish(progress("pulling manifest"));
        pull.publish(progress("pulling abc"));
        let late = pull.follow();
        pull.publish(progress("writing manifest"));
        pull.publish(PullEvent::Done(PullDone { node: "local".into(), model: "tiny".into(), status: "success" }));
        let after = pull.follow();

        let early: Vec<PullEvent> = early.collect().await;
        assert_eq!(statuses(&early), ["pulling manifest", "pulling abc", "writing manifest", "done"]);
        let late: Vec<PullEvent> = late.collect().await;
        assert_eq!(statuses(&late), ["pulling abc", "writing manifest", "done"]);
        let after: Vec<PullEvent> = after.collect().await;
        assert_eq!(statuses(&after), ["writing manifest", "done"], "a finished pull still tells how it ended");
    }

    #[tokio::test]
    async fn a_failure_ends_the_stream_with_a_problem() {
        let pull = Pull::new("local", "tiny");
        let follower = pull.follow();
        pull.fail(StatusCode::BAD_GATEWAY, "pull_failed", "manifest not found");
        let events: Vec<PullEvent> = follower.collect().await;
        let [PullEvent::Failed(problem)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!((problem.status, problem.code.as_str()), (502, "pull_failed"));
    }
}
