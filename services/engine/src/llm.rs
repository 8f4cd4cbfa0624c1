//! llama.cpp: loading a model, and the blocking workers that run generations and embeddings.
//!
//! A loaded model is one `LlamaModel` shared by `parallel` workers; each worker is an OS thread
//! owning its own `LlamaContext` (its own KV cache), taking jobs from the model's queue. A worker
//! checks after every token whether its client is still there, so a dropped stream stops
//! decoding within one token.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::stats::Stats;

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
/// Creating contexts of one model concurrently is unsound in llama.cpp (it mutates the model).
static CONTEXT_CREATION: Mutex<()> = Mutex::new(());

/// The process-wide llama.cpp backend, with llama.cpp's logs sent to `tracing`.
pub fn backend() -> Result<&'static LlamaBackend, String> {
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Sampling settings of one request (Ollama's option names and defaults).
#[derive(Debug, Clone)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub seed: Option<u32>,
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            seed: None,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoneReason {
    Stop,
    Length,
}

impl DoneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DoneReason::Stop => "stop",
            DoneReason::Length => "length",
        }
    }
}

/// The counters of a finished generation.
#[derive(Debug, Clone)]
pub struct Finished {
    pub reason: DoneReason,
    pub prompt_eval_count: u64,
    pub prompt_eval_duration: Duration,
    pub eval_count: u64,
    pub eval_duration: Duration,
    /// The prompt and generated tokens (Ollama's deprecated `context`).
    pub context: Vec<i32>,
}

#[derive(Debug)]
pub enum Event {
    Text(String),
    Done(Finished),
    Error(String),
}

pub struct GenerateJob {
    pub prompt: String,
    /// Whether to let the tokenizer add BOS (false when the template already wrote it).
    pub add_special: bool,
    pub sampling: Sampling,
    /// -1: until the context is full (shifting it); -2: until it is full, no shift.
    pub num_predict: i64,
    pub num_keep: usize,
    pub stop: Vec<String>,
    pub grammar: Option<String>,
    pub events: mpsc::Sender<Event>,
    pub cancel: CancellationToken,
}

pub struct EmbedJob {
    pub inputs: Vec<String>,
    pub truncate: bool,
    pub reply: oneshot::Sender<Result<Embeddings, String>>,
}

#[derive(Debug)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_eval_count: u64,
}

pub enum Job {
    Generate(GenerateJob),
    Embed(EmbedJob),
}

pub struct LoadOptions {
    pub num_ctx: u32,
    pub parallel: usize,
    pub threads: i32,
    pub embedding: bool,
}

/// Counters one loaded model shares with its workers.
#[derive(Default)]
pub struct Activity {
    /// Jobs waiting for a worker.
    pub queued: AtomicUsize,
    /// Jobs a worker is running.
    pub running: AtomicUsize,
}

/// A model in memory and its workers. Dropping it lets the workers finish their queue and exit;
/// the model is freed when the last one has.
pub struct Loaded {
    pub model: Arc<LlamaModel>,
    pub bos: String,
    pub eos: String,
    pub add_bos: bool,
    pub chat_template: Option<String>,
    jobs: Mutex<Sender<Job>>,
    pub activity: Arc<Activity>,
}

