//! Memory of the benchmark process and of the QEMU processes it starts: the
//! kernel's peak resident set (VmHWM) for this process, and sampled resident
//! sets for the QEMU children, which VmHWM does not count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A `kB` field of a `/proc/<pid>/status` file, in MiB.
fn status_mib(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// This process's peak resident set since it started or since [`reset_peak`].
pub fn peak_mib() -> f64 {
    status_mib("self", "VmHWM:").unwrap_or(0.0)
}

/// Starts the peak over from the current resident set; false where the kernel
/// does not allow it, and then [`peak_mib`] covers the whole process life.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The largest count and summed resident set of QEMU children seen at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChildPeak {
    /// QEMU processes alive together.
    pub count: usize,
    /// Their resident sets added up, in MiB.
    pub rss_mib: f64,
}

/// Samples this process's QEMU children until stopped.
pub struct ChildSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ChildPeak>,
}

impl ChildSampler {
    /// Samples every 100 ms from now on.
    pub fn start() -> ChildSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = ChildPeak::default();
            while !flag.load(Ordering::Relaxed) {
                let now = qemu_children();
                peak.count = peak.count.max(now.count);
                peak.rss_mib = peak.rss_mib.max(now.rss_mib);
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        ChildSampler { stop, thread }
    }

    /// Stops sampling and returns the peak.
    pub fn finish(self) -> ChildPeak {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The QEMU processes among the children of this process's threads, now.
fn qemu_children() -> ChildPeak {
    let mut now = ChildPeak::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return now;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.starts_with("qemu") {
                now.count += 1;
                now.rss_mib += status_mib(pid, "VmRSS:").unwrap_or(0.0);
            }
        }
    }
    now
}
