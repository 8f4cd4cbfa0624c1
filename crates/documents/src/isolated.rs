//! Reading a document in a child process, under a memory bound and a time limit.
//!
//! The [`Limits`] bound what this crate's own code does and what `lopdf` does while loading, as
//! far as that can be bounded from outside it; no limit written in advance bounds a parser's bug,
//! a recursion nobody foresaw (a stack overflow aborts the process, it cannot be caught) or a
//! loop. So a server runs [`extract`], which starts a child: the server's own binary again
//! (`<program> extract-document …`, a hidden subcommand that calls [`run_child`]). The child
//! first confines itself (`ollamanet_sandbox`), before it reads a byte of the document:
//!
//! - `RLIMIT_AS`, its address space, to [`Isolation::memory_bytes`]: an allocation past it fails
//!   and the child aborts;
//! - `RLIMIT_CPU` to the time limit (then `SIGXCPU`, and `SIGKILL` a second later);
//! - `RLIMIT_CORE` to 0, so a thousand aborted children do not fill the disk with core files;
//! - `SIGKILL` when the thread that started it ends (`PR_SET_PDEATHSIG`), so a server that dies
//!   leaves no reader behind.
//!
//! Then it reads the document from standard input, tells its kind (unless given) and extracts it
//! under the [`Limits`] it was given, and writes one JSON answer to standard output: the kind and
//! the pages, or the [`DocumentError`]'s code and detail. The parent holds a wall-clock limit
//! ([`Isolation::timeout`]) and reads at most what the text may weigh; past either, or when the
//! future of [`extract`] is dropped (the client went away, the server shuts down), the child is
//! killed (`kill_on_drop`, and reaped). A child that dies or is killed is
//! [`DocumentError::TooComplex`]; the server never held the document's structure in its memory.

use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use ollamanet_sandbox::Confinement;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::{DocumentError, Extracted, Kind, Limits, Page};

/// The hidden subcommand of the server's binary that runs [`run_child`].
pub const SUBCOMMAND: &str = "extract-document";

/// How much of the child's standard error is kept for the log.
const STDERR_KEPT: usize = 4096;

/// Where a document is read and what that may cost.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// The program run as `<program> extract-document …`: the server's own binary.
    pub program: PathBuf,
    /// Address space the child may reserve (`RLIMIT_AS`), in bytes.
    pub memory_bytes: u64,
    /// Wall-clock time from start to answer; also the child's CPU time (in whole seconds).
    pub timeout: Duration,
}

/// What the child answers on its standard output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Read { kind: String, pages: Vec<Page> },
    Refused { code: String, detail: String },
}

/// Reads `bytes` in a child process: their kind (`kind`, or told from the content, `markdown_name`
/// being what the client's file name says, see [`crate::is_markdown_name`]) and their text, under
/// `limits` and `isolation`. See the module documentation.
pub async fn extract(
    isolation: &Isolation,
    kind: Option<Kind>,
    markdown_name: bool,
    bytes: &[u8],
    limits: &Limits,
) -> Result<(Kind, Extracted), DocumentError> {
    let cpu_seconds = isolation.timeout.as_secs() + u64::from(isolation.timeout.subsec_nanos() > 0);
    let mut command = Command::new(&isolation.program);
    command
        .arg(SUBCOMMAND)
        .args(["--memory", &isolation.memory_bytes.to_string()])
        .args(["--cpu", &cpu_seconds.max(1).to_string()])
        .args(["--max-inflated", &limits.max_uncompressed_bytes.to_string()])
        .args(["--max-ratio", &limits.max_compression_ratio.to_string()])
        .args(["--max-entries", &limits.max_entries.to_string()])
        .args(["--max-pages", &limits.max_pages.to_string()]);
    if let Some(kind) = kind {
        command.args(["--kind", kind.as_str()]);
    }
    if markdown_name {
        command.arg("--markdown-name");
    }
    let mut child = command
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            DocumentError::Io(io::Error::new(
                e.kind(),
                format!("cannot start the document reader {}: {e}", isolation.program.display()),
            ))
        })?;
    // JSON escapes at most double the text (control characters are gone by then), plus a little
    // per page.
    let most = limits.max_uncompressed_bytes.saturating_mul(2).saturating_add(1 << 20);
    let Ok((stdout, stderr, status)) = tokio::time::timeout(isolation.timeout, converse(&mut child, bytes, most)).await
    else {
        // Killed and reaped before the answer; dropping it would only ask for the kill.
        let _ = child.start_kill();
        let _ = child.wait().await;
        tracing::warn!(timeout = ?isolation.timeout, "a document reader ran out of time and was killed");
        return Err(DocumentError::TooComplex(format!(
            "reading it took longer than the limit of {} s",
            isolation.timeout.as_secs_f32()
        )));
    };
    let status = status?;
    let Some(stdout) = stdout else {
        return Err(DocumentError::TooLarge(format!(
            "its text is larger than {} MiB",
            limits.max_uncompressed_bytes >> 20
        )));
    };
    if !status.success() {
        tracing::warn!(%status, stderr = %String::from_utf8_lossy(&stderr), "a document reader died");
        return Err(DocumentError::TooComplex(died(status, isolation)));
    }
    match serde_json::from_slice(&stdout) {
        Ok(Answer::Read { kind, pages }) => Ok((kind.parse()?, Extracted { pages })),
        Ok(Answer::Refused { code, detail }) => Err(DocumentError::from_code(&code, detail)
            .unwrap_or_else(|| DocumentError::Io(io::Error::other(format!("the document reader failed: {code}"))))),
        Err(e) => Err(DocumentError::Io(io::Error::other(format!(
            "the document reader {} gave no answer ({e}); is it this server's binary?",
            isolation.program.display()
        )))),
    }
}

