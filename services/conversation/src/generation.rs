//! Replies being generated. A generation is a task of its own, not part of the request that
//! started it: a client that goes away loses nothing (the reply is saved as it grows and when it
//! ends), any number of clients can follow it, and a client can come back with the last event id
//! it saw and get the rest.
//!
//! Followers read a `watch` of the reply's progress rather than a queue of events, so a slow
//! client costs no memory (it gets the text it missed in one larger delta) and an idle one holds
//! only a receiver and an offset.
//!
//! Event ids are `<reply id>:<bytes of content delivered>`, so a follower can resume anywhere:
//! from the live generation in this process, or from the database when the generation runs (or
//! ran) elsewhere.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::sse::Event;
use backon::Retryable;
use futures::{Stream, StreamExt};
use ollama_api::types::ChatRequest;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ConversationError;
use crate::inference::{Caller, ChatLine, Failure, Inference};
use crate::store::{Citation, MessageRecord, MessageStatus, Store, Usage};

/// A stored reply still `streaming` is re-saved at least this often, so that a reply whose
/// process died can be told from one that is merely slow.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// How often a follower of a generation running elsewhere looks at the database.
const POLL: Duration = Duration::from_millis(300);

/// The `start` event: what the reply is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Start {
    pub conversation_id: Uuid,
    /// The reply's id.
    pub message_id: Uuid,
    /// The message being answered.
    pub parent_id: Option<Uuid>,
    pub model: String,
    /// Messages of the branch left out of the model's context (see the history policy).
    pub context_dropped: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeltaEvent {
    pub content: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueuedEvent {
    /// 1 means next.
    pub position: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DoneEvent {
    pub message_id: Uuid,
    /// `complete` or `stopped`.
    pub status: MessageStatus,
    pub usage: Usage,
    /// The document chunks the model was given (see `docs/documents.md`).
    pub citations: Vec<Citation>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorEvent {
    pub message_id: Uuid,
    pub code: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TitleEvent {
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Title {
    /// None is being made for this reply.
    None,
    Pending,
    Made(String),
}

/// Where a reply stands, as followers see it.
#[derive(Debug, Clone)]
pub struct Progress {
    pub content: String,
    pub status: MessageStatus,
    pub queue_position: Option<usize>,
    pub usage: Usage,
    pub error: Option<Failure>,
    pub title: Title,
    pub citations: Vec<Citation>,
}

impl Progress {
    fn stored(m: &MessageRecord) -> Self {
        Progress {
            content: m.content.clone(),
            status: m.status,
            queue_position: None,
            usage: m.usage.clone(),
            error: m.error.clone().map(|message| Failure { code: "inference_failed", message }),
            title: Title::None,
            citations: m.citations.clone().unwrap_or_default(),
        }
    }
}

pub struct Generation {
    pub start: Start,
    pub owner: Uuid,
    progress: watch::Sender<Progress>,
    cancel: CancellationToken,
}

impl Generation {
    pub fn new(start: Start, owner: Uuid, citations: Vec<Citation>) -> Arc<Self> {
        let progress = Progress {
            content: String::new(),
            status: MessageStatus::Streaming,
            queue_position: None,
            usage: Usage::default(),
            error: None,
            title: Title::None,
            citations,
        };
        Arc::new(Self { start, owner, progress: watch::Sender::new(progress), cancel: CancellationToken::new() })
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Whether `offset` is a place in the reply so far that a follower can start from.
    pub fn has_offset(&self, offset: usize) -> bool {
        self.progress.borrow().content.is_char_boundary(offset)
    }

    /// Waits for the reply to end (complete, stopped or failed).
    pub async fn finished(&self) {
        let mut rx = self.progress.subscribe();
        // An error means the generation is gone, which it is only once it has ended.
        let _ = rx.wait_for(|p| p.status.is_final()).await;
    }

    pub fn follow(self: &Arc<Self>, offset: usize) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        events(self.start.clone(), self.progress(), offset)
    }

    /// The reply's progress from now on.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}

/// The generations running in this process, by conversation (one at a time per conversation).
#[derive(Default)]
pub struct Jobs(Mutex<HashMap<Uuid, Arc<Generation>>>);

impl Jobs {
    /// Registers `generation`, unless its conversation has one running already.
    pub fn begin(&self, generation: Arc<Generation>) -> bool {
        let mut live = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match live.entry(generation.start.conversation_id) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(generation);
                true
            }
        }
    }

    pub fn get(&self, conversation: Uuid) -> Option<Arc<Generation>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&conversation).cloned()
    }

    /// The running generation of this reply, wherever its conversation is.
    pub fn by_reply(&self, reply: Uuid) -> Option<Arc<Generation>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).values().find(|g| g.start.message_id == reply).cloned()
    }

    pub(crate) fn end(&self, generation: &Generation) {
        let mut live = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if live
            .get(&generation.start.conversation_id)
            .is_some_and(|g| g.start.message_id == generation.start.message_id)
        {
            live.remove(&generation.start.conversation_id);
        }
    }

    pub fn owned_by(&self, owner: Uuid) -> Vec<Arc<Generation>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|g| g.owner == owner).cloned().collect()
    }

    /// Stops every generation (at shutdown); each saves what it has.
    pub fn stop_all(&self) {
        for g in self.0.lock().unwrap_or_else(|e| e.into_inner()).values() {
            g.stop();
        }
    }
}

