//! What both HTTP faces (Ollama's and OpenAI's) share: finding the model, admitting the request,
//! rendering the prompt, starting the generation, and keeping the model's keep-alive right.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::llm::{EmbedJob, Embeddings, Event, GenerateJob, Job};
use crate::name::ModelName;
use crate::options::{self, GenOptions};
use crate::sched::{KeepAlive, Runner, SchedError, Scheduler};
use crate::store::{ModelEntry, PARAMS_MEDIA_TYPE, SYSTEM_MEDIA_TYPE, Store, TEMPLATE_MEDIA_TYPE};
use ollamanet_model_format::template::{Prompt, TemplateError, TemplateMessage};

/// A failure with the HTTP status Ollama would answer, and for the failures Ollama has no
/// status of its own for (a registry that is down, a template over its budget) a stable code.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub message: String,
    pub code: Option<&'static str>,
}

impl Failure {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), code: None }
    }

    pub fn coded(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), code: Some(code) }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
}

impl From<SchedError> for Failure {
    fn from(e: SchedError) -> Self {
        let status = match &e {
            SchedError::Busy | SchedError::ShuttingDown => 503,
            _ => 500,
        };
        Failure::new(status, e.to_string())
    }
}

pub struct EngineState {
    pub config: EngineConfig,
    pub store: Arc<Store>,
    pub sched: Arc<Scheduler>,
    pub registry: crate::registry::Registry,
    pub shutdown: CancellationToken,
    pub pulls: crate::registry::Pulls,
    pub templates: crate::templates::Templates,
}

/// The prompt of a generation, before the template.
pub enum PromptInput {
    Chat { messages: Vec<TemplateMessage>, tools: Option<Value> },
    Generate { prompt: String, system: Option<String>, raw: bool },
}

pub struct GenRequest {
    pub model: String,
    pub input: PromptInput,
    pub options: Map<String, Value>,
    pub format: Option<Value>,
    pub keep_alive: Option<Value>,
}

/// A running generation: its events, and what the final object needs.
pub struct Generation {
    pub events: mpsc::Receiver<Event>,
    pub load_duration: Duration,
    pub started: Instant,
    pub guard: ReleaseGuard,
}

/// Starts the keep-alive of the model when the request ends, however it ends.
pub struct ReleaseGuard {
    sched: Arc<Scheduler>,
    runner: Option<Arc<Runner>>,
    keep_alive: Option<KeepAlive>,
}

impl ReleaseGuard {
    /// Releases now (before the final object goes out, so that `keep_alive: 0` has unloaded the
    /// model by the time the client sees `done`).
    pub fn release(&mut self) {
        if let Some(r) = self.runner.take() {
            self.sched.release(&r, self.keep_alive);
        }
    }
}

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// Result of a request with nothing to generate (an empty prompt or message list).
pub enum Preload {
    Loaded { load_duration: Duration },
    Unloaded,
}

