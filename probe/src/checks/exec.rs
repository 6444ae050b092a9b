//! The executable-memory checks: call six bytes of code placed on the stack, on the heap
//! and in an anonymous mapping. Where the kernel enforces non-executable memory the call
//! faults, and the parent reports the check as killed by SIGSEGV.

use std::hint::black_box;

use serde::Serialize;

use super::{Context, Outcome};
use crate::record;
use crate::sys::{Mapping, PAGE_SIZE};

/// `mov eax, 42; ret`: a function that returns 42.
pub const RETURN_42: [u8; 6] = [0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3];

/// The record of code that ran.
#[derive(Serialize)]
struct Executed<'a> {
    check: &'a str,
    /// `executed` when the code returned 42, `unexpected` when it returned anything else.
    result: &'static str,
    returned: i32,
}

/// `exec-stack`: call the code from a local array.
pub fn stack(ctx: &Context) -> Outcome {
    let code = black_box(RETURN_42);
    // SAFETY: `code` holds a complete function that follows the C calling convention.
    let returned = unsafe { call(code.as_ptr()) };
    report(ctx, returned)
}

/// `exec-heap`: call the code from a buffer the allocator (glibc's malloc) hands out.
pub fn heap(ctx: &Context) -> Outcome {
    let code = black_box(Box::new(RETURN_42));
    // SAFETY: as in `stack`.
    let returned = unsafe { call(code.as_ptr()) };
    report(ctx, returned)
}

/// `exec-anon`: call the code from an anonymous mapping that is readable and writable.
pub fn anon(ctx: &Context) -> Outcome {
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let mut mapping = Mapping::anonymous(PAGE_SIZE, prot).map_err(|e| format!("mmap: {e}"))?;
    mapping.write(&RETURN_42)?;
    // SAFETY: as in `stack`.
    let returned = unsafe { call(mapping.as_ptr()) };
    report(ctx, returned)
}

/// Calls the code at `code`.
///
/// # Safety
/// `code` must point to a whole function with the C calling convention that takes no
/// arguments and returns an `i32`. If its memory is not executable the process faults,
/// which is what the checks look for.
unsafe fn call(code: *const u8) -> i32 {
    let function = std::mem::transmute::<*const u8, extern "C" fn() -> i32>(black_box(code));
    function()
}

fn report(ctx: &Context, returned: i32) -> Outcome {
    let result = if returned == 42 {
        "executed"
    } else {
        "unexpected"
    };
    record::encode(&Executed {
        check: ctx.name,
        result,
        returned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling path works when the kernel lets the code run: written, then made
    /// read-only and executable (which hardened kernels refuse, hence no assertion then).
    #[test]
    fn code_made_executable_returns_42() {
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let mut mapping = Mapping::anonymous(PAGE_SIZE, rw).unwrap();
        mapping.write(&RETURN_42).unwrap();
        if mapping.protect(libc::PROT_READ | libc::PROT_EXEC).is_err() {
            return;
        }
        // SAFETY: the mapping holds the whole function and is executable now.
        assert_eq!(unsafe { call(mapping.as_ptr()) }, 42);
    }
}
