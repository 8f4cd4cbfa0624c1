//! Which models are in memory, and who waits for them.
//!
//! Every model has a slot: a bounded count of requests waiting (for the model to load or for a
//! free worker; past `max_queue` a request is refused with 503) and a load lock, so concurrent
//! requests load a model once. A loaded model stays in memory while it is busy, and for its
//! keep-alive after its last request (negative: forever; zero: unloaded at once). Before a load,
//! idle models are evicted, least recently used first, until the new one fits the memory budget;
//! if busy models fill the budget the load waits for one to become idle.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::llm::{Activity, Job, LoadOptions, Loaded};
use crate::name::ModelName;
use crate::stats::Stats;
use crate::store::{ModelEntry, Store, StoreError};
use ollamanet_model_format::gguf::GgufFile;

/// How long a model stays loaded after its last request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    For(Duration),
    Forever,
}

impl KeepAlive {
    pub fn is_zero(self) -> bool {
        self == KeepAlive::For(Duration::ZERO)
    }
}

#[derive(Debug, Clone)]
pub struct SchedConfig {
    pub parallel: usize,
    pub max_queue: usize,
    pub keep_alive: KeepAlive,
    pub memory_budget: u64,
    pub num_ctx: u32,
    pub threads: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    #[error("server busy, please try again.  maximum pending requests exceeded")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Load(String),
    #[error("model requires more system memory ({needed} bytes) than is available ({budget} bytes)")]
    TooLarge { needed: u64, budget: u64 },
    #[error("shutting down")]
    ShuttingDown,
}

/// A loaded model.
pub struct Runner {
    pub loaded: Loaded,
    pub entry: ModelEntry,
    pub header: Arc<GgufFile>,
    pub key: String,
    /// Estimated memory: weights plus every worker's KV cache.
    pub size: u64,
    pub num_ctx: u32,
    pub embedding: bool,
    state: Mutex<RunnerState>,
}

struct RunnerState {
    keep_alive: KeepAlive,
    last_used: Instant,
    last_used_wall: SystemTime,
}

impl Runner {
    pub fn busy(&self) -> bool {
        self.loaded.busy()
    }

    /// Busy with requests other than the caller's own (which holds one queue place).
    fn busy_besides_caller(&self) -> bool {
        let a = &self.loaded.activity;
        a.queued.load(Ordering::SeqCst) > 1 || a.running.load(Ordering::SeqCst) > 0
    }

    /// When it will be unloaded if nothing uses it (`None`: never).
    pub fn expires_at(&self) -> Option<SystemTime> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.keep_alive {
            KeepAlive::Forever => None,
            KeepAlive::For(d) => Some(s.last_used_wall + d),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.keep_alive {
            KeepAlive::Forever => None,
            KeepAlive::For(d) => Some(s.last_used + d),
        }
    }

    fn last_used(&self) -> Instant {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).last_used
    }

    pub fn submit(&self, job: Job, ticket: Ticket) -> Result<(), String> {
        ticket.consume();
        self.loaded.submit(job)
    }
}

struct Slot {
    activity: Arc<Activity>,
    load: tokio::sync::Mutex<()>,
}

/// A place in a model's queue. Dropping it without submitting a job gives the place back.
pub struct Ticket {
    activity: Arc<Activity>,
    consumed: bool,
}

