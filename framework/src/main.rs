//! The `vmgate` command line: a thin layer over the library that maps results
//! to the documented exit codes (0 passed, 1 a case failed, 2 usage or
//! infrastructure error).

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vmgate::bisect::StepVerdict;
use vmgate::bisect_run::StepOptions;
use vmgate::error::{Error, ExitStatus};
use vmgate::host::AccelChoice;
use vmgate::repro::ReproMode;
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
    /// One `git bisect run` step: build the tree's kernel, boot the case, exit
    /// 0 good, 1 bad, 125 untestable, 128 to abort the bisect.
    BisectStep(Box<BisectStepArgs>),
    /// Find the first bad commit (--repo) or the first bad prebuilt kernel (--kernels).
    Bisect(Box<BisectArgs>),
    /// Boot exactly the VM `run` boots for one case and open a shell in it.
    Repro(Box<ReproArgs>),
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// The case(s) to boot: names containing this.
    #[arg(long)]
    case: String,
    /// The shell command that builds the kernel in the tree.
    #[arg(long, default_value = vmgate::bisect_run::DEFAULT_BUILD)]
    build: String,
    /// A config fragment appended to .config before the build.
    #[arg(long)]
    config_fragment: Option<PathBuf>,
    /// The built image, relative to the tree.
    #[arg(long, default_value = "arch/x86/boot/bzImage")]
    image_path: PathBuf,
    /// A file in the tree holding kernel parameters every case gets.
    #[arg(long)]
    params_file: Option<PathBuf>,
    /// Boots per step; the majority decides, a tie skips the commit (125).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=15))]
    votes: u32,
}

#[derive(Debug, Args)]
struct BisectStepArgs {
    #[command(flatten)]
    build: BuildArgs,
    /// The kernel tree.
    #[arg(long, default_value = ".")]
    tree: PathBuf,
    /// Where to record each commit's observations.
    #[arg(long)]
    record: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct BisectArgs {
    /// The kernel git repository (bisect by commit).
    #[arg(long, requires_all = ["good", "bad"], conflicts_with = "kernels")]
    repo: Option<PathBuf>,
    /// A known good revision.
    #[arg(long)]
    good: Option<String>,
    /// A known bad revision.
    #[arg(long)]
    bad: Option<String>,
    /// Prebuilt kernels, oldest (good) first, newest (bad) last.
    #[arg(long, num_args = 2.., required_unless_present = "repo")]
    kernels: Vec<PathBuf>,
    #[command(flatten)]
    build: BuildArgs,
    /// The accelerator.
    #[arg(long, value_enum, default_value = "auto", env = "VMGATE_ACCEL")]
    accel: AccelChoice,
    /// The kernels' module directory, if virtio_net is a module.
    #[arg(long, env = "VMGATE_MODULES")]
    modules: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReproArgs {
    /// The case's exact name (`vmgate list` prints them).
    case: String,
    /// Only print the QEMU and SSH commands.
    #[arg(long)]
    print: bool,
    /// Keep the VM running after the shell ends, until Ctrl-C.
    #[arg(long, conflicts_with = "print")]
    keep: bool,
    #[command(flatten)]
    run: RunArgs,
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
    /// Only cases whose name contains this, or any of a comma-separated list;
    /// a part that matches no case is an error.
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
    #[arg(long, default_value_t = 512, env = "VMGATE_MEMORY",
          value_parser = clap::value_parser!(u32).range(128..=65536))]
    memory: u32,
    /// Write a JUnit XML report here.
    #[arg(long, env = "VMGATE_JUNIT")]
    junit: Option<PathBuf>,
    /// Write every observation as JSON here.
    #[arg(long, env = "VMGATE_JSON")]
    json: Option<PathBuf>,
    /// Boot each case N times; outcomes that disagree fail the case as flaky.
    #[arg(long, default_value_t = 1, env = "VMGATE_REPEAT",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,
    /// Multiply every stage deadline (boot, SSH, commands) by this.
    #[arg(long, default_value_t = 1.0, env = "VMGATE_TIMEOUT_SCALE")]
    timeout_scale: f64,
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
            Command::BisectStep(args) => bisect_step(*args).await,
            Command::Bisect(args) => interruptible(bisect(*args)).await,
            Command::Repro(args) => repro(*args).await,
            Command::Run(args) => run(*args).await,
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

/// A live display only on a terminal outside CI; elsewhere one log line per event.
fn live_display() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && !is_ci()
}

