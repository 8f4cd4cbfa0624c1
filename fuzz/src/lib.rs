//! Fuzz targets for every reader of untrusted bytes, each under the memory bound its reader
//! promises.
//!
//! `scripts/fuzz` runs each target with libFuzzer (`cargo fuzz`, the `fuzz_targets/` binaries)
//! for a bounded time; `docs/security.md` ("Fuzzing") records how long and what was found. A
//! target is a [`Target`]: [`Target::run`] feeds it one input, and fails (panics, or aborts at an
//! allocation) when the reader panics, breaks a property it promises, or holds more than
//! [`Target::memory_bound`] bytes of heap at once. The bound is enforced by this crate's global
//! allocator, which refuses an allocation past it: the process aborts at that allocation, and
//! libFuzzer saves the input, whatever the machine's memory.
//!
//! Every input that ever failed is kept in `fuzz/regressions/<target>/`, and the test at the end
//! of this file replays them all, under the same bounds, in the normal test suite.

use std::alloc::System;

use cap::Cap;
use ollama_api::openai::{ChatCompletionRequest, CompletionRequest, EmbeddingRequest};
use ollama_api::strict;
use ollama_api::types::{ChatRequest, EmbedRequest, EmbeddingsRequest, GenerateRequest};
use ollamanet_documents::{Kind, Limits};
use ollamanet_model_format::gguf::GgufFile;
use ollamanet_model_format::manifest::Manifest;
use ollamanet_model_format::template::{self, Prompt, TemplateMessage};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

const MIB: usize = 1 << 20;

/// Stack of a tokio runtime worker, where the engine renders templates and the services parse
/// bodies: a reader that recursed deeper than it allows would overflow there first.
const WORKER_STACK: usize = 2 * MIB;

/// What is fuzzed: one reader of bytes that someone outside the platform chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Telling a document's kind from its bytes and a file-name hint (every upload), and reading
    /// the text of what is told text or Markdown.
    Sniff,
    /// Reading a PDF's text, as the document reader's child process does.
    Pdf,
    /// Reading a DOCX's text, as the document reader's child process does.
    Docx,
    /// A GGUF header, as the engine reads a model's (summarised and in full, `/api/show`).
    Gguf,
    /// A model's Jinja chat template, rendered for a conversation (the input's first line is the
    /// template, the rest the user's message).
    Template,
    /// A registry's manifest.
    Manifest,
    /// A request body on every path to a model (`/ollama/api/*`, `/v1/*`; the first byte picks
    /// the request type), read strictly; what is accepted must encode to a body that reads back
    /// the same, since that re-encoding is what reaches an engine.
    RequestBody,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Sniff,
        Target::Pdf,
        Target::Docx,
        Target::Gguf,
        Target::Template,
        Target::Manifest,
        Target::RequestBody,
    ];

    /// The name of its `fuzz_targets/` binary and of its directories.
    pub fn name(self) -> &'static str {
        match self {
            Target::Sniff => "sniff",
            Target::Pdf => "pdf",
            Target::Docx => "docx",
            Target::Gguf => "gguf",
            Target::Template => "template",
            Target::Manifest => "manifest",
            Target::RequestBody => "request_body",
        }
    }

    /// Most heap the reader may hold at once for one input.
    ///
    /// Documents are read, and templates rendered, in child processes whose address space is
    /// capped at 512 MiB (`conversation.documents.extract_memory`, `engine.template_memory`):
    /// 384 MiB of heap leaves room for the program and its stacks. The others read at most a few
    /// MiB by design.
    pub fn memory_bound(self) -> usize {
        match self {
            Target::Sniff | Target::Pdf | Target::Docx | Target::Template => 384 * MIB,
            Target::Gguf | Target::Manifest | Target::RequestBody => 64 * MIB,
        }
    }

    /// Whether the reader promises to catch its parser's panics (`pdf-extract` panics on some
    /// malformed files; the document reader turns that into `DocumentError::Corrupt`): a caught
    /// panic is then no finding, one that escapes still is.
    pub fn catches_panics(self) -> bool {
        matches!(self, Target::Sniff | Target::Pdf | Target::Docx)
    }

    /// Sets the allocator's bound for this target: once, before the first input. Under
    /// libFuzzer, whose panic hook aborts at every panic, caught or not, a target whose reader
    /// catches panics gets the default hook back (libFuzzer still aborts when one escapes).
    pub fn init(self) {
        HEAP.set_limit(HEAP.allocated() + self.memory_bound()).expect("the bound is above what is allocated");
        if self.catches_panics() {
            drop(std::panic::take_hook());
        }
    }

    /// Feeds one input to the reader; panics or aborts on a finding.
    pub fn run(self, data: &[u8]) {
        match self {
            Target::Sniff => sniff(data),
            Target::Pdf => extract(Kind::Pdf, data),
            Target::Docx => extract(Kind::Docx, data),
            Target::Gguf => {
                for full in [false, true] {
                    let _ = GgufFile::read_from(data, data.len() as u64, full);
                }
            }
            Target::Template => render(data),
            Target::Manifest => {
                if let Ok(manifest) = Manifest::parse(data) {
                    manifest.total_size();
                }
            }
            Target::RequestBody => on_a_worker_stack(|| request_body(data)),
        }
    }
}