impl EngineState {
    /// The store entry for `model`, or Ollama's 400/404.
    pub async fn entry(&self, model: &str) -> Result<ModelEntry, Failure> {
        if model.trim().is_empty() {
            return Err(Failure::bad_request("model is required"));
        }
        let not_found = || Failure::new(404, format!("model \"{model}\" not found, try pulling it first"));
        let name = ModelName::parse(model).map_err(|_| not_found())?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.get(&name))
            .await
            .map_err(|e| Failure::internal(e.to_string()))?
            .map_err(|e| Failure::internal(e.to_string()))?
            .ok_or_else(not_found)
    }

    pub fn keep_alive(v: Option<&Value>) -> Result<Option<KeepAlive>, Failure> {
        v.filter(|v| !v.is_null()).map(options::keep_alive).transpose().map_err(Failure::bad_request)
    }

    /// Loads (or, with `keep_alive: 0`, unloads) a model without generating.
    pub async fn preload(
        &self,
        model: &str,
        keep_alive: Option<&Value>,
        options: &Map<String, Value>,
    ) -> Result<Preload, Failure> {
        let entry = self.entry(model).await?;
        let ka = Self::keep_alive(keep_alive)?;
        if ka.is_some_and(KeepAlive::is_zero) {
            self.sched.unload(&entry.name);
            return Ok(Preload::Unloaded);
        }
        let opts = self.options(&entry, options)?;
        let ticket = self.sched.admit(&entry)?;
        let (runner, load_duration) = self.sched.acquire(&entry, opts.num_ctx).await?;
        drop(ticket);
        self.sched.release(&runner, ka);
        Ok(Preload::Loaded { load_duration })
    }

    /// The model's defaults (its `params` layer) overlaid with the request's options.
    pub fn options(&self, entry: &ModelEntry, request: &Map<String, Value>) -> Result<GenOptions, Failure> {
        let mut opts = GenOptions::default();
        if entry.manifest.layer(PARAMS_MEDIA_TYPE).is_some() {
            options::apply(&mut opts, &entry.params()).map_err(Failure::bad_request)?;
        }
        options::apply(&mut opts, request).map_err(Failure::bad_request)?;
        Ok(opts)
    }

    pub async fn generate(&self, req: GenRequest) -> Result<Generation, Failure> {
        let started = Instant::now();
        let entry = self.entry(&req.model).await?;
        let keep_alive = Self::keep_alive(req.keep_alive.as_ref())?;
        let opts = self.options(&entry, &req.options)?;
        let grammar = grammar_for(req.format.as_ref())?;
        let ticket = self.sched.admit(&entry)?;
        let (runner, load_duration) = self.sched.acquire(&entry, opts.num_ctx).await?;
        let mut guard = ReleaseGuard { sched: self.sched.clone(), runner: Some(runner.clone()), keep_alive };
        if runner.embedding {
            guard.keep_alive = None;
            return Err(Failure::bad_request(format!("\"{}\" does not support generate", req.model)));
        }
        let (prompt, add_special) = self.render_prompt(&runner, &entry, req.input).await?;
        tracing::debug!(model = %entry.name.display_short(), prompt_len = prompt.len(), "generation");
        let (tx, rx) = mpsc::channel(64);
        let job = GenerateJob {
            prompt,
            add_special,
            sampling: opts.sampling,
            num_predict: opts.num_predict,
            num_keep: opts.num_keep,
            stop: opts.stop,
            grammar,
            events: tx,
            cancel: self.shutdown.child_token(),
        };
        runner.submit(Job::Generate(job), ticket).map_err(Failure::internal)?;
        Ok(Generation { events: rx, load_duration, started, guard })
    }

    /// Embeds `inputs` (raw vectors; callers normalise).
    pub async fn embed(
        &self,
        model: &str,
        inputs: Vec<String>,
        truncate: bool,
        options: &Map<String, Value>,
        keep_alive: Option<&Value>,
    ) -> Result<(Embeddings, Duration), Failure> {
        let entry = self.entry(model).await?;
        let ka = Self::keep_alive(keep_alive)?;
        let opts = self.options(&entry, options)?;
        let ticket = self.sched.admit(&entry)?;
        let (runner, load_duration) = self.sched.acquire(&entry, opts.num_ctx).await?;
        let mut guard = ReleaseGuard { sched: self.sched.clone(), runner: Some(runner.clone()), keep_alive: ka };
        if !runner.embedding {
            guard.keep_alive = None;
            return Err(Failure::bad_request(format!("\"{model}\" does not support embeddings")));
        }
        let (tx, rx) = oneshot::channel();
        runner.submit(Job::Embed(EmbedJob { inputs, truncate, reply: tx }), ticket).map_err(Failure::internal)?;
        let result = rx.await.map_err(|_| Failure::internal("the embedding worker stopped"))?;
        guard.release();
        let embeddings = result.map_err(Failure::bad_request)?;
        Ok((embeddings, load_duration))
    }
}

/// `format`: `"json"` → a JSON grammar; a JSON Schema object → llama.cpp's schema grammar.
fn grammar_for(format: Option<&Value>) -> Result<Option<String>, Failure> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(JSON_GRAMMAR.to_owned())),
        Some(Value::Object(_)) => {
            let schema = format.map(Value::to_string).unwrap_or_default();
            llama_cpp_2::json_schema_to_grammar(&schema)
                .map(Some)
                .map_err(|e| Failure::bad_request(format!("invalid JSON schema in format: {e}")))
        }
        Some(other) => {
            Err(Failure::bad_request(format!("invalid format: {other}; expected \"json\" or a JSON schema")))
        }
    }
}

