//! `vsyscall`: which of the kernel's vsyscall modes is in force. The legacy vsyscall page
//! sits at the same address in every x86_64 process, so old exploits used its code as
//! gadgets. With `vsyscall=emulate` the page is readable and its calls are emulated;
//! with `xonly` (Linux 6.1's default) reading it faults but calls are still emulated;
//! with `none` there is no page and both fault. The check reads /proc/self/maps, then
//! reads the page and calls its `time()` entry, each in a process of its own.

use serde::Serialize;

use super::{Context, Outcome};
use crate::isolate;
use crate::names;
use crate::record;
use crate::sys::Exit;

/// Where the kernel maps the vsyscall page in every x86_64 process.
const VSYSCALL_PAGE: usize = 0xffff_ffff_ff60_0000;

/// The page's legacy `time()` entry.
const VSYSCALL_TIME: usize = VSYSCALL_PAGE + 0x400;

/// The name /proc/self/maps gives the vsyscall page.
const VSYSCALL_NAME: &str = "[vsyscall]";

/// The process's own memory map.
const MAPS: &str = "/proc/self/maps";

/// Seconds since the epoch (September 2001) that any real clock has passed.
const PLAUSIBLE_TIME: libc::time_t = 1_000_000_000;

/// The reading process's status once it has read the byte.
const READ_DONE: i32 = 0;

/// The calling process's status when `time()` returned a plausible time.
const TIME_PLAUSIBLE: i32 = 0;

/// The calling process's status when `time()` returned an implausible time.
const TIME_IMPLAUSIBLE: i32 = 1;

/// What a record says of an attempt the kernel let through.
const ALLOWED: &str = "allowed";

/// The signature of the page's `time()` entry.
type TimeEntry = extern "C" fn(*mut libc::time_t) -> libc::time_t;

#[derive(Serialize)]
struct VsyscallRecord<'a> {
    check: &'a str,
    result: &'static str,
    /// The mode the other fields add up to: `emulate`, `xonly`, `none`, or `unknown` when
    /// they match none of the three.
    mode: &'static str,
    /// Whether /proc/self/maps has a `[vsyscall]` line.
    mapped: bool,
    /// That line's permissions, such as `--xp`; left out when the page is not mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    perms: Option<&'a str>,
    /// Reading the page's first byte: `allowed` or the name of the signal that killed
    /// the reading process.
    read: String,
    /// Calling the `time()` entry: `allowed` or the name of the signal that killed the
    /// calling process.
    call: String,
    /// Whether the time the call returned is after September 2001; left out when the
    /// call did not return.
    #[serde(skip_serializing_if = "Option::is_none")]
    time_plausible: Option<bool>,
}

/// Runs the check.
pub fn run(ctx: &Context) -> Outcome {
    let maps = std::fs::read_to_string(MAPS).map_err(|e| format!("reading {MAPS}: {e}"))?;
    let perms = vsyscall_perms(&maps);

    let read = isolate::run_forked(read_first_byte).map_err(|e| format!("fork: {e}"))?;
    let read = read_verdict(read)?;
    let call = isolate::run_forked(call_time).map_err(|e| format!("fork: {e}"))?;
    let (call, time_plausible) = call_verdict(call)?;

    record::encode(&VsyscallRecord {
        check: ctx.name,
        result: "ok",
        mode: mode(perms, &read, &call),
        mapped: perms.is_some(),
        perms,
        read,
        call,
        time_plausible,
    })
}

/// The permissions on the `[vsyscall]` line of a maps file, or `None` without one.
fn vsyscall_perms(maps: &str) -> Option<&str> {
    maps.lines()
        .filter(|line| line.split_whitespace().last() == Some(VSYSCALL_NAME))
        .find_map(|line| line.split_whitespace().nth(1))
}

/// Runs in the reading process: reads the page's first byte.
fn read_first_byte() -> i32 {
    let page = std::hint::black_box(std::ptr::with_exposed_provenance::<u8>(VSYSCALL_PAGE));
    // SAFETY: the page is the kernel's and nothing in this process writes it; where it
    // is not readable the read faults and ends only this forked process.
    let byte = unsafe { std::ptr::read_volatile(page) };
    std::hint::black_box(byte);
    READ_DONE
}

