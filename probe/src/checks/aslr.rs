//! `aslr`: how many bits of each region's address change between processes. The check
//! runs `/proc/self/exe --aslr-sample` once per sample; each of those prints where its
//! stack, an anonymous mapping, the brk heap, its own code and the vDSO landed.

use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{Context, Outcome};
use crate::entropy;
use crate::record;
use crate::sys::{Errno, Mapping, PAGE_SIZE};

/// The running probe's own binary, which the kernel resolves in each new process.
const SELF: &str = "/proc/self/exe";

/// One process's addresses, as `--aslr-sample` prints them.
#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
struct Sample {
    /// A local variable on the main thread's stack.
    stack: u64,
    /// A fresh anonymous mapping.
    mmap: u64,
    /// The program break, `sbrk(0)`, where glibc's malloc grows its main heap.
    heap: u64,
    /// A function in the probe itself: it moves only when the binary is position
    /// independent (a static-pie binary is).
    pie: u64,
    /// The vDSO, from the auxiliary vector; 0 when the kernel maps none.
    vdso: u64,
}

/// One value per region, in a fixed order.
#[derive(Serialize)]
struct Regions<T> {
    stack: T,
    mmap: T,
    heap: T,
    pie: T,
    vdso: T,
}

impl<T> Regions<T> {
    fn map<U>(&self, convert: impl Fn(&T) -> U) -> Regions<U> {
        Regions {
            stack: convert(&self.stack),
            mmap: convert(&self.mmap),
            heap: convert(&self.heap),
            pie: convert(&self.pie),
            vdso: convert(&self.vdso),
        }
    }
}

#[derive(Serialize)]
struct AslrRecord<'a> {
    check: &'a str,
    result: &'static str,
    samples: u32,
    /// Bit positions above the page offset that changed across samples.
    bits: Regions<u32>,
    /// The bucket of each region's bits, stable enough for snapshots.
    bucket: Regions<&'static str>,
}

/// Runs the check.
pub fn run(ctx: &Context) -> Outcome {
    let taken = (0..ctx.samples)
        .map(|index| sample_child().map_err(|e| format!("sample {index}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;

    let bits = Regions {
        stack: entropy::varying_bits(taken.iter().map(|s| s.stack)),
        mmap: entropy::varying_bits(taken.iter().map(|s| s.mmap)),
        heap: entropy::varying_bits(taken.iter().map(|s| s.heap)),
        pie: entropy::varying_bits(taken.iter().map(|s| s.pie)),
        vdso: entropy::varying_bits(taken.iter().map(|s| s.vdso)),
    };
    let bucket = bits.map(|&bits| entropy::bucket(bits));

    let (check, samples) = (ctx.name, ctx.samples);
    record::encode(&AslrRecord {
        check,
        result: "ok",
        samples,
        bits,
        bucket,
    })
}

/// Runs one sampling process and reads its addresses.
fn sample_child() -> Result<Sample, String> {
    let output = Command::new(SELF)
        .arg("--aslr-sample")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {SELF}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{SELF} {}: {}", output.status, stderr.trim()));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("reading its addresses: {e}"))
}

/// The `--aslr-sample` mode: this process's addresses as one line of JSON.
pub fn sample_line() -> Result<String, String> {
    let sample = take_sample().map_err(|errno| format!("sampling addresses: {errno}"))?;
    record::encode(&sample)
}

fn take_sample() -> Result<Sample, Errno> {
    let marker = 0u8;
    let stack = std::hint::black_box(&marker) as *const u8 as u64;

    let mapping = Mapping::anonymous(PAGE_SIZE, libc::PROT_READ)?;
    // SAFETY: sbrk(0) only reports the current program break.
    let brk = unsafe { libc::sbrk(0) };
    if brk as isize == -1 {
        return Err(Errno::last());
    }
    // SAFETY: getauxval reads the auxiliary vector the kernel passed in.
    let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };

    Ok(Sample {
        stack,
        mmap: mapping.address(),
        heap: brk as u64,
        pie: take_sample as *const () as u64,
        vdso,
    })
}
