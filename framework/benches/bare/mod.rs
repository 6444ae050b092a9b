//! Bare QEMU boots to the guest's readiness marker: vmgate's own argv without
//! `-S` and QMP, and the variants the benchmark weighs against it (`quiet` on
//! the kernel command line, the `microvm` machine type).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vmgate::kernel::Kernel;
use vmgate::machine::qemu::QemuConfig;
use vmgate::modules::{ModuleTree, WANTED};

/// Longer than any healthy boot here; a microvm that lost its clock never ends.
const DEADLINE: Duration = Duration::from_secs(40);

/// What the guest printed when its init found no network interface.
const NO_NETWORK: &str = "vmgate: no network device";

/// One way of starting the same kernel and initramfs.
pub struct Variant {
    /// The row's name in the table.
    pub name: &'static str,
    /// The QEMU binary.
    pub binary: PathBuf,
    /// The argv, without the binary.
    pub args: Vec<String>,
}

/// How one bare boot ended.
pub enum Boot {
    /// The readiness marker arrived after `seconds`, QEMU having used
    /// `cpu_seconds` of processor time; `network` is false if the guest said it
    /// had none.
    Ready {
        seconds: f64,
        cpu_seconds: f64,
        network: bool,
    },
    /// QEMU exited, or the deadline passed, before the marker: the last console line.
    Failed { why: String },
}

/// vmgate's argv as it is, running at once and without QMP.
pub fn pc(config: &QemuConfig) -> Variant {
    Variant {
        name: "pc",
        binary: config.binary.clone(),
        args: unpaused(config.args()),
    }
}

/// vmgate's argv with `quiet` after the case's parameters.
pub fn pc_quiet(config: &QemuConfig) -> Variant {
    let mut config = config.clone();
    config.params.push("quiet".into());
    Variant {
        name: "pc+quiet",
        ..pc(&config)
    }
}

/// The `microvm` machine: virtio-mmio instead of PCI, an initramfs whose module
/// layer adds `virtio_mmio`, and the TSC rate given, since microvm has no HPET
/// or PM timer to calibrate against when the PIT calibration fails under TCG.
pub fn microvm(config: &QemuConfig, initrd: &Path, tsc_khz: u64) -> Variant {
    let mut config = config.clone();
    config.initrd = initrd.to_path_buf();
    config.params.push(format!("tsc_early_khz={tsc_khz}"));
    let mut args = unpaused(config.args());
    for i in 1..args.len() {
        match (args[i - 1].as_str(), args[i].as_str()) {
            ("-machine", _) => args[i] = "microvm".into(),
            ("-device", device) if device.starts_with("virtio-net-pci,") => {
                // An MMIO device has no option ROM to leave out.
                let mmio = device.replacen("virtio-net-pci", "virtio-net-device", 1);
                args[i] = mmio.replace(",romfile=", "");
            }
            _ => {}
        }
    }
    Variant {
        name: "microvm",
        binary: config.binary.clone(),
        args,
    }
}

/// Drops `-S` and the `-qmp` pair: nobody will send `cont`.
fn unpaused(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-S" => {}
            "-qmp" => {
                args.next();
            }
            _ => out.push(arg),
        }
    }
    out
}

/// `base` with a second module layer appended that also loads `virtio_mmio`;
/// its order file replaces the first one, as Linux unpacks later archives over
/// earlier ones.
pub fn mmio_initrd(base: &Path, kernel: &Kernel, out: &Path) -> Result<(), String> {
    let mut bytes = std::fs::read(base).map_err(|e| format!("{}: {e}", base.display()))?;
    if let Some(dir) = &kernel.modules {
        let mut wanted = WANTED.to_vec();
        wanted.insert(0, "virtio_mmio");
        let tree = ModuleTree::open(dir).map_err(|e| e.to_string())?;
        let layer = tree
            .layer(&kernel.release, &wanted)
            .map_err(|e| e.to_string())?;
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        bytes.extend(layer.to_cpio().map_err(|e| e.to_string())?);
    }
    std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))
}

/// The host's clock rate in kHz as `/proc/cpuinfo` states it; under TCG the
/// guest's TSC is the host's.
pub fn host_tsc_khz() -> Option<u64> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = cpu.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    Some((mhz * 1000.0).round() as u64)
}

/// Starts the variant and times it to the readiness marker.
pub fn boot(variant: &Variant) -> Boot {
    let start = Instant::now();
    let mut child = match Command::new(&variant.binary)
        .args(&variant.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Boot::Failed { why: e.to_string() },
    };

    // A reader thread, so a guest that stops printing cannot outlast the deadline.
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, seen) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let (mut network, mut last) = (true, String::new());
    let outcome = loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        match seen.recv_timeout(left) {
            Ok(line) if line == "vmgate: ready" => {
                let seconds = start.elapsed().as_secs_f64();
                let cpu_seconds = cpu_seconds(child.id()).unwrap_or(f64::NAN);
                break Boot::Ready {
                    seconds,
                    cpu_seconds,
                    network,
                };
            }
            Ok(line) => {
                network &= !line.starts_with(NO_NETWORK);
                last = line;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let why = format!("no readiness in {}s; last line: {last}", DEADLINE.as_secs());
                break Boot::Failed { why };
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let why = format!("QEMU exited; last line: {last}");
                break Boot::Failed { why };
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    drop(seen);
    let _ = reader.join();
    outcome
}

/// A process's user and system time so far: less swayed than wall time by
/// whatever else the machine runs, since TCG keeps QEMU busy until readiness.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised name, which may itself hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}
