//! Runs one check in a forked child, so that a crash, a hang or a stray write cannot
//! take the probe down, and turns whatever the child did into exactly one JSON line.
//! Within a check, runs an attempt the kernel may kill in a child of its own.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::panic;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::checks::{Check, Context};
use crate::record;
use crate::sys::{self, Errno, Exit, Fork};

/// The longest the parent waits on the pipe before it looks again at whether the child
/// has ended (a grandchild may hold the pipe open after the child is gone).
const READ_SLICE: Duration = Duration::from_millis(50);

/// How often the parent looks for the child's end once the pipe is closed.
const EXIT_SLICE: Duration = Duration::from_millis(1);

/// The status `run_forked` gives a child whose body panicked, as an uncaught panic ends a
/// Rust program.
const PANIC_STATUS: i32 = 101;

/// How a check's child process ended.
enum Ending {
    /// The child ended by itself, having written this output.
    Ended(Exit, Vec<u8>),
    /// The child outlived its timeout and was killed.
    TimedOut,
}

/// The part of a child's record the parent checks before printing it.
#[derive(Deserialize)]
struct Head {
    check: String,
}

/// Runs `check` in a child process and returns the one record to print for it.
///
/// Anything buffered for stdout must be flushed before the call, or the child would
/// inherit it.
pub fn run(check: &Check, ctx: &Context) -> String {
    let (reader, writer) = match sys::pipe() {
        Ok(ends) => ends,
        Err(errno) => return record::error(check.name, &format!("pipe failed: {errno}")),
    };

    match sys::fork() {
        Err(errno) => record::error(check.name, &format!("fork failed: {errno}")),
        Ok(Fork::Child) => {
            drop(reader);
            child(check, ctx, writer)
        }
        Ok(Fork::Parent(pid)) => {
            drop(writer);
            parent(check, pid, reader)
        }
    }
}

/// The child's side: run the check and write its record, or an error record, to the
/// pipe. A signal may end it sooner, which the parent reports.
fn child(check: &Check, ctx: &Context, mut writer: File) -> ! {
    sys::own_group(0);
    let_faults_kill();

    let line = match panic::catch_unwind(|| (check.run)(ctx)) {
        Ok(Ok(line)) => line,
        Ok(Err(message)) => record::error(check.name, &message),
        Err(_) => record::error(check.name, "the check panicked"),
    };
    let written = writer.write_all(format!("{line}\n").as_bytes());
    sys::exit_now(if written.is_ok() { 0 } else { 1 })
}

/// Runs `body` in a forked child of the calling process and waits for it: the status
/// `body` returned, or the signal that killed it. A fault in `body` ends only that child,
/// without a core file; a panic ends it with `PANIC_STATUS`.
///
/// A check calls it to try something the kernel may kill it for and still report the
/// attempt among other fields of its record.
pub fn run_forked(body: impl FnOnce() -> i32) -> Result<Exit, Errno> {
    match sys::fork()? {
        Fork::Child => {
            let_faults_kill();
            let ended = panic::catch_unwind(panic::AssertUnwindSafe(body));
            sys::exit_now(ended.unwrap_or(PANIC_STATUS))
        }
        Fork::Parent(pid) => sys::wait(pid),
    }
}

/// Gives SIGSEGV and SIGBUS their default action, which ends the process without a core
/// file; the Rust runtime's handlers would turn some faults into an abort message.
fn let_faults_kill() {
    sys::default_signal(libc::SIGSEGV);
    sys::default_signal(libc::SIGBUS);
    sys::disable_core_dumps();
}

/// The parent's side: gather the child's output and end, then clean up after it.
fn parent(check: &Check, pid: libc::pid_t, reader: File) -> String {
    sys::own_group(pid);
    let ending = collect(pid, reader, check.timeout);
    // Whatever the check started and left running goes with it.
    sys::kill_group(pid);

    match ending {
        Err(errno) => record::error(check.name, &format!("waiting for the check: {errno}")),
        Ok(Ending::TimedOut) => record::timeout(check.name, check.timeout.as_secs()),
        Ok(Ending::Ended(Exit::Signal(signal), _)) => record::killed(check.name, signal),
        Ok(Ending::Ended(Exit::Code(code), output)) => accept(check.name, code, &output),
    }
}