/// A title to make once the reply is complete: the first exchange, summed up by the model.
pub struct TitleJob {
    pub prompt: String,
}

/// What a generation needs besides its own description.
pub struct Runner {
    pub store: Store,
    pub cache: kit::cache::Cache,
    pub inference: Inference,
    pub jobs: Arc<Jobs>,
    pub persist_interval: Duration,
}

impl Runner {
    /// Generates the reply, saving it as it grows; ends by saving how it ended (retrying while
    /// the database is away, so that a finished reply is never lost), then makes the title.
    pub async fn run(
        &self,
        generation: Arc<Generation>,
        caller: Caller,
        request: ChatRequest,
        title: Option<TitleJob>,
    ) {
        let reply = generation.start.message_id;
        let sent_at = Instant::now();
        let generating = metrics::gauge!("conversation_replies_generating");
        generating.increment(1.0);
        let outcome = self.stream(&generation, &caller, &request, sent_at).await;
        let (content, usage) = {
            let p = generation.progress.borrow();
            (p.content.clone(), p.usage.clone())
        };
        let (status, error) = match &outcome {
            Ok(status) => (*status, None),
            Err(f) => (MessageStatus::Failed, Some(f.clone())),
        };
        let save =
            || self.store.finish_reply(reply, &content, status, error.as_ref().map(|e| e.message.as_str()), &usage);
        if let Err(e) = save
            .retry(kit::resilience::backoff(180))
            .when(kit::db::is_unavailable)
            .notify(|e, _| tracing::warn!(error = %e, %reply, "could not save the reply yet; retrying"))
            .await
        {
            tracing::error!(error = %e, %reply, "could not save the reply");
        }
        let title = title.filter(|_| status == MessageStatus::Complete);
        generation.progress.send_modify(|p| {
            p.status = status;
            p.error = error;
            p.queue_position = None;
            if title.is_some() {
                p.title = Title::Pending;
            }
        });
        self.jobs.end(&generation);
        generating.decrement(1.0);
        metrics::counter!("conversation_replies_total", "status" => status.as_str()).increment(1);
        if let Some(ns) = usage.time_to_first_token_ns {
            metrics::histogram!("conversation_time_to_first_token_seconds").record(ns as f64 / 1e9);
        }
        if let Some(job) = title {
            let made = self.make_title(&generation, &caller, &request.model, &job, &content).await;
            generation.progress.send_modify(|p| p.title = made.map_or(Title::None, Title::Made));
        }
    }