impl Ticket {
    fn consume(mut self) {
        // The worker that takes the job decrements the count.
        self.consumed = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.consumed {
            self.activity.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

pub struct Scheduler {
    config: SchedConfig,
    store: Arc<Store>,
    stats: Arc<Stats>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    runners: Mutex<HashMap<String, Arc<Runner>>>,
    /// A model became idle or was unloaded (loads waiting for memory, and the reaper, wake up).
    changed: Notify,
    shutdown: CancellationToken,
}

impl Scheduler {
    pub fn new(config: SchedConfig, store: Arc<Store>, stats: Arc<Stats>, shutdown: CancellationToken) -> Arc<Self> {
        let s = Arc::new(Self {
            config,
            store,
            stats,
            slots: Mutex::new(HashMap::new()),
            runners: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            shutdown,
        });
        tokio::spawn(reaper(s.clone(), s.shutdown.clone()));
        s
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Slot { activity: Arc::default(), load: tokio::sync::Mutex::new(()) }))
            .clone()
    }

    /// Requests waiting for `name` (to load or for a worker).
    pub fn queue_depth(&self, name: &ModelName) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name.to_string())
            .map_or(0, |s| s.activity.queued.load(Ordering::SeqCst))
    }

    /// Requests a worker of `name` is running.
    pub fn running(&self, name: &ModelName) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name.to_string())
            .map_or(0, |s| s.activity.running.load(Ordering::SeqCst))
    }

    pub fn loaded(&self) -> Vec<Arc<Runner>> {
        let mut v: Vec<_> = self.runners.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    pub fn find(&self, name: &ModelName) -> Option<Arc<Runner>> {
        self.runners.lock().unwrap_or_else(|e| e.into_inner()).get(&name.to_string()).cloned()
    }

    /// Takes a place in `entry`'s queue (503 past the bound).
    pub fn admit(&self, entry: &ModelEntry) -> Result<Ticket, SchedError> {
        let slot = self.slot(&entry.name.to_string());
        let prev = slot.activity.queued.fetch_add(1, Ordering::SeqCst);
        let ticket = Ticket { activity: slot.activity.clone(), consumed: false };
        if prev >= self.config.max_queue {
            drop(ticket);
            self.stats.record_rejected();
            return Err(SchedError::Busy);
        }
        metrics::gauge!("engine_queue_depth", "model" => entry.name.display_short()).set((prev + 1) as f64);
        Ok(ticket)
    }

    /// The loaded model for `entry`, loading it (and evicting idle ones) if needed.
    pub async fn acquire(
        &self,
        entry: &ModelEntry,
        num_ctx: Option<u32>,
    ) -> Result<(Arc<Runner>, Duration), SchedError> {
        let key = entry.name.to_string();
        let wanted_ctx = num_ctx.unwrap_or(self.config.num_ctx).max(1);
        let slot = self.slot(&key);
        let start = Instant::now();
        loop {
            if self.shutdown.is_cancelled() {
                return Err(SchedError::ShuttingDown);
            }
            if let Some(r) = self.find(&entry.name) {
                // A different context size needs a reload (as in Ollama), unless it is in use.
                let same = r.digest_matches(entry) && (num_ctx.is_none() || r.requested_ctx_matches(wanted_ctx));
                if same || r.busy_besides_caller() {
                    self.touch(&r);
                    return Ok((r, Duration::ZERO));
                }
                self.unload_key(&key);
            }
            let _loading = slot.load.lock().await;
            if self.find(&entry.name).is_some() {
                continue;
            }
            let runner = self.load(entry, wanted_ctx, slot.activity.clone()).await?;
            self.runners.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), runner.clone());
            metrics::gauge!("engine_loaded_models")
                .set(self.runners.lock().unwrap_or_else(|e| e.into_inner()).len() as f64);
            return Ok((runner, start.elapsed()));
        }
    }

    async fn load(&self, entry: &ModelEntry, num_ctx: u32, activity: Arc<Activity>) -> Result<Arc<Runner>, SchedError> {
        let path: PathBuf = entry.model_path().ok_or_else(|| SchedError::Load("the model has no GGUF layer".into()))?;
        let digest = entry.model_digest().unwrap_or_default().to_owned();
        let header = self.store.gguf(&path, &digest)?;
        let file_size = std::fs::metadata(&path).map_err(StoreError::from)?.len();
        let embedding = header.is_embedding();
        let ctx_train = header.context_length().unwrap_or(u64::from(num_ctx)).max(1);
        let n_ctx = u64::from(num_ctx).min(ctx_train) as u32;
        let parallel = if embedding { 1 } else { self.config.parallel.max(1) };
        let size = file_size.saturating_add(kv_bytes(&header, n_ctx).saturating_mul(parallel as u64));
        self.make_room(size).await?;
        let opts = LoadOptions { num_ctx: n_ctx, parallel, threads: self.config.threads, embedding };
        let stats = self.stats.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let loaded = Loaded::load(&path, &opts, stats, activity);
            (loaded, opts)
        })
        .await
        .map_err(|e| SchedError::Load(e.to_string()))?;
        let loaded = loaded.0.map_err(SchedError::Load)?;
        tracing::info!(model = %entry.name.display_short(), n_ctx, parallel, size, "model loaded");
        let now = Instant::now();
        Ok(Arc::new(Runner {
            loaded,
            entry: entry.clone(),
            header,
            key: entry.name.to_string(),
            size,
            num_ctx: n_ctx,
            embedding,
            state: Mutex::new(RunnerState {
                keep_alive: self.config.keep_alive,
                last_used: now,
                last_used_wall: SystemTime::now(),
            }),
        }))
    }

    /// Evicts idle models (least recently used first) until `size` more bytes fit the budget;
    /// waits while busy models hold the memory.
    async fn make_room(&self, size: u64) -> Result<(), SchedError> {
        let budget = self.config.memory_budget;
        if size > budget {
            // Evicting the others would not make it fit.
            return Err(SchedError::TooLarge { needed: size, budget });
        }
        loop {
            let notified = self.changed.notified();
            let runners = self.loaded();
            let used: u64 = runners.iter().map(|r| r.size).sum();
            if used.saturating_add(size) <= budget {
                return Ok(());
            }
            let victim = runners.iter().filter(|r| !r.busy()).min_by_key(|r| r.last_used());
            match victim {
                Some(v) => {
                    tracing::info!(model = %v.entry.name.display_short(), "evicting an idle model to make room");
                    self.unload_key(&v.key);
                }
                None => tokio::select! {
                    _ = notified => {}
                    _ = self.shutdown.cancelled() => return Err(SchedError::ShuttingDown),
                },
            }
        }
    }

    fn touch(&self, r: &Runner) {
        let mut s = r.state.lock().unwrap_or_else(|e| e.into_inner());
        s.last_used = Instant::now();
        s.last_used_wall = SystemTime::now();
    }

    /// A request is done with `r`: its keep-alive starts now (zero unloads an idle model at once).
    pub fn release(&self, r: &Arc<Runner>, keep_alive: Option<KeepAlive>) {
        {
            let mut s = r.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(k) = keep_alive {
                s.keep_alive = k;
            }
            s.last_used = Instant::now();
            s.last_used_wall = SystemTime::now();
        }
        let zero = r.state.lock().unwrap_or_else(|e| e.into_inner()).keep_alive.is_zero();
        if zero && !r.busy() {
            self.unload_if_same(r);
        }
        self.changed.notify_waiters();
    }

    /// Unloads `name` if it is loaded; returns whether it was.
    pub fn unload(&self, name: &ModelName) -> bool {
        self.unload_key(&name.to_string())
    }

    fn unload_if_same(&self, r: &Arc<Runner>) {
        let mut map = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&r.key).is_some_and(|cur| Arc::ptr_eq(cur, r)) {
            map.remove(&r.key);
            tracing::info!(model = %r.entry.name.display_short(), "model unloaded");
        }
        metrics::gauge!("engine_loaded_models").set(map.len() as f64);
    }

    fn unload_key(&self, key: &str) -> bool {
        let removed = {
            let mut map = self.runners.lock().unwrap_or_else(|e| e.into_inner());
            let r = map.remove(key);
            metrics::gauge!("engine_loaded_models").set(map.len() as f64);
            r
        };
        if let Some(r) = &removed {
            tracing::info!(model = %r.entry.name.display_short(), "model unloaded");
        }
        self.changed.notify_waiters();
        removed.is_some()
    }

    fn expire(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for r in self.loaded() {
            if r.busy() {
                continue;
            }
            match r.deadline() {
                Some(d) if d <= now => {
                    self.unload_if_same(&r);
                }
                Some(d) => next = Some(next.map_or(d, |n| n.min(d))),
                None => {}
            }
        }
        next
    }

    pub fn unload_all(&self) {
        self.runners.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Runner {
    fn digest_matches(&self, entry: &ModelEntry) -> bool {
        self.entry.model_digest() == entry.model_digest()
    }

    fn requested_ctx_matches(&self, wanted: u32) -> bool {
        let train = self.header.context_length().unwrap_or(u64::from(wanted));
        u64::from(wanted).min(train) as u32 == self.num_ctx
    }
}

/// Unloads models whose keep-alive ran out, waking at the next deadline, when something changed,
/// and at least every second while models are loaded (a worker finishing after its client left
/// does not notify).
async fn reaper(sched: Arc<Scheduler>, shutdown: CancellationToken) {
    loop {
        let notified = sched.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = sched.expire();
        let idle_wait = if sched.loaded().is_empty() { Duration::from_secs(3600) } else { Duration::from_secs(1) };
        let wait = next.map_or(idle_wait, |n| n.saturating_duration_since(Instant::now()).min(idle_wait));
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            _ = &mut notified => {}
            _ = shutdown.cancelled() => {
                sched.unload_all();
                return;
            }
        }
    }
}

/// The KV cache of one context: two f16 tensors of `n_ctx × kv width` per layer. Saturating: the
/// figures come from the file, and an absurd one must mean "too big", not an overflow.
fn kv_bytes(h: &GgufFile, n_ctx: u32) -> u64 {
    let layers = h.arch_u64("block_count").unwrap_or(1);
    let embd = h.embedding_length().unwrap_or(0);
    let heads = h.arch_u64("attention.head_count").unwrap_or(1).max(1);
    let kv_heads = h.arch_u64("attention.head_count_kv").unwrap_or(heads);
    let width =
        |key: &str| h.arch_u64(key).map_or(embd.saturating_mul(kv_heads) / heads, |n| n.saturating_mul(kv_heads));
    let kv = width("attention.key_length").saturating_add(width("attention.value_length"));
    u64::from(n_ctx).saturating_mul(layers).saturating_mul(kv).saturating_mul(2)
}
