//! Boot timings side by side in one run, on one kernel and initramfs:
//! bare QEMU to the guest's readiness marker (the limit), vmgate to the same
//! marker, one full vmgate case, and the default suite with -j1 and -j2.
//! Run with `cargo bench -p vmgate --bench boot`; prints medians and ratios.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vmgate::kernel::Kernel;
use vmgate::machine::qemu::QemuConfig;
use vmgate::run::{self, RunOptions};

const ROUNDS: usize = 5;

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn options(jobs: usize, filter: Option<&str>, snapshots: &Path) -> RunOptions {
    RunOptions {
        filter: filter.map(str::to_string),
        jobs: Some(jobs),
        snapshots: snapshots.to_path_buf(),
        ..RunOptions::for_project(&project())
    }
}

/// QEMU with the case's own argv but running at once, with no QMP, read until
/// the guest prints its readiness marker.
fn bare_boot(config: &QemuConfig) -> Duration {
    let args: Vec<String> = config.args().into_iter().filter(|a| a != "-S").collect();
    let qmp = args.iter().position(|a| a == "-qmp").unwrap_or(args.len());
    let args: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != qmp && *i != qmp + 1)
        .map(|(_, a)| a)
        .collect();
    let start = Instant::now();
    let mut child = Command::new(&config.binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu");
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
        if String::from_utf8_lossy(&line).trim_end_matches('\r') == "vmgate: ready" {
            break;
        }
    }
    let elapsed = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .unwrap_or(": ?");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{} cores,{}",
        cores,
        model.trim_start_matches([' ', '\t', ':']).trim()
    )
}

#[tokio::main]
async fn main() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let cache = vmgate::cache::Cache::from_env().expect("cache");
    let kernel = Kernel::default_kernel(&cache).expect("kernel");
    let one = options(1, Some("pax_nouderef"), scratch.path());
    let (_dir, context) = run::prepare(&one, kernel.clone()).await.expect("prepare");
    let cases = run::load_cases(&one.scenarios, Some("pax_nouderef"), None).expect("cases");
    let config = vmgate::runner::qemu_config(&context, &cases[0], scratch.path(), 0);

    let (mut bare, mut ready, mut case) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut config = config.clone();
        config.ssh_port = vmgate::machine::free_port().expect("port");
        bare.push(bare_boot(&config).as_secs_f64());
        let result = vmgate::runner::run_case(&context, cases[0].clone()).await;
        ready.push(result.observation.ready_seconds.unwrap_or(f64::NAN));
        case.push(result.seconds);
    }
    let mut image = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        vmgate::image::build(&cache, &one.image).expect("image");
        image.push(start.elapsed().as_secs_f64());
    }
    let mut suite = Vec::new();
    for jobs in [1, 2] {
        let start = Instant::now();
        run::run(&options(jobs, None, scratch.path()))
            .await
            .expect("suite");
        suite.push(start.elapsed().as_secs_f64());
    }
    let limit = median(bare.clone());
    println!("vmgate boot benchmark, {}", machine());
    println!(
        "kernel {} under {} ({})",
        kernel.release, context.host.accel, context.host.qemu_version
    );
    println!("{:<44} {:>9} {:>8}", "measure", "seconds", "ratio");
    let row = |name: &str, seconds: f64, base: f64| {
        println!("{name:<44} {seconds:>9.2} {:>8.2}", seconds / base);
    };
    row(
        &format!("bare QEMU to readiness marker (median of {ROUNDS})"),
        limit,
        limit,
    );
    row(
        "vmgate start to readiness marker (median)",
        median(ready),
        limit,
    );
    row("vmgate one full case (median)", median(case), limit);
    row("default suite -j1", suite[0], suite[0]);
    row("default suite -j2 (ratio to -j1)", suite[1], suite[0]);
    println!(
        "{:<44} {:>9.3}",
        "warm image build (median, seconds)",
        median(image)
    );
    println!(
        "{:<44} {:>9.1}",
        "peak memory of this process (MiB)",
        peak_rss_mib()
    );
}

/// The process's peak resident set (VmHWM), the VMs themselves not included.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: 0 kB");
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}