    /// Relays the engine's chunks into the progress until the reply ends; the status it ended
    /// with, or why it failed.
    async fn stream(
        &self,
        generation: &Generation,
        caller: &Caller,
        request: &ChatRequest,
        sent_at: Instant,
    ) -> Result<MessageStatus, Failure> {
        let reply = generation.start.message_id;
        let mut chunks = tokio::select! {
            started = self.inference.chat_stream(caller, request) => started?,
            _ = generation.cancel.cancelled() => return Ok(MessageStatus::Stopped),
        };
        let mut saved_at = Instant::now();
        let mut saved_len = 0;
        // Saved at least this often while waiting, so the row shows the reply is alive.
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            let line = tokio::select! {
                line = chunks.next() => Some(line),
                _ = heartbeat.tick() => None,
                // Dropping the stream cancels the generation at the engine.
                _ = generation.cancel.cancelled() => return Ok(MessageStatus::Stopped),
            };
            let beat = line.is_none();
            match line {
                None => {}
                Some(None) => {
                    return Err(Failure { code: "inference_failed", message: "the reply ended unexpectedly".into() });
                }
                Some(Some(Err(f))) => return Err(f),
                Some(Some(Ok(ChatLine::Error { error }))) => {
                    return Err(Failure { code: "inference_failed", message: error });
                }
                Some(Some(Ok(ChatLine::Queued { queue_position }))) => {
                    generation.progress.send_modify(|p| p.queue_position = Some(queue_position));
                }
                Some(Some(Ok(ChatLine::Chunk(chunk)))) => {
                    generation.progress.send_modify(|p| absorb_chunk(p, &chunk, sent_at));
                    if chunk.done {
                        return Ok(MessageStatus::Complete);
                    }
                }
            }
            let len = generation.progress.borrow().content.len();
            if (saved_at.elapsed() >= self.persist_interval && len != saved_len) || beat {
                let content = generation.progress.borrow().content.clone();
                if let Err(e) = self.store.save_progress(reply, &content).await {
                    tracing::warn!(error = %e, %reply, "could not save the reply's progress");
                }
                saved_at = Instant::now();
                saved_len = content.len();
            }
        }
    }

    async fn make_title(
        &self,
        generation: &Generation,
        caller: &Caller,
        model: &str,
        job: &TitleJob,
        reply: &str,
    ) -> Option<String> {
        let clip = |s: &str| s.chars().take(1500).collect::<String>();
        let request = ChatRequest {
            model: model.to_owned(),
            messages: vec![
                ollama_api::types::Message::system(
                    "You name conversations. Answer with a title of at most six words for the conversation \
                     below, and nothing else.",
                ),
                ollama_api::types::Message::user(format!(
                    "User: {}\n\nAssistant: {}\n\nTitle:",
                    clip(&job.prompt),
                    clip(reply)
                )),
            ],
            options: Some(ollama_api::types::Options {
                num_predict: Some(24),
                temperature: Some(0.2),
                ..Default::default()
            }),
            ..Default::default()
        };
        let made = match self.inference.chat(caller, &request).await {
            Ok(answer) => clean_title(&answer.message.content),
            Err(e) => {
                tracing::info!(error = %e, "no title from the model; using the first message");
                None
            }
        }
        .or_else(|| clean_title(&job.prompt))?;
        let start = &generation.start;
        match self.store.set_generated_title(generation.owner, start.conversation_id, &made).await {
            Ok(true) => {
                self.cache.delete(&crate::service::conversation_key(start.conversation_id)).await;
                Some(made)
            }
            // Named by the user meanwhile, or deleted: their choice stands.
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not save the generated title");
                None
            }
        }
    }
}

