//! The embedded engine: an Ollama-compatible model server on llama.cpp (`llama-cpp-2`).
//! See `docs/engine.md`.

mod bert;
mod config;
mod engine;
mod guard;
mod http;
mod llm;
mod models;
mod name;
mod openai;
mod options;
mod registry;
mod sched;
mod stats;
pub mod store;
mod templates;
mod tiny;

use std::sync::Arc;

use kit::config::Platform;
use kit::http::Readiness;
use kit::service::ServiceHandle;
use tokio_util::sync::CancellationToken;

pub use bert::import_safetensors_dir;
pub use config::EngineConfig;
pub use guard::require_key;
pub use models::{ModelSummary, demo, import, import_safetensors, list, pull, remove};
pub use name::ModelName;
pub use registry::Progress;
pub use tiny::{write_tiny_llama, write_tiny_llama_with_template};

pub const NAME: &str = "engine";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("llama.cpp: {0}")]
    Backend(String),
    #[error(transparent)]
    Pull(#[from] registry::PullError),
    #[error(transparent)]
    Name(#[from] name::InvalidName),
    #[error(transparent)]
    Gguf(#[from] ollamanet_model_format::gguf::GgufError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// A started engine.
pub struct Engine {
    pub handle: ServiceHandle,
    pub stats: EngineStats,
}

/// What the engine has done and holds, for tests and dashboards (`/metrics` has the same).
#[derive(Clone)]
pub struct EngineStats {
    counters: Arc<stats::Stats>,
    sched: Arc<sched::Scheduler>,
}

impl EngineStats {
    /// Tokens sampled by every worker since start.
    pub fn tokens_generated(&self) -> u64 {
        self.counters.tokens_generated()
    }

    /// Generations that stopped because their client went away (or the engine shut down).
    pub fn requests_cancelled(&self) -> u64 {
        self.counters.requests_cancelled()
    }

    /// Requests refused because a model's queue was full.
    pub fn requests_rejected(&self) -> u64 {
        self.counters.requests_rejected()
    }

    /// Requests waiting for `model` (for it to load, or for a free worker).
    pub fn queue_depth(&self, model: &str) -> usize {
        ModelName::parse(model).map_or(0, |n| self.sched.queue_depth(&n))
    }

    /// Requests a worker of `model` is running now.
    pub fn running(&self, model: &str) -> usize {
        ModelName::parse(model).map_or(0, |n| self.sched.running(&n))
    }

    /// Names (`model:tag`) of the models in memory.
    pub fn loaded_models(&self) -> Vec<String> {
        self.sched.loaded().iter().map(|r| r.entry.name.display_short()).collect()
    }
}

/// Opens the model store and serves the Ollama and OpenAI APIs. Models load on first use.
pub async fn start(
    platform: &Platform,
    config: &EngineConfig,
    shutdown: CancellationToken,
) -> Result<Engine, EngineError> {
    config.validate().map_err(EngineError::Config)?;
    llm::backend().map_err(EngineError::Backend)?;
    let dir = config.models_dir(&platform.config.data_dir);
    let store = Arc::new(store::Store::open(&dir, config.ollama_models_dir.as_deref())?);
    let counters = Arc::new(stats::Stats::default());
    let keep_alive = sched::KeepAlive::For(config.keep_alive);
    let sched_config = sched::SchedConfig {
        parallel: config.parallel,
        max_queue: config.max_queue,
        keep_alive,
        memory_budget: config.memory_budget(),
        num_ctx: config.num_ctx,
        threads: config.threads(),
    };
    let scheduler = sched::Scheduler::new(sched_config, store.clone(), counters.clone(), shutdown.clone());
    let registry = registry::Registry::new(config)?;
    let state = Arc::new(engine::EngineState {
        config: config.clone(),
        store,
        sched: scheduler.clone(),
        registry,
        shutdown,
        pulls: registry::Pulls::default(),
        templates: templates::Templates::new(config).map_err(EngineError::Config)?,
    });
    let router = kit::http::service_layers(http::routes().with_state(state), NAME);
    tracing::info!(models_dir = %dir.display(), "engine started");
    Ok(Engine {
        handle: ServiceHandle { name: NAME, router, readiness: Readiness::default(), openapi: openapi() },
        stats: EngineStats { counters, sched: scheduler },
    })
}

/// The engine's routes, described (they are Ollama's and OpenAI's; see their documentation for
/// the bodies).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::{InfoBuilder, PathsBuilder, ResponseBuilder};
    let routes: &[(&str, HttpMethod, &str)] = &[
        ("/", HttpMethod::Get, "Liveness: `Ollama is running`"),
        ("/api/version", HttpMethod::Get, "The Ollama API version"),
        ("/api/tags", HttpMethod::Get, "Local models"),
        ("/api/show", HttpMethod::Post, "Model details, template, parameters, model_info"),
        ("/api/ps", HttpMethod::Get, "Models in memory"),
        ("/api/generate", HttpMethod::Post, "Completion (NDJSON stream); empty prompt loads/unloads"),
        ("/api/chat", HttpMethod::Post, "Chat completion (NDJSON stream); no messages loads/unloads"),
        ("/api/embed", HttpMethod::Post, "Embeddings (L2-normalised)"),
        ("/api/embeddings", HttpMethod::Post, "Legacy single embedding"),
        ("/api/pull", HttpMethod::Post, "Download a model from a registry (progress stream)"),
        ("/api/delete", HttpMethod::Delete, "Delete a model"),
        ("/api/copy", HttpMethod::Post, "Copy a model under another name"),
        ("/api/create", HttpMethod::Post, "Create a model from an uploaded GGUF blob or another model"),
        ("/api/blobs/{digest}", HttpMethod::Post, "Upload a blob (HEAD: does it exist)"),
        ("/v1/chat/completions", HttpMethod::Post, "OpenAI chat completions (SSE)"),
        ("/v1/completions", HttpMethod::Post, "OpenAI completions (SSE)"),
        ("/v1/embeddings", HttpMethod::Post, "OpenAI embeddings"),
        ("/v1/models", HttpMethod::Get, "OpenAI model list"),
    ];
    let mut paths = PathsBuilder::new();
    for (path, method, summary) in routes {
        let op = OperationBuilder::new()
            .summary(Some(*summary))
            .tag("engine")
            .response("200", ResponseBuilder::new().description("Ollama's response"))
            .build();
        paths = paths.path(*path, PathItem::new(method.clone(), op));
    }
    utoipa::openapi::OpenApiBuilder::new()
        .info(InfoBuilder::new().title("OllamaNet engine").version(env!("CARGO_PKG_VERSION")))
        .paths(paths)
        .build()
}