/// Reads the child's output until it ends, or kills it at the deadline.
fn collect(pid: libc::pid_t, mut reader: File, timeout: Duration) -> Result<Ending, Errno> {
    let deadline = Instant::now() + timeout;
    let mut output = Vec::new();
    let mut open = true;
    loop {
        if let Some(exit) = sys::try_wait(pid)? {
            if open {
                drain(&mut reader, &mut output)?;
            }
            return Ok(Ending::Ended(exit, output));
        }

        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // The child too, in case neither side managed to give it its own group.
            sys::kill_group(pid);
            sys::kill(pid);
            sys::wait(pid)?;
            return Ok(Ending::TimedOut);
        }

        if open {
            open = read_within(&mut reader, left.min(READ_SLICE), &mut output)?;
        } else {
            std::thread::sleep(left.min(EXIT_SLICE));
        }
    }
}

/// Reads what arrives within `slice`; false once the pipe has reached end of file.
fn read_within(reader: &mut File, slice: Duration, output: &mut Vec<u8>) -> Result<bool, Errno> {
    if !sys::readable(reader, slice)? {
        return Ok(true);
    }
    read_chunk(reader, output)
}

/// Reads what is still in the pipe after the child ended, without waiting for any
/// process it left behind that holds the pipe open.
fn drain(reader: &mut File, output: &mut Vec<u8>) -> Result<(), Errno> {
    while sys::readable(reader, Duration::ZERO)? && read_chunk(reader, output)? {}
    Ok(())
}

/// One read; false at end of file.
fn read_chunk(reader: &mut File, output: &mut Vec<u8>) -> Result<bool, Errno> {
    let mut chunk = [0; 4096];
    match reader.read(&mut chunk) {
        Ok(0) => Ok(false),
        Ok(len) => {
            output.extend_from_slice(&chunk[..len]);
            Ok(true)
        }
        Err(error) if error.kind() == ErrorKind::Interrupted => Ok(true),
        Err(error) => Err(Errno::from_io(&error)),
    }
}

/// The record an exiting child wrote, if it wrote exactly one valid record for this
/// check; otherwise an error record saying what was wrong.
fn accept(check: &str, code: i32, output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let text = text.trim_end_matches('\n');
    if text.is_empty() {
        let message = format!("the check exited with status {code} and printed nothing");
        return record::error(check, &message);
    }

    match serde_json::from_str::<Head>(text) {
        Ok(head) if head.check == check && !text.contains('\n') => text.to_string(),
        Ok(_) => record::error(check, "the check printed a record that is not its own"),
        Err(error) => record::error(check, &format!("the check printed invalid JSON: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_one_record_of_its_own() {
        let own = r#"{"check":"identity","result":"ok","uid":0}"#;
        let cases: &[(&str, Option<&str>)] = &[
            (own, Some(own)),
            (&format!("{own}\n"), Some(own)),
            ("", None),
            ("\n", None),
            ("not json", None),
            (r#"{"check":"aslr"}"#, None),
            (r#"{"result":"ok"}"#, None),
            ("{\n\"check\":\"identity\"}", None),
            (&format!("{own}\n{own}\n"), None),
        ];
        for (output, expected) in cases {
            let line = accept("identity", 0, output.as_bytes());
            match expected {
                Some(expected) => assert_eq!(&line, expected),
                None => assert!(line.contains(r#""result":"error""#), "{output:?}: {line}"),
            }
        }
    }

    #[test]
    fn silent_exit_names_the_status() {
        let line = accept("dmesg", 3, b"");
        assert!(
            line.contains("exited with status 3 and printed nothing"),
            "{line}"
        );
    }
}
