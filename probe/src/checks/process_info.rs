//! Checks that describe the probe's own process: `pax-flags` (the PaX flags the kernel
//! applied to it) and `identity` (which user ran it, so snapshots say so).

use serde::Serialize;

use super::{Context, Outcome};
use crate::record;

#[derive(Serialize)]
struct PaxRecord<'a> {
    check: &'a str,
    result: &'static str,
    /// Whether /proc/self/status has a `PaX:` line, as only PaX kernels write.
    present: bool,
    /// The flags on that line, such as `PeMRs`; left out when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<String>,
}

#[derive(Serialize)]
struct IdentityRecord<'a> {
    check: &'a str,
    result: &'static str,
    uid: u32,
    euid: u32,
    gid: u32,
}

/// `pax-flags`: the `PaX:` line of /proc/self/status.
pub fn pax_flags(ctx: &Context) -> Outcome {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    let flags = pax_line(&status);
    let present = flags.is_some();
    record::encode(&PaxRecord {
        check: ctx.name,
        result: "ok",
        present,
        flags,
    })
}

/// `identity`: the real and effective user and the real group.
pub fn identity(ctx: &Context) -> Outcome {
    // SAFETY: these calls take no arguments and cannot fail.
    let (uid, euid, gid) = unsafe { (libc::getuid(), libc::geteuid(), libc::getgid()) };
    record::encode(&IdentityRecord {
        check: ctx.name,
        result: "ok",
        uid,
        euid,
        gid,
    })
}

fn pax_line(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("PaX:"))
        .map(|flags| flags.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pax_line() {
        let cases = [
            ("Name:\tprobe\nPaX:\tPeMRs\nUid:\t0\n", Some("PeMRs")),
            ("PaX:\tpemrs", Some("pemrs")),
            ("Name:\tprobe\nUid:\t0\n", None),
            ("", None),
        ];
        for (status, expected) in cases {
            assert_eq!(pax_line(status).as_deref(), expected, "{status:?}");
        }
    }
}