/// Adds an engine chunk to the progress: its text, the time to the first text, and on the last
/// chunk the engine's counters.
fn absorb_chunk(p: &mut Progress, chunk: &ollama_api::types::ChatResponse, sent_at: Instant) {
    p.queue_position = None;
    if !chunk.message.content.is_empty() && p.usage.time_to_first_token_ns.is_none() {
        p.usage.time_to_first_token_ns = Some(nanos(sent_at.elapsed()));
    }
    p.content.push_str(&chunk.message.content);
    if chunk.done {
        let m = &chunk.metrics;
        let int = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
        p.usage.prompt_tokens = int(m.prompt_eval_count);
        p.usage.completion_tokens = int(m.eval_count);
        p.usage.total_duration_ns = int(m.total_duration);
        p.usage.load_duration_ns = int(m.load_duration);
        p.usage.prompt_eval_duration_ns = int(m.prompt_eval_duration);
        p.usage.eval_duration_ns = int(m.eval_duration);
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The first line of a model's answer, without quotes, labels or a trailing full stop; at most
/// 80 characters.
pub fn clean_title(raw: &str) -> Option<String> {
    let line = raw.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.strip_prefix("Title:").unwrap_or(line);
    let line = line.trim().trim_matches(|c: char| matches!(c, '"' | '\'' | '*' | '#' | '`')).trim();
    let line = line.strip_suffix('.').unwrap_or(line).trim();
    let mut title: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        title = format!("{}…", title.trim_end());
    }
    (!title.is_empty()).then_some(title)
}

/// Replies generated by another instance (or by a process that is gone), followed here by
/// reading the database: one reader per reply, however many clients follow it.
#[derive(Default)]
pub struct Mirrors(Mutex<HashMap<Uuid, watch::Sender<Progress>>>);

impl Mirrors {
    /// The progress of the reply `stored` (of `owner`'s), as the database shows it from now on.
    pub fn follow(self: &Arc<Self>, store: &Store, owner: Uuid, stored: &MessageRecord) -> watch::Receiver<Progress> {
        let progress = Progress::stored(stored);
        if progress.status.is_final() {
            // Nothing will change: the receiver keeps the last value of a sender that is gone.
            return watch::Sender::new(progress).subscribe();
        }
        let mut mirrors = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = mirrors.get(&stored.id) {
            return tx.subscribe();
        }
        let tx = watch::Sender::new(progress);
        let rx = tx.subscribe();
        mirrors.insert(stored.id, tx.clone());
        tokio::spawn(self.clone().poll(store.clone(), owner, stored.id, tx));
        rx
    }

    /// Reads the reply every [`POLL`] while anyone follows it, until it ends or is deleted.
    async fn poll(self: Arc<Self>, store: Store, owner: Uuid, reply: Uuid, tx: watch::Sender<Progress>) {
        loop {
            tokio::time::sleep(POLL).await;
            {
                // Under the lock, so that nobody subscribes to a mirror on its way out.
                let mut mirrors = self.0.lock().unwrap_or_else(|e| e.into_inner());
                if tx.receiver_count() == 0 {
                    mirrors.remove(&reply);
                    return;
                }
            }
            let m = match store.message(owner, reply).await {
                Ok(m) => m,
                Err(ConversationError::NotFound(_)) => {
                    self.forget(reply);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, %reply, "could not read a reply being generated elsewhere");
                    continue;
                }
            };
            let p = Progress::stored(&m);
            let ended = p.status.is_final();
            tx.send_if_modified(|old| {
                let changed = old.content.len() != p.content.len() || old.status != p.status;
                if changed {
                    *old = p;
                }
                changed
            });
            if ended {
                self.forget(reply);
                return;
            }
        }
    }

    fn forget(&self, reply: Uuid) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&reply);
    }
}

struct Follower {
    progress: watch::Receiver<Progress>,
    cursor: Cursor,
    _open: OpenStream,
}

/// Counts the reply streams open to clients (`conversation_reply_streams`) while it lives.
struct OpenStream;

impl OpenStream {
    fn new() -> Self {
        metrics::gauge!("conversation_reply_streams").increment(1.0);
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("conversation_reply_streams").decrement(1.0);
    }
}

