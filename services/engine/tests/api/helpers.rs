//! Starts the engine on a free port with its own data directory, and talks to it over HTTP.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kit::config::Platform;
use kit::testing::TestInfra;
use ollamanet_engine::{EngineConfig, EngineStats};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const TINY: &str = "tiny:latest";

pub struct TestEngine {
    pub base: String,
    pub client: reqwest::Client,
    pub stats: EngineStats,
    pub config: EngineConfig,
    pub shutdown: CancellationToken,
    _infra: TestInfra,
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Settings for tests: one thread per worker (tests run side by side on two cores), a small
/// context.
pub fn test_config() -> EngineConfig {
    // The engine crate has no binary to run as its template worker.
    EngineConfig { threads: Some(1), num_ctx: 512, template_isolation: false, ..EngineConfig::default() }
}

pub struct Res {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestEngine {
    pub async fn spawn() -> Self {
        Self::with_config(test_config()).await
    }

    /// An engine with the tiny random model imported as `tiny`.
    pub async fn with_tiny() -> Self {
        Self::tiny_with(|_| {}).await
    }

    pub async fn tiny_with(f: impl FnOnce(&mut EngineConfig)) -> Self {
        let mut config = test_config();
        f(&mut config);
        let engine = Self::with_config(config).await;
        engine.import_tiny("tiny", 1).await;
        engine
    }

    pub async fn with_config(config: EngineConfig) -> Self {
        // `RUST_LOG=debug` shows the engine's and llama.cpp's logs.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let infra = TestInfra::new().await;
        let platform = Platform::new(infra.config.clone(), "engine").expect("platform");
        let shutdown = CancellationToken::new();
        let engine = ollamanet_engine::start(&platform, &config, shutdown.clone()).await.expect("engine starts");
        let app = kit::http::ops_routes("engine", engine.handle.readiness.clone(), None).merge(engine.handle.router);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(kit::server::serve(listener, app, shutdown.clone(), kit::server::ServeOptions::default()));
        kit::tls::install_crypto_provider();
        Self { base, client: reqwest::Client::new(), stats: engine.stats, config, shutdown, _infra: infra }
    }

    pub fn data_dir(&self) -> PathBuf {
        self._infra.data_dir().to_path_buf()
    }

    /// Writes the tiny model with `seed` and imports it as `name`.
    pub async fn import_tiny(&self, name: &str, seed: u64) {
        let file = self.data_dir().join(format!("tiny-{seed}.gguf"));
        ollamanet_engine::write_tiny_llama(&file, seed).expect("tiny model written");
        ollamanet_engine::import(&self.data_dir(), &self.config, &file, name).await.expect("tiny model imported");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Res {
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res { status, headers, body, text }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Res {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    pub async fn get(&self, path: &str) -> Res {
        self.send(self.client.get(self.url(path))).await
    }

    /// Posts and splits an NDJSON answer into its objects.
    pub async fn ndjson(&self, path: &str, body: &Value) -> (Res, Vec<Value>) {
        let res = self.post(path, body).await;
        let lines = res
            .text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        (res, lines)
    }

    /// The full text of a deterministic (non-streamed) generation.
    pub async fn complete(&self, prompt: &str, options: Value) -> Value {
        let res = self
            .post(
                "/api/generate",
                &serde_json::json!({"model": TINY, "prompt": prompt, "stream": false, "options": options}),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        res.body
    }

    /// Opens a streaming request and returns the response once its first chunk arrived.
    pub async fn open_stream(&self, path: &str, body: &Value) -> (reqwest::Response, String) {
        let mut res = self.client.post(self.url(path)).json(body).send().await.expect("request sent");
        assert_eq!(res.status(), 200);
        let first = res.chunk().await.expect("chunk read").expect("a first chunk");
        (res, String::from_utf8_lossy(&first).into_owned())
    }
}

/// Waits until `cond` holds, checking every 10 ms, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