fn sniff(data: &[u8]) {
    // The first byte says whether the client named the file `.md`.
    let Some((hint, bytes)) = data.split_first() else { return };
    let name = (hint & 1 == 1).then_some("notes.md");
    if let Ok(kind @ (Kind::Text | Kind::Markdown)) = ollamanet_documents::sniff(bytes, name) {
        let _ = ollamanet_documents::extract(kind, bytes, &Limits::default());
    }
}

fn extract(kind: Kind, data: &[u8]) {
    let _ = ollamanet_documents::extract(kind, data, &Limits::default());
}

fn render(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (source, message) = text.split_once('\n').unwrap_or((&text, "Hello"));
    let prompt = Prompt {
        template: source.to_owned(),
        messages: vec![TemplateMessage::new("system", "Be brief."), TemplateMessage::new("user", message)],
        tools: None,
        bos_token: "<s>".into(),
        eos_token: "</s>".into(),
        fuel: template::DEFAULT_FUEL,
    };
    on_a_worker_stack(|| {
        let _ = template::render(&prompt);
    });
}

fn request_body(data: &[u8]) {
    let Some((pick, body)) = data.split_first() else { return };
    match pick % 8 {
        0 => round_trip::<ChatRequest>(body),
        1 => round_trip::<GenerateRequest>(body),
        2 => round_trip::<EmbedRequest>(body),
        3 => round_trip::<EmbeddingsRequest>(body),
        4 => round_trip::<ChatCompletionRequest>(body),
        5 => round_trip::<CompletionRequest>(body),
        6 => round_trip::<EmbeddingRequest>(body),
        _ => {
            let _ = strict::from_slice::<serde_json::Value>(body);
        }
    }
}

/// A body the strict reader accepts encodes to one it reads back as the same request.
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(body: &[u8]) {
    let Ok(request) = strict::from_slice::<T>(body) else { return };
    let encoded = serde_json::to_vec(&request).expect("an accepted request encodes");
    match strict::from_slice::<T>(&encoded) {
        Ok(again) => assert_eq!(again, request, "the re-encoded body reads differently"),
        Err(e) => panic!("the re-encoded body is refused: {e}\n{}", String::from_utf8_lossy(&encoded)),
    }
}

/// Runs `f` on a thread with a runtime worker's stack, as the services do.
fn on_a_worker_stack(f: impl FnOnce() + Send) {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new().stack_size(WORKER_STACK).spawn_scoped(scope, f);
        if let Err(panic) = worker.expect("a thread starts").join() {
            std::panic::resume_unwind(panic);
        }
    });
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every input a fuzzer ever failed on is read again, under its target's memory bound, in a
    /// process of its own (the allocator's bound is the process's), so that a fixed finding stays
    /// fixed.
    #[test]
    fn every_finding_stays_fixed() {
        const TARGET: &str = "OLLAMANET_FUZZ_TARGET";
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
        if let Ok(name) = std::env::var(TARGET) {
            let target = Target::ALL.into_iter().find(|t| t.name() == name).expect("a known target");
            target.init();
            for input in inputs(&dir.join(name)) {
                target.run(&std::fs::read(&input).unwrap());
            }
            return;
        }
        let me = std::env::current_exe().unwrap();
        let mut replayed = 0;
        for target in Target::ALL {
            let found = inputs(&dir.join(target.name())).len();
            if found == 0 {
                continue;
            }
            let out = std::process::Command::new(&me)
                .args(["--exact", "tests::every_finding_stays_fixed", "--test-threads=1", "--nocapture"])
                .env(TARGET, target.name())
                .output()
                .unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "{}: a finding is back\n{text}", target.name());
            replayed += found;
        }
        assert!(replayed > 0, "the regressions directory holds the findings");
    }

    fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        files.sort();
        files
    }

    /// The bound holds: a reader that asked for more than its target allows would stop there.
    #[test]
    fn the_allocator_refuses_past_the_bound() {
        HEAP.set_limit(HEAP.allocated() + MIB).unwrap();
        let mut small = Vec::<u8>::new();
        assert!(small.try_reserve(MIB / 2).is_ok());
        assert!(Vec::<u8>::new().try_reserve(MIB).is_err(), "an allocation past the bound is refused");
        HEAP.set_limit(usize::MAX).unwrap();
    }
}
