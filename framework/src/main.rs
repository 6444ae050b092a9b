//! The `vmgate` command line: a thin layer over the library that maps results
//! to the documented exit codes (0 passed, 1 a case failed, 2 usage or
//! infrastructure error).

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vmgate::error::{Error, ExitStatus};
use vmgate::host::AccelChoice;
use vmgate::run::{self, RunOptions};
use vmgate::runner::Verdict;
use vmgate::shard::Shard;
use vmgate::snapshot::SnapshotPolicy;

/// Boot built Linux kernels in QEMU across a scenario matrix and snapshot-test
/// what each guest sees.
#[derive(Debug, Parser)]
#[command(name = "vmgate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot every case and compare each observation with its golden snapshot.
    Run(Box<RunArgs>),
    /// Print the cases, one per line, without booting anything.
    List(ListArgs),
    /// Check the host: QEMU, /dev/kvm and a KVM canary boot, image tools, cache.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// The kernel for the KVM canary [default: Debian's cloud kernel].
    #[arg(long, env = "VMGATE_KERNEL")]
    kernel: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Scenario files or directories [default: the project's scenarios/].
    paths: Vec<PathBuf>,
    /// Only cases whose name contains this.
    #[arg(long, env = "VMGATE_FILTER")]
    filter: Option<String>,
    /// Only shard i of n (1-based), split by a stable hash of the case name.
    #[arg(long, env = "VMGATE_SHARD")]
    shard: Option<Shard>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    list: ListArgs,
    /// The bzImage to boot [default: Debian's cloud kernel, fetched into the cache].
    #[arg(long, env = "VMGATE_KERNEL")]
    kernel: Option<PathBuf>,
    /// The kernel's lib/modules/<release> directory, if virtio_net is a module.
    #[arg(long, env = "VMGATE_MODULES")]
    modules: Option<PathBuf>,
    /// The snapshot directory name [default: the kernel's release string].
    #[arg(long, env = "VMGATE_LABEL")]
    label: Option<String>,
    /// The accelerator: auto proves KVM with a canary boot, else uses TCG.
    #[arg(long, value_enum, default_value = "auto", env = "VMGATE_ACCEL")]
    accel: AccelChoice,
    /// VMs at a time [default: the host's cores, as memory allows].
    #[arg(short = 'j', long, env = "VMGATE_JOBS")]
    jobs: Option<usize>,
    /// Write observed snapshots over the golden ones.
    #[arg(long)]
    accept: bool,
    /// The guest image recipe directory [default: the project's images/minimal].
    #[arg(long, env = "VMGATE_IMAGE")]
    image: Option<PathBuf>,
    /// The snapshot root [default: the project's snapshots/].
    #[arg(long, env = "VMGATE_SNAPSHOTS")]
    snapshots: Option<PathBuf>,
    /// Where per-case artifacts go.
    #[arg(
        long,
        env = "VMGATE_ARTIFACTS",
        default_value = "target/vmgate-artifacts"
    )]
    artifacts: PathBuf,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(128..=65536))]
    memory: u32,
    /// Write a JUnit XML report here.
    #[arg(long, env = "VMGATE_JUNIT")]
    junit: Option<PathBuf>,
    /// Write every observation as JSON here.
    #[arg(long, env = "VMGATE_JSON")]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&Error::io("tokio runtime", e)),
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::List(args) => list(args),
            Command::Doctor(args) => doctor(args).await,
            Command::Run(args) => interruptible(run(*args)).await,
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VMGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Runs `work` until it ends or SIGINT/SIGTERM arrives; dropping it kills every VM.
async fn interruptible(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => return fail(&Error::io("SIGTERM handler", e)),
    };
    tokio::select! {
        code = work => code,
        _ = tokio::signal::ctrl_c() => fail(&Error::Interrupted),
        _ = term.recv() => fail(&Error::Interrupted),
    }
}

fn list(args: ListArgs) -> ExitCode {
    let paths = scenario_paths(args.paths);
    match run::load_cases(&paths, args.filter.as_deref(), args.shard) {
        Ok(cases) => {
            for case in cases {
                println!("{}", case.name);
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let root = project_root();
    let options = RunOptions {
        scenarios: scenario_paths(args.list.paths),
        kernel: args.kernel,
        modules: args.modules,
        label: args.label,
        accel: args.accel,
        filter: args.list.filter,
        shard: args.list.shard,
        jobs: args.jobs,
        image: args.image.unwrap_or_else(|| root.join("images/minimal")),
        snapshots: args.snapshots.unwrap_or_else(|| root.join("snapshots")),
        memory_mib: args.memory,
        policy: SnapshotPolicy {
            accept: args.accept,
            ci: is_ci(),
        },
    };
    let report = match run::run(&options).await {
        Ok(report) => report,
        Err(e) => return fail(&e),
    };
    print!("{}", vmgate::report::explanations(&report));
    print!("\n{}", vmgate::report::summary(&report));
    if let Err(e) = vmgate::report::write_artifacts(&report, &args.artifacts) {
        eprintln!("error: artifacts not written: {e}");
    }
    if let Some(path) = &args.junit {
        write_report(path, &vmgate::junit::render(&report));
    }
    if let Some(path) = &args.json {
        write_report(path, &vmgate::report::json(&report));
    }
    let failed = report
        .results
        .iter()
        .any(|r| matches!(r.verdict, Verdict::Fail(_)));
    exit(if failed {
        ExitStatus::Failed
    } else {
        ExitStatus::Passed
    })
}

/// Writes a report file; a failure is said but does not change the verdict.
fn write_report(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("error: {}: report not written ({e})", path.display());
    }
}

async fn doctor(args: DoctorArgs) -> ExitCode {
    let mut findings = vmgate::doctor::static_checks();
    let essential_ok = findings
        .iter()
        .filter(|f| f.subject != "/dev/kvm")
        .all(|f| f.ok);
    let kernel = match args.kernel {
        Some(path) => vmgate::kernel::Kernel::from_path(&path, None),
        None => vmgate::cache::Cache::from_env()
            .and_then(|cache| vmgate::kernel::Kernel::default_kernel(&cache)),
    };
    match (&kernel, tempfile::NamedTempFile::new()) {
        (Ok(kernel), Ok(initrd)) => {
            findings.push(vmgate::doctor::kvm_canary(&kernel.path, initrd.path()).await);
        }
        (Err(e), _) => println!("skip kvm canary: no kernel ({e})"),
        (_, Err(e)) => println!("skip kvm canary: {e}"),
    }
    for finding in &findings {
        println!("{finding}");
    }
    if essential_ok {
        println!("vmgate can run here (under TCG when KVM fails)");
        exit(ExitStatus::Passed)
    } else {
        exit(ExitStatus::Infrastructure)
    }
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn scenario_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![project_root().join("scenarios")]
    } else {
        paths
    }
}

/// The nearest directory upwards holding `images/minimal/recipe.toml`, else the
/// source tree vmgate was built from.
fn project_root() -> PathBuf {
    let marker = Path::new("images/minimal/recipe.toml");
    let cwd = std::env::current_dir().unwrap_or_default();
    let found = cwd.ancestors().find(|dir| dir.join(marker).is_file());
    found
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn fail(error: &Error) -> ExitCode {
    eprintln!("error: {error}");
    exit(error.exit_status())
}

fn exit(status: ExitStatus) -> ExitCode {
    ExitCode::from(status as u8)
}
