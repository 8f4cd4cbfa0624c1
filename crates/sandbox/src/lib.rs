//! A child process that reads something hostile (a document, a model's chat template) confines
//! itself before it reads a byte of it, so that what no limit written in advance foresaw — a
//! parser's bug, a recursion, an allocation that doubles forever — ends that child, never the
//! server that started it:
//!
//! - `RLIMIT_AS`, its address space, to [`Confinement::memory_bytes`]: an allocation past it
//!   fails and the child aborts;
//! - `RLIMIT_CPU` to [`Confinement::cpu_seconds`] when given (then `SIGXCPU`, and `SIGKILL` a
//!   second later); a long-lived worker leaves it unset and its parent holds a wall clock instead;
//! - `RLIMIT_CORE` to 0, so a thousand aborted children do not fill the disk with core files;
//! - `SIGKILL` when the thread that started it ends (`PR_SET_PDEATHSIG`), so a server that dies
//!   leaves no child behind.
//!
//! Call [`confine`] from `main` before anything else starts (no runtime, no threads): the limits
//! count every byte the process maps.

use std::io;

use rustix::process::{Resource, Rlimit, Signal, set_parent_process_death_signal, setrlimit};

/// What a child may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confinement {
    pub memory_bytes: u64,
    pub cpu_seconds: Option<u64>,
}

/// Applies `confinement` to the calling process; see the crate documentation.
pub fn confine(confinement: Confinement) -> io::Result<()> {
    set_parent_process_death_signal(Some(Signal::KILL))?;
    let limit = |current: u64, maximum: u64| Rlimit { current: Some(current), maximum: Some(maximum) };
    setrlimit(Resource::Core, limit(0, 0))?;
    if let Some(cpu) = confinement.cpu_seconds {
        setrlimit(Resource::Cpu, limit(cpu, cpu.saturating_add(1)))?;
    }
    setrlimit(Resource::As, limit(confinement.memory_bytes, confinement.memory_bytes))?;
    Ok(())
}

/// Whether a child's exit `signal` is the one its CPU limit sends (or the kill that follows).
pub fn out_of_time(signal: i32) -> bool {
    signal == Signal::XCPU.as_raw() || signal == Signal::KILL.as_raw()
}