impl Loaded {
    /// Loads the GGUF at `path` and starts the workers (blocking: call off the async runtime).
    pub fn load(path: &Path, opts: &LoadOptions, stats: Arc<Stats>, activity: Arc<Activity>) -> Result<Self, String> {
        let backend = backend()?;
        let params = LlamaModelParams::default();
        // The message goes to clients: it names the failure, never the path of the store.
        let model = Arc::new(LlamaModel::load_from_file(backend, path, &params).map_err(|e| match e {
            llama_cpp_2::LlamaModelLoadError::PathToStrError(_) => "the model's file name is not UTF-8".to_owned(),
            other => format!("llama.cpp cannot load the model: {other}"),
        })?);
        let n_ctx_train = model.n_ctx_train().max(1);
        let n_ctx = opts.num_ctx.clamp(1, n_ctx_train);
        let vocab = model.vocab();
        let n_vocab = model.n_vocab();
        // Models without a BOS/EOS token report -1; llama.cpp throws on out-of-range ids.
        let piece = |t: LlamaToken| {
            if (0..n_vocab).contains(&t.0) {
                String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned()
            } else {
                String::new()
            }
        };
        let bos = piece(vocab.bos());
        let eos = piece(vocab.eos());
        let add_bos = vocab.should_add_bos();
        let chat_template = model.chat_template(None).ok().and_then(|t| t.to_string().ok());

        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        for i in 0..opts.parallel.max(1) {
            let model = model.clone();
            let rx = rx.clone();
            let ready = ready_tx.clone();
            let stats = stats.clone();
            let activity = activity.clone();
            let embedding = opts.embedding;
            let threads = opts.threads;
            std::thread::Builder::new()
                .name(format!("llama-worker-{i}"))
                .spawn(move || worker(model, n_ctx, threads, embedding, rx, ready, stats, activity))
                .map_err(|e| e.to_string())?;
        }
        drop(ready_tx);
        for _ in 0..opts.parallel.max(1) {
            ready_rx.recv().map_err(|_| "a worker failed to start".to_owned())??;
        }
        Ok(Self { model, bos, eos, add_bos, chat_template, jobs: Mutex::new(tx), activity })
    }

    /// Queues a job. The caller has counted it in `activity.queued` (the scheduler's ticket);
    /// the worker that takes it moves it to `running`.
    pub fn submit(&self, job: Job) -> Result<(), String> {
        let sent = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).send(job);
        if sent.is_err() {
            self.activity.queued.fetch_sub(1, Ordering::SeqCst);
            return Err("the model was unloaded".into());
        }
        Ok(())
    }

    pub fn busy(&self) -> bool {
        self.activity.queued.load(Ordering::SeqCst) + self.activity.running.load(Ordering::SeqCst) > 0
    }

    /// Renders a chat with llama.cpp's built-in templates (the fallback when Jinja fails).
    pub fn builtin_chat(&self, template: Option<&str>, messages: &[(String, String)]) -> Result<String, String> {
        use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate};
        let tmpl = match template {
            Some(t) => LlamaChatTemplate::new(t).map_err(|e| e.to_string())?,
            None => LlamaChatTemplate::new("chatml").map_err(|e| e.to_string())?,
        };
        let msgs = messages
            .iter()
            .map(|(r, c)| LlamaChatMessage::new(r.clone(), c.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        self.model.apply_chat_template(&tmpl, &msgs, true).map_err(|e| e.to_string())
    }
}

#[allow(clippy::too_many_arguments)]
fn worker(
    model: Arc<LlamaModel>,
    n_ctx: u32,
    threads: i32,
    embedding: bool,
    jobs: Arc<Mutex<Receiver<Job>>>,
    ready: Sender<Result<(), String>>,
    stats: Arc<Stats>,
    activity: Arc<Activity>,
) {
    let backend = match backend() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let n_batch = if embedding { n_ctx } else { n_ctx.min(512) };
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_seq_max(1)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_embeddings(embedding);
    let ctx = {
        let _guard = CONTEXT_CREATION.lock().unwrap_or_else(|e| e.into_inner());
        model.new_context(backend, params)
    };
    let ctx = match ctx {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot create a context: {e}")));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    let mut w = Worker { model: &model, ctx, batch: LlamaBatch::new(n_batch as usize, 1), cached: Vec::new(), stats };
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else { break };
        activity.running.fetch_add(1, Ordering::SeqCst);
        activity.queued.fetch_sub(1, Ordering::SeqCst);
        match job {
            Job::Generate(job) => w.generate(job, &activity),
            Job::Embed(job) => {
                let result = w.embed(&job.inputs, job.truncate);
                activity.running.fetch_sub(1, Ordering::SeqCst);
                let _ = job.reply.send(result);
            }
        }
    }
}