/// JSON text (an object at the top level), with bounded whitespace so that a model cannot pad
/// forever.
const JSON_GRAMMAR: &str = r#"root ::= "{" ws (member ("," ws member)*)? "}"
member ::= string ":" ws value
value ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws (member ("," ws member)*)? "}" ws
array ::= "[" ws (value ("," ws value)*)? "]" ws
string ::= "\"" char* "\"" ws
char ::= [^"\\\x00-\x1f] | "\\" ["\\/bfnrt] | "\\u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F]
number ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})? ws
ws ::= | " " | "\n" [ \t]{0,16}
"#;

/// Whether a template is Hugging Face Jinja (Ollama's own templates are Go templates, which this
/// engine does not render).
fn is_jinja(t: &str) -> bool {
    !t.contains("{{ .") && !t.contains("{{- .") && (t.contains("messages") || t.contains("{%"))
}

impl EngineState {
    /// Renders the prompt; returns it and whether the tokenizer should add BOS.
    async fn render_prompt(
        &self,
        runner: &Arc<Runner>,
        entry: &ModelEntry,
        input: PromptInput,
    ) -> Result<(String, bool), Failure> {
        let loaded = &runner.loaded;
        // The model's layers are files.
        let read_entry = entry.clone();
        let (messages, tools, layer) = match tokio::task::spawn_blocking(move || conversation(&read_entry, input))
            .await
            .map_err(|e| Failure::internal(e.to_string()))?
        {
            Conversation::Raw(prompt) => return Ok((prompt, loaded.add_bos)),
            Conversation::Messages { messages, tools, template } => (messages, tools, template),
        };
        let template = layer.or_else(|| loaded.chat_template.clone());
        let mut prompt = Prompt {
            template: template.clone().unwrap_or_default(),
            messages,
            tools,
            bos_token: loaded.bos.clone(),
            eos_token: loaded.eos.clone(),
            fuel: self.config.template_fuel,
        };
        if template.is_some() {
            match self.templates.render(&prompt).await {
                Ok(text) => {
                    let add = loaded.add_bos && (loaded.bos.is_empty() || !text.starts_with(&loaded.bos));
                    return Ok((text, add));
                }
                Err(e @ TemplateError::Limit(_)) => return Err(Failure::coded(400, "template_limit", e.to_string())),
                Err(e) => tracing::debug!(error = %e, "the chat template did not render; using llama.cpp's"),
            }
        }
        let pairs: Vec<(String, String)> =
            std::mem::take(&mut prompt.messages).into_iter().map(|m| (m.role, m.content)).collect();
        let text = loaded
            .builtin_chat(template.as_deref(), &pairs)
            .or_else(|_| loaded.builtin_chat(None, &pairs))
            .map_err(|e| Failure::internal(format!("cannot apply the chat template: {e}")))?;
        Ok((text, loaded.add_bos))
    }
}

/// What a prompt is made of, before the template.
enum Conversation {
    /// A raw generation: the prompt as given.
    Raw(String),
    /// Messages (the model's system prompt added where the request has none), and the model's
    /// own Jinja template layer if it has one.
    Messages { messages: Vec<TemplateMessage>, tools: Option<Value>, template: Option<String> },
}

fn conversation(entry: &ModelEntry, input: PromptInput) -> Conversation {
    let (messages, tools) = match input {
        PromptInput::Generate { prompt, raw: true, .. } => return Conversation::Raw(prompt),
        PromptInput::Generate { prompt, system, raw: false } => {
            let mut m = Vec::new();
            if let Some(s) = system.or_else(|| entry.text_layer(SYSTEM_MEDIA_TYPE)).filter(|s| !s.is_empty()) {
                m.push(TemplateMessage::new("system", &s));
            }
            m.push(TemplateMessage::new("user", &prompt));
            (m, None)
        }
        PromptInput::Chat { mut messages, tools } => {
            if !messages.iter().any(|m| m.role == "system")
                && let Some(s) = entry.text_layer(SYSTEM_MEDIA_TYPE).filter(|s| !s.is_empty())
            {
                messages.insert(0, TemplateMessage::new("system", &s));
            }
            (messages, tools)
        }
    };
    let template = entry.text_layer(TEMPLATE_MEDIA_TYPE).filter(|t| is_jinja(t));
    Conversation::Messages { messages, tools, template }
}