fn init_logging() {
    // Under the live display only warnings interleave with it, unless asked.
    let quiet = if live_display() { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VMGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(quiet));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Runs `work` until it ends or SIGINT/SIGTERM arrives; dropping it kills every
/// VM. The handlers exist before the work starts, and a signal wins over
/// whatever the work reports at the same moment (a child killed by the same
/// signal, say).
async fn interruptible(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(int), Ok(term)) => (int, term),
        (Err(e), _) | (_, Err(e)) => return fail(&Error::io("signal handlers", e)),
    };
    tokio::select! {
        biased;
        _ = int.recv() => fail(&Error::Interrupted),
        _ = term.recv() => fail(&Error::Interrupted),
        code = work => code,
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

fn run_options(args: &RunArgs) -> RunOptions {
    let defaults = RunOptions::for_project(&project_root());
    RunOptions {
        scenarios: scenario_paths(args.list.paths.clone()),
        kernel: args.kernel.clone(),
        modules: args.modules.clone(),
        label: args.label.clone(),
        accel: args.accel,
        filter: args.list.filter.clone(),
        shard: args.list.shard,
        jobs: args.jobs,
        image: args.image.clone().unwrap_or(defaults.image.clone()),
        snapshots: args.snapshots.clone().unwrap_or(defaults.snapshots.clone()),
        memory_mib: args.memory,
        policy: SnapshotPolicy {
            accept: args.accept,
            ci: is_ci(),
        },
        repeat: args.repeat,
        timeout_scale: args.timeout_scale,
        progress: live_display(),
        ..defaults
    }
}

/// `vmgate run`. A signal stops the cases still running (their VMs die with
/// them) and the report of what finished is still written.
async fn run(args: RunArgs) -> ExitCode {
    let mut options = run_options(&args);
    options.interrupt = match vmgate::interrupt::Interrupt::on_signals() {
        Ok(interrupt) => interrupt,
        Err(e) => return fail(&Error::io("signal handlers", e)),
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
    if let Some(by) = &report.interrupted {
        eprintln!("error: interrupted by {by}; the report covers the cases that finished");
        return exit(ExitStatus::Infrastructure);
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

/// A bisect step must never exit with a code git reads as a verdict when
/// vmgate itself breaks: a panic becomes 128, which stops the bisect.
fn abort_bisect_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::exit(128);
    }));
}

/// Snapshots a bisect step checks: the given directory, or none (a throwaway
/// directory), since each commit's kernel has its own release string.
fn step_run_options(args: &RunArgs, case: &str, scratch: &Path) -> RunOptions {
    let mut options = run_options(args);
    options.filter = Some(case.to_string());
    if args.snapshots.is_none() {
        options.snapshots = scratch.to_path_buf();
        options.policy = SnapshotPolicy {
            accept: false,
            ci: false,
        };
    }
    options
}

async fn bisect_step(args: BisectStepArgs) -> ExitCode {
    abort_bisect_on_panic();
    let scratch = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return ExitCode::from(StepVerdict::Abort(e.to_string()).exit_code()),
    };
    let options = StepOptions {
        tree: args.tree,
        build: args.build.build,
        config_fragment: args.build.config_fragment,
        image: args.build.image_path,
        params_file: args.build.params_file,
        record: args.record,
        votes: args.build.votes,
        run: step_run_options(&args.run, &args.build.case, scratch.path()),
    };
    let verdict = tokio::select! {
        verdict = vmgate::bisect_run::step(&options) => verdict,
        _ = tokio::signal::ctrl_c() => StepVerdict::Abort("interrupted".into()),
    };
    match &verdict {
        StepVerdict::Good => println!("vmgate bisect-step: good"),
        StepVerdict::Bad(why) => println!("vmgate bisect-step: bad: {why}"),
        StepVerdict::Untestable(why) => println!("vmgate bisect-step: untestable: {why}"),
        StepVerdict::Abort(why) => eprintln!("error: bisect aborted: {why}"),
    }
    ExitCode::from(verdict.exit_code())
}

async fn bisect(args: BisectArgs) -> ExitCode {
    let record = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return fail(&Error::io("temporary directory", e)),
    };
    let answer = match &args.repo {
        Some(repo) => {
            let repo = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.clone());
            let argv = step_argv(&args, &repo, record.path());
            let good = args.good.as_deref().unwrap_or_default();
            let bad = args.bad.as_deref().unwrap_or_default();
            vmgate::bisect_run::git_bisect(&repo, good, bad, &argv, record.path()).await
        }
        None => {
            let run_args = RunArgs::parse_from_defaults();
            let mut options = step_run_options(&run_args, &args.build.case, record.path());
            options.accel = args.accel;
            options.modules = args.modules.clone();
            vmgate::bisect_run::kernels(&args.kernels, &options).await
        }
    };
    match answer {
        Ok(answer) => {
            println!("first bad: {}", answer.first_bad);
            if let Some(good) = &answer.last_good {
                println!("last good: {good}");
            }
            if let Some(diff) = &answer.diff {
                println!("--- observations, last good -> first bad\n{diff}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn step_argv(args: &BisectArgs, repo: &Path, record: &Path) -> Vec<String> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("vmgate"));
    let build = &args.build;
    let mut argv = vec![exe.display().to_string(), "bisect-step".into()];
    argv.extend([
        "--case".into(),
        build.case.clone(),
        "--build".into(),
        build.build.clone(),
    ]);
    argv.extend(["--tree".into(), repo.display().to_string()]);
    argv.extend(["--record".into(), record.display().to_string()]);
    argv.extend([
        "--image-path".into(),
        build.image_path.display().to_string(),
    ]);
    argv.extend(["--accel".into(), format!("{:?}", args.accel).to_lowercase()]);
    argv.extend(["--votes".into(), build.votes.to_string()]);
    for (flag, value) in [
        ("--config-fragment", &build.config_fragment),
        ("--params-file", &build.params_file),
        ("--modules", &args.modules),
    ] {
        if let Some(value) = value {
            argv.extend([flag.to_string(), value.display().to_string()]);
        }
    }
    argv
}

async fn repro(args: ReproArgs) -> ExitCode {
    let options = run_options(&args.run);
    let mode = match (args.print, args.keep) {
        (true, _) => ReproMode::Print,
        (_, true) => ReproMode::Keep,
        _ => ReproMode::Shell,
    };
    match vmgate::repro::repro(&options, &args.case, mode).await {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => fail(&e),
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

impl RunArgs {
    /// The run options a subcommand without run flags uses: every default.
    fn parse_from_defaults() -> RunArgs {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            run: RunArgs,
        }
        Defaults::parse_from(["vmgate"]).run
    }
}