struct Worker<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    /// The tokens in this context's KV cache, to reuse a common prompt prefix.
    cached: Vec<LlamaToken>,
    stats: Arc<Stats>,
}

impl Worker<'_> {
    fn generate(&mut self, job: GenerateJob, activity: &Activity) {
        let events = job.events.clone();
        let result = self.run_generation(job);
        activity.running.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(Some(done)) => {
                let _ = events.blocking_send(Event::Done(done));
            }
            Ok(None) => self.stats.record_cancelled(),
            Err(e) => {
                tracing::warn!(error = %e, "generation failed");
                let _ = events.blocking_send(Event::Error(e));
            }
        }
    }

    fn decode(&mut self) -> Result<(), String> {
        self.ctx.decode(&mut self.batch).map_err(|e| e.to_string())
    }

    /// `Ok(None)`: the client went away or the job was cancelled.
    fn run_generation(&mut self, job: GenerateJob) -> Result<Option<Finished>, String> {
        let gone = || job.events.is_closed() || job.cancel.is_cancelled();
        let model = self.model;
        let vocab = model.vocab();
        let n_ctx = self.ctx.n_ctx() as usize;
        let mut tokens = vocab.tokenize(job.prompt.as_bytes(), job.add_special, true);
        if tokens.is_empty() {
            if !(0..model.n_vocab()).contains(&vocab.bos().0) {
                return Err("the prompt has no tokens".into());
            }
            tokens.push(vocab.bos());
        }
        // An over-long prompt loses the tokens after `num_keep` (as Ollama truncates).
        let reserve = if job.num_predict > 0 { (job.num_predict as usize).min(n_ctx / 4) } else { n_ctx / 4 };
        let limit = n_ctx.saturating_sub(reserve).max(1);
        if tokens.len() > limit {
            let keep = job.num_keep.min(limit / 2);
            let drop_n = tokens.len() - limit;
            tokens.drain(keep..keep + drop_n);
        }

        // Reuse the KV cache for the prefix shared with the previous request.
        let mut prefix = self.cached.iter().zip(&tokens).take_while(|(a, b)| a == b).count();
        if prefix == tokens.len() {
            prefix -= 1;
        }
        let removed = u32::try_from(prefix).ok().and_then(|p| self.ctx.clear_kv_cache_seq(Some(0), Some(p), None).ok());
        if removed != Some(true) {
            self.ctx.clear_kv_cache();
            prefix = 0;
        }
        self.cached.truncate(prefix);

        let mut sampler = build_sampler(model, &job, n_ctx)?;
        if job.grammar.is_none() {
            let window = usize::try_from(job.sampling.repeat_last_n.max(0)).unwrap_or(0);
            sampler.accept_many(&tokens[tokens.len().saturating_sub(window)..]);
        }

        let prompt_start = Instant::now();
        let n_batch = self.ctx.n_batch() as usize;
        let mut pos = prefix;
        let mut logits_idx = 0;
        while pos < tokens.len() {
            if gone() {
                return Ok(None);
            }
            let end = (pos + n_batch).min(tokens.len());
            self.batch.clear();
            for (i, t) in tokens[pos..end].iter().enumerate() {
                let p = i32::try_from(pos + i).map_err(|e| e.to_string())?;
                self.batch.add(*t, p, &[0], pos + i == tokens.len() - 1).map_err(|e| e.to_string())?;
            }
            self.decode()?;
            self.cached.extend_from_slice(&tokens[pos..end]);
            logits_idx = self.batch.n_tokens() - 1;
            pos = end;
        }
        let prompt_eval_count = (tokens.len() - prefix) as u64;
        let prompt_eval_duration = prompt_start.elapsed();

        let eval_start = Instant::now();
        let mut n_past = tokens.len();
        let mut eval_count = 0u64;
        let mut utf8 = Utf8Buffer::default();
        let mut stops = StopMatcher::new(job.stop.clone());
        let mut generated: Vec<i32> = Vec::new();
        let send = |text: String| -> bool { text.is_empty() || job.events.blocking_send(Event::Text(text)).is_ok() };
        let reason = loop {
            if gone() {
                return Ok(None);
            }
            let token = sampler.sample(&self.ctx, logits_idx);
            if vocab.is_eog(token) {
                break DoneReason::Stop;
            }
            eval_count += 1;
            self.stats.record_token();
            generated.push(token.0);
            let text = utf8.push(&vocab.token_to_piece(token, false, None));
            let (out, hit) = stops.push(&text);
            if !send(out) {
                return Ok(None);
            }
            if hit {
                break DoneReason::Stop;
            }
            if job.num_predict > 0 && eval_count >= job.num_predict as u64 {
                break DoneReason::Length;
            }
            if n_past + 1 >= n_ctx {
                if job.num_predict == -2 {
                    break DoneReason::Length;
                }
                n_past = self.shift_context(n_past, job.num_keep)?;
            }
            self.batch.clear();
            self.batch
                .add(token, i32::try_from(n_past).map_err(|e| e.to_string())?, &[0], true)
                .map_err(|e| e.to_string())?;
            self.decode()?;
            self.cached.push(token);
            n_past += 1;
            logits_idx = 0;
        };
        let tail = if stops.hit {
            String::new()
        } else {
            let (out, hit) = stops.push(&utf8.finish());
            if hit { out } else { out + &stops.flush() }
        };
        if !send(tail) {
            return Ok(None);
        }
        let mut context: Vec<i32> = tokens.iter().map(|t| t.0).collect();
        context.extend(generated);
        Ok(Some(Finished {
            reason,
            prompt_eval_count,
            prompt_eval_duration,
            eval_count,
            eval_duration: eval_start.elapsed(),
            context,
        }))
    }

    /// Drops half of the tokens after `num_keep` from the KV cache and moves the rest down.
    fn shift_context(&mut self, n_past: usize, num_keep: usize) -> Result<usize, String> {
        let keep = num_keep.min(n_past / 2);
        let discard = (n_past - keep) / 2;
        let as_u32 = |v: usize| u32::try_from(v).map_err(|e| e.to_string());
        self.ctx
            .clear_kv_cache_seq(Some(0), Some(as_u32(keep)?), Some(as_u32(keep + discard)?))
            .map_err(|e| e.to_string())?;
        self.ctx
            .kv_cache_seq_add(
                0,
                Some(as_u32(keep + discard)?),
                Some(as_u32(n_past)?),
                -i32::try_from(discard).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
        let end = (keep + discard).min(self.cached.len());
        self.cached.drain(keep.min(end)..end);
        Ok(n_past - discard)
    }

    fn embed(&mut self, inputs: &[String], truncate: bool) -> Result<Embeddings, String> {
        let model = self.model;
        let vocab = model.vocab();
        let n_ctx = self.ctx.n_ctx() as usize;
        let mut vectors = Vec::with_capacity(inputs.len());
        let mut count = 0u64;
        for input in inputs {
            let mut tokens = vocab.tokenize(input.as_bytes(), true, true);
            if tokens.len() > n_ctx {
                if !truncate {
                    return Err("input length exceeds maximum context length".into());
                }
                let last = *tokens.last().ok_or("empty input")?;
                tokens.truncate(n_ctx);
                if vocab.should_add_eos() || vocab.should_add_sep() {
                    tokens[n_ctx - 1] = last;
                }
            }
            if tokens.is_empty() {
                return Err("the input has no tokens".into());
            }
            count += tokens.len() as u64;
            self.ctx.clear_kv_cache();
            self.cached.clear();
            self.batch.clear();
            self.batch.add_sequence(&tokens, 0, true).map_err(|e| e.to_string())?;
            self.decode()?;
            let v = match self.ctx.embeddings_seq_ith(0) {
                Ok(v) => v.to_vec(),
                Err(_) => self.ctx.embeddings_ith(self.batch.n_tokens() - 1).map_err(|e| e.to_string())?.to_vec(),
            };
            vectors.push(v);
        }
        Ok(Embeddings { vectors, prompt_eval_count: count })
    }
}

