//! `modify-ldt`: whether modify_ldt(2) can read and write the local descriptor table,
//! an interface old exploits used and hardened kernels remove (CONFIG_MODIFY_LDT_SYSCALL)
//! or restrict.

use serde::Serialize;

use super::{Context, Outcome};
use crate::record;
use crate::sys::{self, Errno};

/// modify_ldt's function number that reads the table.
const READ_LDT: libc::c_long = 0;

/// modify_ldt's function number that writes one entry, in the old mode.
const WRITE_LDT_OLD: libc::c_long = 1;

/// The kernel's `struct user_desc`; the flag bits follow the four words.
#[repr(C)]
struct UserDesc {
    entry_number: u32,
    base_addr: u32,
    limit: u32,
    flags: u32,
}

/// `read_exec_only` and `seg_not_present`: together with a zero base and limit, the
/// kernel's form of an empty entry, which installs nothing usable.
const EMPTY_ENTRY_FLAGS: u32 = (1 << 3) | (1 << 5);

#[derive(Serialize)]
struct LdtRecord<'a> {
    check: &'a str,
    result: &'static str,
    /// Reading the table: `allowed` or the errno name.
    read: String,
    /// Writing an empty entry 0: `allowed` or the errno name.
    write: String,
}

/// Runs the check.
pub fn run(ctx: &Context) -> Outcome {
    let read = sys::verdict(read_table());
    let write = sys::verdict(write_empty_entry());
    record::encode(&LdtRecord {
        check: ctx.name,
        result: "ok",
        read,
        write,
    })
}

fn read_table() -> Result<(), Errno> {
    let mut table = [0u8; 256];
    // SAFETY: the kernel writes at most `table.len()` bytes into `table`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_modify_ldt,
            READ_LDT,
            table.as_mut_ptr(),
            table.len(),
        )
    };
    sys::check(ret).map(drop)
}

fn write_empty_entry() -> Result<(), Errno> {
    let entry = UserDesc {
        entry_number: 0,
        base_addr: 0,
        limit: 0,
        flags: EMPTY_ENTRY_FLAGS,
    };
    let size = std::mem::size_of::<UserDesc>();
    // SAFETY: the kernel reads exactly `size` bytes from `entry`.
    let ret = unsafe { libc::syscall(libc::SYS_modify_ldt, WRITE_LDT_OLD, &entry, size) };
    sys::check(ret).map(drop)
}