/// Writes the document to the child, reads its answer (None when it passes `most` bytes: the
/// child is then killed) and keeps the start of its standard error, until it exits.
async fn converse(child: &mut Child, bytes: &[u8], most: u64) -> (Option<Vec<u8>>, Vec<u8>, io::Result<ExitStatus>) {
    let (mut stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let write = async {
        if let Some(stdin) = stdin.as_mut() {
            // A child that stops reading (it died, or refused) shows in its exit status.
            let _ = stdin.write_all(bytes).await;
        }
        drop(stdin);
    };
    let read_answer = async {
        let mut out = Vec::new();
        if let Some(stdout) = stdout {
            let _ = stdout.take(most.saturating_add(1)).read_to_end(&mut out).await;
        }
        // The pipe closes here: a child still writing past the cap fails and ends, so the
        // standard error being drained ends too.
        (out.len() as u64 <= most).then_some(out)
    };
    let (_, answer, errors) = tokio::join!(write, read_answer, drain(stderr, STDERR_KEPT));
    if answer.is_none() {
        let _ = child.start_kill();
    }
    (answer, errors, child.wait().await)
}

/// Reads `from` to its end (so the child never blocks on a full pipe), keeping the first `keep`
/// bytes.
async fn drain(from: Option<impl AsyncRead + Unpin>, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut from) = from else { return kept };
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// Why a child ended without an answer, for the uploader.
fn died(status: ExitStatus, isolation: &Isolation) -> String {
    let mib = isolation.memory_bytes >> 20;
    match status.signal() {
        Some(signal) if ollamanet_sandbox::out_of_time(signal) => {
            format!("reading it used more than the {} s of processing time allowed", isolation.timeout.as_secs_f32())
        }
        Some(_) => format!("reading it needed more than the {mib} MiB of memory allowed, or crashed the reader"),
        None => format!("the reader could not read it (exit status {})", status.code().unwrap_or(-1)),
    }
}

/// What [`extract`] asks of a child, from its arguments.
#[derive(Debug, PartialEq, Eq)]
struct ChildArgs {
    memory_bytes: u64,
    cpu_seconds: u64,
    limits: Limits,
    kind: Option<Kind>,
    markdown_name: bool,
}

impl ChildArgs {
    fn parse(args: &[String]) -> Result<Self, String> {
        let (mut memory, mut cpu, mut kind, mut markdown_name) = (None, None, None, false);
        let mut limits = Limits::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--markdown-name" {
                markdown_name = true;
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
            let number = || value.parse::<u64>().map_err(|_| format!("{arg}: not a number: {value}"));
            match arg.as_str() {
                "--memory" => memory = Some(number()?),
                "--cpu" => cpu = Some(number()?),
                "--max-inflated" => limits.max_uncompressed_bytes = number()?,
                "--max-ratio" => limits.max_compression_ratio = number()?,
                "--max-entries" => limits.max_entries = usize::try_from(number()?).map_err(|e| e.to_string())?,
                "--max-pages" => limits.max_pages = u32::try_from(number()?).map_err(|e| e.to_string())?,
                "--kind" => kind = Some(value.parse::<Kind>().map_err(|e| e.to_string())?),
                _ => return Err(format!("unknown argument {arg}")),
            }
        }
        Ok(ChildArgs {
            memory_bytes: memory.ok_or("--memory is required")?,
            cpu_seconds: cpu.ok_or("--cpu is required")?,
            limits,
            kind,
            markdown_name,
        })
    }
}

