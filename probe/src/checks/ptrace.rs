//! `ptrace-nonchild`: whether a process may attach to one that is not its descendant.
//! The check forks a sleeping target and then a sibling that tries PTRACE_ATTACH on it;
//! Yama's ptrace_scope 1 and above refuses that with EPERM, unless the caller holds
//! CAP_SYS_PTRACE (as root does).

use serde::Serialize;

use super::{Context, Outcome};
use crate::record;
use crate::sys::{self, Errno, Exit, Fork};

/// Where Yama publishes its ptrace restriction; absent when Yama is not built in.
const YAMA_SCOPE: &str = "/proc/sys/kernel/yama/ptrace_scope";

#[derive(Serialize)]
struct PtraceRecord<'a> {
    check: &'a str,
    result: &'static str,
    /// `allowed`, or the errno name PTRACE_ATTACH failed with.
    attach: String,
    /// Yama's ptrace_scope, or null when the kernel has no Yama.
    yama_ptrace_scope: Option<u32>,
}

/// Runs the check.
pub fn run(ctx: &Context) -> Outcome {
    let target = spawn_sleeper()?;
    let attach = attempt_attach(target);
    sys::kill(target);
    // The target is this process's child; reaping it cannot fail in a way worth telling.
    let _ = sys::wait(target);

    let attach = sys::verdict(attach?);
    let yama_ptrace_scope = read_scope();
    record::encode(&PtraceRecord {
        check: ctx.name,
        result: "ok",
        attach,
        yama_ptrace_scope,
    })
}

/// Forks the target, which sleeps until it is killed.
fn spawn_sleeper() -> Result<libc::pid_t, String> {
    match sys::fork().map_err(|e| format!("fork of the target: {e}"))? {
        Fork::Parent(pid) => Ok(pid),
        Fork::Child => loop {
            // SAFETY: pause takes no arguments; only SIGKILL ends this loop.
            unsafe { libc::pause() };
        },
    }
}

/// Forks the target's sibling, which attaches to it and detaches again, and reports
/// through its exit status: 0 when attaching was allowed, else the errno.
fn attempt_attach(target: libc::pid_t) -> Result<Result<(), Errno>, String> {
    let attacher = match sys::fork().map_err(|e| format!("fork of the attacher: {e}"))? {
        Fork::Child => sys::exit_now(attach_and_detach(target)),
        Fork::Parent(pid) => pid,
    };

    match sys::wait(attacher).map_err(|e| format!("waiting for the attacher: {e}"))? {
        Exit::Code(0) => Ok(Ok(())),
        Exit::Code(errno) => Ok(Err(Errno(errno))),
        Exit::Signal(signal) => Err(format!(
            "the attacher was killed by {}",
            crate::names::signal_name(signal)
        )),
    }
}

/// Runs in the attacher: 0 when PTRACE_ATTACH succeeded, else its errno.
fn attach_and_detach(target: libc::pid_t) -> i32 {
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: PTRACE_ATTACH reads neither address nor data.
    let attached = unsafe { libc::ptrace(libc::PTRACE_ATTACH, target, null, null) };
    if let Err(errno) = sys::check(attached) {
        return errno.0;
    }

    // The tracee must have stopped before it can be detached.
    let mut status = 0;
    // SAFETY: `status` is a valid place for waitpid to write.
    unsafe { libc::waitpid(target, &mut status, libc::__WALL) };
    // SAFETY: PTRACE_DETACH with a null data pointer delivers no signal.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, target, null, null) };
    0
}

fn read_scope() -> Option<u32> {
    std::fs::read_to_string(YAMA_SCOPE)
        .ok()?
        .trim()
        .parse()
        .ok()
}
