//! Where the engine renders chat templates: in confined worker processes
//! (`ollamanet_model_format::worker`), kept alive between requests so that a render costs a
//! round trip over a pipe, not a process start.
//!
//! A worker serves one request at a time; an idle one is reused, and a request that finds none
//! starts another (the scheduler's admission already bounds how many render at once). A worker
//! that dies (a template needed more memory than `engine.template_memory`), answers nonsense,
//! or outlives `engine.template_timeout` is killed and forgotten, and its request fails with
//! [`TemplateError::Limit`]. With `engine.template_isolation = false` templates render on a
//! blocking thread of this process, as a library embedding the engine without its binary must.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use ollamanet_model_format::template::{self, Prompt, TemplateError};
use ollamanet_model_format::worker::{self, MAX_ANSWER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::config::EngineConfig;

/// Idle workers kept for the next requests; more are ended when they finish.
const MAX_IDLE: usize = 8;

pub struct Templates {
    isolation: Option<Isolation>,
    idle: Mutex<Vec<Worker>>,
}

struct Isolation {
    program: PathBuf,
    memory_bytes: u64,
    timeout: Duration,
}

struct Worker {
    /// Killed when dropped.
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Templates {
    pub fn new(config: &EngineConfig) -> Result<Self, String> {
        let isolation = match config.template_isolation {
            false => None,
            true => Some(Isolation {
                program: match &config.template_program {
                    Some(program) => program.clone(),
                    None => std::env::current_exe()
                        .map_err(|e| format!("cannot tell this program's path for engine.template_program: {e}"))?,
                },
                memory_bytes: config.template_memory,
                timeout: config.template_timeout,
            }),
        };
        Ok(Self { isolation, idle: Mutex::new(Vec::new()) })
    }

    /// Renders `prompt` (see the module documentation).
    pub async fn render(&self, prompt: &Prompt) -> Result<String, TemplateError> {
        let Some(isolation) = &self.isolation else {
            let prompt = prompt.clone();
            return tokio::task::spawn_blocking(move || template::render(&prompt))
                .await
                .map_err(|e| TemplateError::Render(e.to_string()))?;
        };
        let request = serde_json::to_vec(prompt).map_err(|e| TemplateError::Render(e.to_string()))?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut worker = match idle {
            Some(worker) => worker,
            None => isolation.start().map_err(|e| TemplateError::Render(e.to_string()))?,
        };
        let answer = match tokio::time::timeout(isolation.timeout, worker.ask(&request)).await {
            Ok(Some(answer)) => answer,
            Ok(None) => return Err(isolation.ended(worker).await),
            Err(_) => {
                tracing::warn!(timeout = ?isolation.timeout, "a chat template ran out of time; its worker is killed");
                return Err(TemplateError::Limit(format!(
                    "it ran longer than {} s, engine.template_timeout",
                    isolation.timeout.as_secs_f32()
                )));
            }
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(worker);
        }
        answer
    }
}

impl Isolation {
    fn start(&self) -> std::io::Result<Worker> {
        let mut child = Command::new(&self.program)
            .arg(worker::SUBCOMMAND)
            .args(["--memory", &self.memory_bytes.to_string()])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot start the template worker {}: {e}", self.program.display()),
                )
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the template worker has no pipes"));
        };
        Ok(Worker { child, stdin, stdout })
    }
}

impl Isolation {
    /// Why `worker` gave no answer: it was killed by a signal (its memory bound aborts it; a
    /// stack overflow too), or it exited, which a worker only does when it is not one.
    async fn ended(&self, mut worker: Worker) -> TemplateError {
        let _ = worker.child.start_kill();
        match worker.child.wait().await.ok().and_then(|status| status.code()) {
            None => {
                tracing::warn!(memory = self.memory_bytes, "a chat template ended its worker");
                TemplateError::Limit(format!(
                    "it needed more than the {} MiB of memory allowed, engine.template_memory",
                    self.memory_bytes >> 20
                ))
            }
            Some(code) => {
                let why = format!(
                    "the template worker {} exited with status {code}; is it this server's binary?",
                    self.program.display()
                );
                tracing::error!("{why}");
                TemplateError::Render(why)
            }
        }
    }
}

impl Worker {
    /// One request and its answer; `None` when the worker died or answered nonsense.
    async fn ask(&mut self, request: &[u8]) -> Option<Result<String, TemplateError>> {
        let len = u32::try_from(request.len()).ok()?;
        self.stdin.write_all(&len.to_le_bytes()).await.ok()?;
        self.stdin.write_all(request).await.ok()?;
        self.stdin.flush().await.ok()?;
        let len = self.stdout.read_u32_le().await.ok()? as usize;
        if len > MAX_ANSWER {
            return None;
        }
        let mut answer = vec![0; len];
        self.stdout.read_exact(&mut answer).await.ok()?;
        worker::decode_answer(&answer)
    }
}