/// The child's side: `<program> extract-document ARGS`, with the document on standard input.
/// Call it from `main` before anything else starts (no runtime, no threads): the limits it sets
/// count every byte the process maps.
pub fn run_child(args: &[String]) -> ExitCode {
    let request = match ChildArgs::parse(args) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("{SUBCOMMAND}: {e}");
            return ExitCode::from(2);
        }
    };
    let confinement = Confinement { memory_bytes: request.memory_bytes, cpu_seconds: Some(request.cpu_seconds) };
    if let Err(e) = ollamanet_sandbox::confine(confinement) {
        eprintln!("{SUBCOMMAND}: cannot limit itself: {e}");
        return ExitCode::from(3);
    }
    let mut bytes = Vec::new();
    if let Err(e) = io::stdin().lock().read_to_end(&mut bytes) {
        eprintln!("{SUBCOMMAND}: reading the document: {e}");
        return ExitCode::from(4);
    }
    let read = read(&request, &bytes);
    let answer = match read {
        _ if crate::inflate::memory_ran_out() => {
            let e = DocumentError::TooComplex(format!(
                "reading it needed more than the {} MiB of memory allowed",
                request.memory_bytes >> 20
            ));
            Answer::Refused { code: e.code().to_owned(), detail: e.detail() }
        }
        Ok((kind, extracted)) => Answer::Read { kind: kind.as_str().to_owned(), pages: extracted.pages },
        Err(e) => Answer::Refused { code: e.code().to_owned(), detail: e.detail() },
    };
    let mut out = io::stdout().lock();
    if serde_json::to_writer(&mut out, &answer).and_then(|()| out.flush().map_err(serde_json::Error::io)).is_err() {
        return ExitCode::from(5);
    }
    ExitCode::SUCCESS
}

fn read(request: &ChildArgs, bytes: &[u8]) -> Result<(Kind, Extracted), DocumentError> {
    let kind = match request.kind {
        Some(kind) => kind,
        None => crate::sniff_named(bytes, request.markdown_name)?,
    };
    let extracted = crate::extract(kind, bytes, &request.limits)?;
    let text: u64 = extracted.pages.iter().map(|p| p.text.len() as u64).sum();
    if text > request.limits.max_uncompressed_bytes {
        return Err(DocumentError::TooLarge(format!(
            "its text is larger than {} MiB",
            request.limits.max_uncompressed_bytes >> 20
        )));
    }
    Ok((kind, extracted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_child_reads_what_the_parent_writes() {
        let limits = Limits { max_uncompressed_bytes: 7, max_compression_ratio: 8, max_entries: 9, max_pages: 10 };
        let parsed = ChildArgs::parse(&args(&[
            "--memory",
            "1000",
            "--cpu",
            "3",
            "--max-inflated",
            "7",
            "--max-ratio",
            "8",
            "--max-entries",
            "9",
            "--max-pages",
            "10",
            "--kind",
            "pdf",
            "--markdown-name",
        ]))
        .unwrap();
        let want = ChildArgs { memory_bytes: 1000, cpu_seconds: 3, limits, kind: Some(Kind::Pdf), markdown_name: true };
        assert_eq!(parsed, want);
        for bad in [&["--memory"][..], &["--memory", "x", "--cpu", "1"], &["--cpu", "1"], &["--bogus", "1"]] {
            assert!(ChildArgs::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn answers_round_trip() {
        let answer = Answer::Read { kind: "text".into(), pages: vec![Page { number: None, text: "a \"b\"\n".into() }] };
        let json = serde_json::to_string(&answer).unwrap();
        assert!(
            matches!(serde_json::from_str(&json).unwrap(), Answer::Read { pages, .. } if pages[0].text == "a \"b\"\n")
        );
    }
}