fn build_sampler(model: &LlamaModel, job: &GenerateJob, n_ctx: usize) -> Result<LlamaSampler, String> {
    let s = &job.sampling;
    let mut chain = Vec::new();
    if let Some(g) = &job.grammar {
        chain.push(LlamaSampler::grammar(model, g, "root").map_err(|e| format!("invalid grammar: {e}"))?);
    }
    let penalties = s.repeat_penalty != 1.0 || s.presence_penalty != 0.0 || s.frequency_penalty != 0.0;
    if penalties && s.repeat_last_n != 0 {
        let last_n = if s.repeat_last_n < 0 { i32::try_from(n_ctx).unwrap_or(i32::MAX) } else { s.repeat_last_n };
        chain.push(LlamaSampler::penalties(
            model.n_vocab(),
            last_n,
            s.repeat_penalty,
            s.frequency_penalty,
            s.presence_penalty,
        ));
    }
    if s.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if s.top_k > 0 {
            chain.push(LlamaSampler::top_k(s.top_k));
        }
        if s.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(s.top_p, 1));
        }
        if s.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(s.min_p, 1));
        }
        chain.push(LlamaSampler::temp(s.temperature));
        chain.push(LlamaSampler::dist(s.seed.unwrap_or_else(random_seed)));
    }
    Ok(LlamaSampler::chain_simple(chain))
}

fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u32
}

/// L2 normalisation, as Ollama returns embeddings.
pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Turns token bytes into text without splitting a UTF-8 sequence across tokens.
#[derive(Default)]
pub struct Utf8Buffer {
    pending: Vec<u8>,
}

impl Utf8Buffer {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// Holds back text that might be the start of a stop string, and cuts at the first stop string.
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    pub hit: bool,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), held: String::new(), hit: false }
    }

    /// Returns the text that can be sent now, and whether a stop string was reached (the text
    /// then ends right before it).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        if self.hit {
            return (String::new(), true);
        }
        self.held.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            let out = self.held[..at].to_owned();
            self.held.clear();
            self.hit = true;
            return (out, true);
        }
        // Keep the longest tail that is a proper prefix of a stop string.
        let mut keep = 0;
        for stop in &self.stops {
            for (i, _) in stop.char_indices().skip(1) {
                if i > keep && self.held.ends_with(&stop[..i]) {
                    keep = i;
                }
            }
        }
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_owned();
        self.held.drain(..cut);
        (out, false)
    }

    /// The held-back text, when generation ended for another reason.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_across_tokens() {
        let mut b = Utf8Buffer::default();
        let e = "é".as_bytes();
        assert_eq!(b.push(&e[..1]), "");
        assert_eq!(b.push(&e[1..]), "é");
        assert_eq!(b.push(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(b.push(&[0xe2, 0x82]), "");
        assert_eq!(b.finish(), "\u{FFFD}");
    }

    #[test]
    fn stop_strings_never_leak() {
        let mut m = StopMatcher::new(vec!["END".into(), "\n\n".into()]);
        assert_eq!(m.push("hello E"), ("hello ".into(), false));
        assert_eq!(m.push("N"), (String::new(), false));
        assert_eq!(m.push("X"), ("ENX".into(), false));
        assert_eq!(m.push("a\n"), ("a".into(), false));
        assert_eq!(m.push("\nrest"), (String::new(), true));
        let mut m = StopMatcher::new(vec!["ab".into()]);
        assert_eq!(m.push("xxa"), ("xx".into(), false));
        assert_eq!(m.flush(), "a");
        let mut m = StopMatcher::new(vec!["cd".into()]);
        assert_eq!(m.push("abcdef"), ("ab".into(), true));
    }

    #[test]
    fn normalizes() {
        let v = normalize(vec![3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
