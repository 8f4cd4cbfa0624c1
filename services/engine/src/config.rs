//! The engine's settings (`[engine]` in the configuration file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ollamanet_model_format::template;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// The model store. Default: `<data_dir>/models`.
    pub models_dir: Option<PathBuf>,
    /// An existing Ollama store (e.g. `~/.ollama/models`) whose models are served read-only.
    pub ollama_models_dir: Option<PathBuf>,
    /// Where `pull` fetches models whose name has the default host (`registry.ollama.ai`).
    pub registry_url: String,
    /// PEM certificates trusted for registries besides the system's trust store (a private
    /// mirror's own CA).
    pub registry_ca_file: Option<PathBuf>,
    /// How long a registry may take to answer a request, and stay silent during a download.
    #[serde(with = "kit::config::duration")]
    pub registry_timeout: Duration,
    /// Let a registry at a private address redirect to other private addresses (a mirror that
    /// hands its blobs to an object store of the same network). Off: a redirect may reach a
    /// private, loopback or link-local address only if it is the registry's own.
    pub registry_private_redirects: bool,
    /// Instructions a chat template may run for one request (minijinja's fuel).
    pub template_fuel: u64,
    /// Render chat templates in confined worker processes (the server's own binary, run as
    /// `render-templates`). Off only for a library that embeds the engine without that binary.
    pub template_isolation: bool,
    /// The program run as a template worker. Default: this program.
    pub template_program: Option<PathBuf>,
    /// Address space of a template worker, in bytes: a template that needs more fails its
    /// request.
    pub template_memory: u64,
    /// How long a template may take to render.
    #[serde(with = "kit::config::duration")]
    pub template_timeout: Duration,
    /// Requests one loaded model serves at once (each has its own context and KV cache).
    pub parallel: usize,
    /// Requests that may wait per model; past it the engine answers 503.
    pub max_queue: usize,
    /// How long a model stays loaded after its last request (requests may set their own).
    #[serde(with = "kit::config::duration")]
    pub keep_alive: Duration,
    /// Bytes of memory loaded models (weights and KV caches) may take. Default: 3/4 of RAM.
    pub memory_budget: Option<u64>,
    /// Context length when a request does not set `num_ctx` (capped at the model's own).
    pub num_ctx: u32,
    /// CPU threads per worker. Default: the number of cores.
    pub threads: Option<usize>,
    /// The credential every request to the engine's own listener (`serve --only engine`) must
    /// carry, as `Authorization: Bearer <key>`; inference services present it. Required unless
    /// that listener is on loopback. Unused when the engine runs beside the inference service,
    /// which calls it in-process.
    pub key: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            models_dir: None,
            ollama_models_dir: None,
            registry_url: "https://registry.ollama.ai".into(),
            registry_ca_file: None,
            registry_timeout: Duration::from_secs(20),
            registry_private_redirects: false,
            template_fuel: template::DEFAULT_FUEL,
            template_isolation: true,
            template_program: None,
            template_memory: 512 << 20,
            template_timeout: Duration::from_secs(10),
            parallel: 1,
            max_queue: 512,
            keep_alive: Duration::from_secs(300),
            memory_budget: None,
            num_ctx: 4096,
            threads: None,
            key: None,
        }
    }
}

impl EngineConfig {
    pub fn models_dir(&self, data_dir: &Path) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(|| data_dir.join("models"))
    }

    pub fn memory_budget(&self) -> u64 {
        self.memory_budget.unwrap_or_else(|| physical_memory().map_or(8 << 30, |m| m / 4 * 3))
    }

    pub fn threads(&self) -> i32 {
        let n = self.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(4, |n| n.get()));
        i32::try_from(n.max(1)).unwrap_or(i32::MAX)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.parallel == 0 || self.parallel > 64 {
            return Err("engine.parallel must be 1 to 64".into());
        }
        if self.num_ctx < 16 {
            return Err("engine.num_ctx must be at least 16".into());
        }
        if !(self.registry_url.starts_with("http://") || self.registry_url.starts_with("https://")) {
            return Err("engine.registry_url must be an http(s) URL".into());
        }
        if self.registry_timeout.is_zero() {
            return Err("engine.registry_timeout must be more than zero".into());
        }
        if self.template_fuel == 0 {
            return Err("engine.template_fuel must be more than zero".into());
        }
        if self.template_memory < 64 << 20 {
            return Err("engine.template_memory must be at least 64 MiB".into());
        }
        if self.template_timeout.is_zero() {
            return Err("engine.template_timeout must be more than zero".into());
        }
        if let Some(key) = &self.key {
            crate::guard::check_key(key).map_err(|e| format!("engine.key {e}"))?;
        }
        Ok(())
    }
}

/// Total RAM from `/proc/meminfo` (Linux).
fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
