//! `wx-mprotect`: whether memory can become executable after it was written, and whether
//! it can be writable and executable at once. A vanilla kernel allows both; PaX's
//! MPROTECT (and SELinux's execmem denial) refuses both.

use serde::Serialize;

use super::exec::RETURN_42;
use super::{Context, Outcome};
use crate::record;
use crate::sys::{self, Mapping, PAGE_SIZE};

#[derive(Serialize)]
struct WxRecord<'a> {
    check: &'a str,
    result: &'static str,
    /// Turning a written RW mapping into R+X: `allowed` or the errno name.
    mprotect: String,
    /// Mapping RWX memory directly: `allowed` or the errno name.
    rwx_mmap: String,
}

/// Runs the check.
pub fn run(ctx: &Context) -> Outcome {
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let mut written = Mapping::anonymous(PAGE_SIZE, rw).map_err(|e| format!("mmap RW: {e}"))?;
    written.write(&RETURN_42)?;
    let mprotect = sys::verdict(written.protect(libc::PROT_READ | libc::PROT_EXEC));

    let rwx = rw | libc::PROT_EXEC;
    let rwx_mmap = sys::verdict(Mapping::anonymous(PAGE_SIZE, rwx).map(drop));

    record::encode(&WxRecord {
        check: ctx.name,
        result: "ok",
        mprotect,
        rwx_mmap,
    })
}
