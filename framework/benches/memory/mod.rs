//! Memory of a process and of the QEMU processes it starts: the kernel's peak
//! resident set (VmHWM) of the process itself, and the summed resident sets of
//! its QEMU children, which VmHWM does not count.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How often a watched process is sampled; VmHWM only grows, so a sample
/// misses at most the growth in the last interval before the process exits.
const INTERVAL: Duration = Duration::from_millis(50);

/// A `kB` field of a `/proc/<pid>/status` file, in MiB.
fn status_mib(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// This process's peak resident set.
pub fn own_peak_mib() -> f64 {
    status_mib("self", "VmHWM:").unwrap_or(0.0)
}

/// What watching a process to its end saw.
#[derive(Debug)]
pub struct Watched {
    /// How it ended.
    pub status: ExitStatus,
    /// From start to exit.
    pub seconds: f64,
    /// Its own peak resident set in MiB, as last sampled.
    pub peak_mib: f64,
    /// The most QEMU children alive at once.
    pub qemu_count: usize,
    /// The largest sum of their resident sets, in MiB.
    pub qemu_rss_mib: f64,
}

/// Samples `child` and its QEMU children until it exits.
pub fn watch(mut child: Child) -> std::io::Result<Watched> {
    let start = Instant::now();
    let pid = child.id().to_string();
    let (mut peak_mib, mut qemu_count, mut qemu_rss_mib) = (0.0_f64, 0, 0.0_f64);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Watched {
                status,
                seconds: start.elapsed().as_secs_f64(),
                peak_mib,
                qemu_count,
                qemu_rss_mib,
            });
        }
        peak_mib = peak_mib.max(status_mib(&pid, "VmHWM:").unwrap_or(0.0));
        let (count, rss) = qemu_children(&pid);
        qemu_count = qemu_count.max(count);
        qemu_rss_mib = qemu_rss_mib.max(rss);
        std::thread::sleep(INTERVAL);
    }
}

/// The QEMU processes among the children of `pid`'s threads, and their
/// resident sets summed in MiB.
fn qemu_children(pid: &str) -> (usize, f64) {
    let (mut count, mut rss) = (0, 0.0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (count, rss);
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            if comm.starts_with("qemu") {
                count += 1;
                rss += status_mib(child, "VmRSS:").unwrap_or(0.0);
            }
        }
    }
    (count, rss)
}
