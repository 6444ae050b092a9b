//! Hidden checks that test the probe itself, run only when `--only` names them:
//! `crash-test` dies by SIGSEGV and `hang-test` never finishes, so that tests can see the
//! parent report both and carry on.

use super::{Context, Outcome};
use crate::sys;

/// `crash-test`: raise SIGSEGV, which the parent must report as killed.
pub fn crash(_ctx: &Context) -> Outcome {
    // SAFETY: raise takes no pointers; the child runs with SIGSEGV's default action.
    unsafe { libc::raise(libc::SIGSEGV) };
    Err("SIGSEGV did not end the check".to_string())
}

/// `hang-test`: sleep past the timeout, with a grandchild that holds the pipe open too,
/// which the parent must report as a timeout and kill along with the child.
pub fn hang(_ctx: &Context) -> Outcome {
    // Whether or not the fork works, both sides go on to sleep.
    let _ = sys::fork();
    loop {
        // SAFETY: pause takes no arguments; only the parent's SIGKILL ends this loop.
        unsafe { libc::pause() };
    }
}
