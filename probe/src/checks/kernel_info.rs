//! Checks of what the kernel lets an unprivileged reader learn about itself: kernel
//! symbol addresses in /proc/kallsyms (kptr_restrict) and the kernel log (dmesg_restrict).

use std::fs::File;
use std::io::{BufRead, BufReader};

use serde::Serialize;

use super::{Context, Outcome};
use crate::record;
use crate::sys::{self, Errno};

/// glibc's name for syslog(2)'s "read the whole ring buffer" action.
const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;

#[derive(Serialize)]
struct KallsymsRecord<'a> {
    check: &'a str,
    result: &'static str,
    /// `visible` when some address is not zero, `zeroed` when all are, `empty` when the
    /// file has no symbols, `unreadable` when it cannot be read.
    addresses: &'static str,
    /// Why the file could not be read; left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<String>,
}

#[derive(Serialize)]
struct DmesgRecord<'a> {
    check: &'a str,
    result: &'static str,
    /// Reading the kernel log: `allowed` or the errno name.
    read: String,
}

/// `kallsyms`: whether /proc/kallsyms shows real addresses.
pub fn kallsyms(ctx: &Context) -> Outcome {
    let (addresses, errno) = match scan_kallsyms() {
        Ok(addresses) => (addresses, None),
        Err(errno) => ("unreadable", Some(errno.to_string())),
    };
    record::encode(&KallsymsRecord {
        check: ctx.name,
        result: "ok",
        addresses,
        errno,
    })
}

/// `dmesg`: whether syslog(2) lets the caller read the kernel log.
pub fn dmesg(ctx: &Context) -> Outcome {
    let mut buffer = [0u8; 4096];
    let len = buffer.len() as libc::c_int;
    // SAFETY: the kernel writes at most `len` bytes into `buffer`.
    let ret = unsafe { libc::klogctl(SYSLOG_ACTION_READ_ALL, buffer.as_mut_ptr().cast(), len) };
    let read = sys::verdict(sys::check(ret).map(drop));
    record::encode(&DmesgRecord {
        check: ctx.name,
        result: "ok",
        read,
    })
}

/// Reads /proc/kallsyms until it finds a non-zero address.
fn scan_kallsyms() -> Result<&'static str, Errno> {
    let file = File::open("/proc/kallsyms").map_err(|e| Errno::from_io(&e))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut symbols = 0usize;
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Errno::from_io(&e))?
            == 0
        {
            return Ok(if symbols == 0 { "empty" } else { "zeroed" });
        }
        match address(&line) {
            Some(0) => symbols += 1,
            Some(_) => return Ok("visible"),
            None => {}
        }
    }
}

/// The address a kallsyms line starts with, if it starts with one.
fn address(line: &[u8]) -> Option<u64> {
    let field = line.split(|&byte| byte == b' ').next()?;
    u64::from_str_radix(std::str::from_utf8(field).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_field() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"ffffffff81000000 T _stext\n", Some(0xffff_ffff_8100_0000)),
            (b"0000000000000000 T _stext\n", Some(0)),
            (b"\n", None),
            (b"garbage\n", None),
            (b"\xff\xfe T x\n", None),
        ];
        for (line, expected) in cases {
            assert_eq!(address(line), *expected, "{line:?}");
        }
    }
}
