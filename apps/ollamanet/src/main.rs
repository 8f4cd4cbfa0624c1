use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ollamanet::cli::{Cli, Command};

/// mimalloc: the gateway allocates a little for every request it forwards; measured 6-9 % less
/// CPU per request than glibc's allocator (docs/performance.md). Built without transparent huge
/// pages for its heap (the workspace's `no_thp` feature): they made idle connections cost half
/// as much again in resident memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What blocking work still running when the command is done (a model being loaded, a file being
/// written) gets before the process exits without it.
const BLOCKING_GRACE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any runtime or thread: the memory bound a child sets counts everything mapped.
    match &cli.command {
        Command::ExtractDocument(args) => return ollamanet_documents::isolated::run_child(&args.args),
        Command::RenderTemplates(args) => return ollamanet_model_format::worker::run_child(&args.args),
        _ => {}
    }
    kit::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(ollamanet::cli::run(cli));
    // Dropping the runtime would wait for every blocking task to return, however long it takes.
    runtime.shutdown_timeout(BLOCKING_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