impl Follower {
    /// Waits for the progress to differ from what was seen and turns it into events; false when
    /// it never will. A live reply is read in place: only the new bytes are copied, so following
    /// costs the same however long the reply has grown.
    async fn advance(&mut self) -> bool {
        let first = std::mem::replace(&mut self.cursor.first, false);
        let rx = &mut self.progress;
        if !first && rx.changed().await.is_err() {
            // The generation (or the mirror of it) is gone; its last word stands.
            let p = rx.borrow();
            if !p.status.is_final() {
                return false;
            }
            self.cursor.absorb(&p);
            return true;
        }
        self.cursor.absorb(&rx.borrow_and_update());
        true
    }
}

/// What a follower has delivered, and the events waiting to go.
struct Cursor {
    start: Start,
    /// Bytes of content delivered.
    sent: usize,
    queue_position: Option<usize>,
    done_sent: bool,
    first: bool,
    pending: VecDeque<Event>,
    ended: bool,
}

impl Cursor {
    fn event(&self, kind: &str, data: &impl Serialize) -> Event {
        Event::default()
            .event(kind)
            .id(format!("{}:{}", self.start.message_id, self.sent))
            .json_data(data)
            .unwrap_or_else(|_| Event::default().event(kind))
    }

    /// Turns a new progress into the events it means.
    fn absorb(&mut self, p: &Progress) {
        if p.queue_position != self.queue_position {
            self.queue_position = p.queue_position;
            if let Some(position) = p.queue_position {
                let e = self.event("queued", &QueuedEvent { position });
                self.pending.push_back(e);
            }
        }
        if p.content.len() > self.sent && p.content.is_char_boundary(self.sent) {
            let delta = DeltaEvent { content: p.content[self.sent..].to_owned() };
            self.sent = p.content.len();
            let e = self.event("delta", &delta);
            self.pending.push_back(e);
        }
        if p.status.is_final() && !self.done_sent {
            self.done_sent = true;
            let message_id = self.start.message_id;
            let e = match &p.error {
                Some(f) if p.status == MessageStatus::Failed => {
                    self.event("error", &ErrorEvent { message_id, code: f.code.to_owned(), detail: f.message.clone() })
                }
                _ => self.event(
                    "done",
                    &DoneEvent { message_id, status: p.status, usage: p.usage.clone(), citations: p.citations.clone() },
                ),
            };
            self.pending.push_back(e);
        }
        if self.done_sent {
            match &p.title {
                Title::Pending => {}
                Title::None => self.ended = true,
                Title::Made(title) => {
                    let e = self.event("title", &TitleEvent { title: title.clone() });
                    self.pending.push_back(e);
                    self.ended = true;
                }
            }
        }
    }
}

/// The SSE events of a reply from `offset` on: `start`, then `queued`, `delta`, and at the end
/// `done` or `error`, then `title` when one is made.
pub fn events(
    start: Start,
    progress: watch::Receiver<Progress>,
    offset: usize,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let mut cursor = Cursor {
        start,
        sent: offset,
        queue_position: None,
        done_sent: false,
        first: true,
        pending: VecDeque::new(),
        ended: false,
    };
    let e = cursor.event("start", &cursor.start);
    cursor.pending.push_back(e);
    futures::stream::unfold(Follower { progress, cursor, _open: OpenStream::new() }, |mut f| async move {
        loop {
            if let Some(e) = f.cursor.pending.pop_front() {
                return Some((Ok(e), f));
            }
            if f.cursor.ended {
                return None;
            }
            if !f.advance().await {
                let c = &mut f.cursor;
                c.ended = true;
                if !c.done_sent {
                    let message_id = c.start.message_id;
                    let detail = "the reply is no longer being generated".to_owned();
                    let e = c.event("error", &ErrorEvent { message_id, code: "generation_lost".into(), detail });
                    c.pending.push_back(e);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_cleaned() {
        assert_eq!(clean_title("\"Paris Trip Plans.\"\nmore").as_deref(), Some("Paris Trip Plans"));
        assert_eq!(clean_title("Title: **Rust lifetimes**").as_deref(), Some("Rust lifetimes"));
        assert_eq!(clean_title("  \n  "), None);
        assert_eq!(clean_title(&"a".repeat(100)).unwrap().chars().count(), 81);
    }
}
