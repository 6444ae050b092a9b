//! Boot timings side by side in one run, on one kernel and initramfs:
//! bare QEMU to the guest's readiness marker (the limit) on vmgate's own argv,
//! with `quiet` added, and on the `microvm` machine type, interleaved round by
//! round, in wall time and in QEMU's processor time (steadier when other work
//! shares the machine); vmgate to the same marker; one full vmgate case; the
//! default suite with -j1 and -j2; and the peak memory of the vmgate CLI while
//! it runs four VMs at once.
//! Run with `cargo bench -p vmgate --bench boot`; prints medians and ratios.

mod bare;
mod memory;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use vmgate::kernel::Kernel;
use vmgate::run::{self, RunOptions};

const ROUNDS: usize = 5;

/// VMs running at once while vmgate's own memory is measured.
const MEMORY_VMS: usize = 4;

/// Failed boots after which a variant is no longer measured.
const GIVE_UP: usize = 2;

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

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One bare variant's boots over the rounds.
struct Series {
    name: &'static str,
    seconds: Vec<f64>,
    cpu_seconds: Vec<f64>,
    failures: Vec<String>,
    /// Why the variant cannot be tried here at all.
    unavailable: Option<String>,
}

impl Series {
    fn new(name: &'static str) -> Series {
        Series {
            name,
            seconds: Vec::new(),
            cpu_seconds: Vec::new(),
            failures: Vec::new(),
            unavailable: None,
        }
    }

    /// A boot without network counts as failed: vmgate could not reach it.
    fn record(&mut self, round: usize, boot: bare::Boot) {
        match boot {
            bare::Boot::Ready {
                seconds,
                cpu_seconds,
                network: true,
            } => {
                self.seconds.push(seconds);
                self.cpu_seconds.push(cpu_seconds);
            }
            bare::Boot::Ready { network: false, .. } => self.failures.push(format!(
                "round {round}: ready, but the guest has no network device"
            )),
            bare::Boot::Failed { why } => self.failures.push(format!("round {round}: {why}")),
        }
    }

    fn measured(&self) -> bool {
        self.unavailable.is_none() && self.failures.len() < GIVE_UP
    }
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

    // microvm needs the virtio-mmio driver in the module layer and a TSC rate.
    let mmio_initrd = scratch.path().join("initrd-mmio.img");
    let tsc_khz = bare::host_tsc_khz();
    let mut microvm = Series::new("microvm");
    if let Err(why) = bare::mmio_initrd(&context.initrd, &kernel, &mmio_initrd) {
        microvm.unavailable = Some(format!("no initramfs with virtio_mmio: {why}"));
    }
    if tsc_khz.is_none() {
        microvm.unavailable = Some("no clock rate in /proc/cpuinfo".into());
    }

    // Bare variants interleaved, their order turning each round, then the case.
    let mut series = [Series::new("pc"), Series::new("pc+quiet"), microvm];
    let (mut ready, mut case) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let mut config = config.clone();
        config.ssh_port = vmgate::machine::free_port().expect("port");
        let mut variants = vec![bare::pc(&config), bare::pc_quiet(&config)];
        if let (true, Some(khz)) = (series[2].measured(), tsc_khz) {
            variants.push(bare::microvm(&config, &mmio_initrd, khz));
        }
        let turn = round % variants.len();
        variants.rotate_left(turn);
        for variant in &variants {
            let boot = bare::boot(variant);
            let row = series.iter_mut().find(|s| s.name == variant.name);
            row.expect("a series per variant").record(round, boot);
        }
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

    // vmgate's own memory with several VMs: the CLI in a fresh process, one case
    // booted MEMORY_VMS times at once, its peak sampled from outside.
    let bench_peak = memory::own_peak_mib();
    let vmgate = several_vms(scratch.path()).spawn().expect("vmgate");
    let several = memory::watch(vmgate).expect("watch vmgate");

    let limit = median(series[0].seconds.clone());
    let cpu_limit = median(series[0].cpu_seconds.clone());
    println!("vmgate boot benchmark, {}", machine());
    println!(
        "kernel {} under {} ({})",
        kernel.release, context.host.accel, context.host.qemu_version
    );
    println!(
        "{:<48} {:>9} {:>8} {:>9} {:>8}",
        "measure", "seconds", "ratio", "QEMU cpu", "ratio"
    );
    let row = |name: &str, seconds: f64, base: f64| {
        println!("{name:<48} {seconds:>9.2} {:>8.2}", seconds / base);
    };
    for s in &series {
        let name = format!(
            "bare QEMU {} to readiness ({} of {ROUNDS})",
            s.name,
            s.seconds.len()
        );
        let (seconds, cpu) = (median(s.seconds.clone()), median(s.cpu_seconds.clone()));
        println!(
            "{name:<48} {seconds:>9.2} {:>8.2} {cpu:>9.2} {:>8.2}",
            seconds / limit,
            cpu / cpu_limit
        );
    }
    row(
        "vmgate start to readiness marker (median)",
        median(ready),
        limit,
    );
    let one_case = median(case);
    row("vmgate one full case (median)", one_case, limit);
    row("default suite -j1", suite[0], suite[0]);
    row("default suite -j2 (ratio to -j1)", suite[1], suite[0]);
    row(
        &format!("vmgate CLI, one case x{MEMORY_VMS} at -j{MEMORY_VMS} (ratio to case)"),
        several.seconds,
        one_case,
    );
    println!(
        "{:<48} {:>9.3}",
        "warm image build (median, seconds)",
        median(image)
    );
    println!(
        "{:<48} {:>9.1}",
        "peak memory of this bench process (MiB)", bench_peak
    );
    println!(
        "{:<48} {:>9.1}",
        format!("peak memory of vmgate with {MEMORY_VMS} VMs (MiB)"),
        several.peak_mib
    );
    println!(
        "{:<48} {:>9.1}",
        format!(
            "  its QEMU children at once: {}, RSS (MiB)",
            several.qemu_count
        ),
        several.qemu_rss_mib
    );

    for s in &series {
        for failure in &s.failures {
            println!("{}: {failure}", s.name);
        }
        if let Some(why) = &s.unavailable {
            println!("{}: not measured: {why}", s.name);
        } else if !s.measured() {
            println!("{}: no longer measured after {GIVE_UP} failures", s.name);
        }
    }
    if let Some(khz) = tsc_khz {
        println!(
            "microvm: -machine microvm, virtio-net-device, virtio_mmio loaded, tsc_early_khz={khz}"
        );
    }
    println!("vmgate CLI with {MEMORY_VMS} VMs: {}", several.status);
}

/// `vmgate run` booting one case MEMORY_VMS times at once, writing snapshots
/// and artifacts into `scratch` only.
fn several_vms(scratch: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmgate"));
    command
        .arg("run")
        .args(["--filter", "pax_nouderef"])
        .args(["--jobs", &MEMORY_VMS.to_string()])
        .args(["--repeat", &MEMORY_VMS.to_string()])
        .arg("--snapshots")
        .arg(scratch.join("several/snapshots"))
        .arg("--artifacts")
        .arg(scratch.join("several/artifacts"))
        .arg(project().join("scenarios"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}