/// Runs in the calling process: calls the `time()` entry and judges what it returned.
fn call_time() -> i32 {
    // SAFETY: where the kernel provides the page, its `time()` entry has this signature
    // and writes nothing through a null pointer; where it does not, the call faults and
    // ends only this forked process.
    let time =
        unsafe { std::mem::transmute::<usize, TimeEntry>(std::hint::black_box(VSYSCALL_TIME)) };
    if time(std::ptr::null_mut()) > PLAUSIBLE_TIME {
        TIME_PLAUSIBLE
    } else {
        TIME_IMPLAUSIBLE
    }
}

/// The `read` field from how the reading process ended.
fn read_verdict(exit: Exit) -> Result<String, String> {
    match exit {
        Exit::Code(READ_DONE) => Ok(ALLOWED.to_string()),
        Exit::Code(code) => Err(format!("the reading process exited with status {code}")),
        Exit::Signal(signal) => Ok(names::signal_name(signal)),
    }
}

/// The `call` and `time_plausible` fields from how the calling process ended.
fn call_verdict(exit: Exit) -> Result<(String, Option<bool>), String> {
    match exit {
        Exit::Code(TIME_PLAUSIBLE) => Ok((ALLOWED.to_string(), Some(true))),
        Exit::Code(TIME_IMPLAUSIBLE) => Ok((ALLOWED.to_string(), Some(false))),
        Exit::Code(code) => Err(format!("the calling process exited with status {code}")),
        Exit::Signal(signal) => Ok((names::signal_name(signal), None)),
    }
}

/// The vsyscall mode that the page's permissions and the two attempts show.
fn mode(perms: Option<&str>, read: &str, call: &str) -> &'static str {
    match (perms, read == ALLOWED, call == ALLOWED) {
        (Some("r-xp"), true, true) => "emulate",
        (Some("--xp"), false, true) => "xonly",
        (None, false, false) => "none",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_vsyscall_line() {
        let stack = "7ffd1c3e2000-7ffd1c403000 rw-p 00000000 00:00 0  [stack]\n";
        let xonly = "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]\n";
        let emulate = "ffffffffff600000-ffffffffff601000 r-xp 00000000 00:00 0 [vsyscall]";
        let cases = [
            (format!("{stack}{xonly}"), Some("--xp")),
            (emulate.to_string(), Some("r-xp")),
            (stack.to_string(), None),
            (
                "55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 12 /tmp/[vsyscall] x\n".into(),
                None,
            ),
            (String::new(), None),
        ];
        for (maps, expected) in cases {
            assert_eq!(vsyscall_perms(&maps), expected, "{maps:?}");
        }
    }

    #[test]
    fn attempts_read_as_allowed_or_signal() {
        assert_eq!(read_verdict(Exit::Code(READ_DONE)).unwrap(), "allowed");
        assert_eq!(
            read_verdict(Exit::Signal(libc::SIGSEGV)).unwrap(),
            "SIGSEGV"
        );
        assert!(read_verdict(Exit::Code(101)).is_err());

        let allowed = |plausible| Ok(("allowed".to_string(), Some(plausible)));
        assert_eq!(call_verdict(Exit::Code(TIME_PLAUSIBLE)), allowed(true));
        assert_eq!(call_verdict(Exit::Code(TIME_IMPLAUSIBLE)), allowed(false));
        let killed = Ok(("SIGSEGV".to_string(), None));
        assert_eq!(call_verdict(Exit::Signal(libc::SIGSEGV)), killed);
        assert!(call_verdict(Exit::Code(101)).is_err());
    }

    #[test]
    fn tells_the_modes_apart() {
        let cases = [
            (Some("r-xp"), "allowed", "allowed", "emulate"),
            (Some("--xp"), "SIGSEGV", "allowed", "xonly"),
            (None, "SIGSEGV", "SIGSEGV", "none"),
            (Some("--xp"), "allowed", "allowed", "unknown"),
            (Some("r-xp"), "allowed", "SIGSEGV", "unknown"),
            (None, "SIGSEGV", "allowed", "unknown"),
            (Some("r--p"), "allowed", "SIGSEGV", "unknown"),
        ];
        for (perms, read, call, expected) in cases {
            assert_eq!(mode(perms, read, call), expected, "{perms:?} {read} {call}");
        }
    }
}
