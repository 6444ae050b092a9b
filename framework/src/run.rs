//! A whole run: validate the scenarios, get the kernel and image, probe the
//! host, boot every case with at most N at a time, and collect the results.

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::guest_probe;
use crate::host::{self, AccelChoice};
use crate::image;
use crate::initramfs::Archive;
use crate::interrupt::Interrupt;
use crate::kernel::Kernel;
use crate::machine::ssh::ClientKey;
use crate::modules::{self, ModuleTree};
use crate::progress::Progress;
use crate::runner::{self, CaseResult, RunContext};
use crate::scenario::{self, Case};
use crate::shard::Shard;
use crate::snapshot::SnapshotPolicy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

/// What `vmgate run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Scenario files or directories.
    pub scenarios: Vec<PathBuf>,
    /// The kernel; `None` for Debian's cloud kernel.
    pub kernel: Option<PathBuf>,
    /// The kernel's `lib/modules/<release>` directory, if it needs modules.
    pub modules: Option<PathBuf>,
    /// Overrides the snapshot label.
    pub label: Option<String>,
    /// The accelerator choice.
    pub accel: AccelChoice,
    /// Only cases whose name contains this.
    pub filter: Option<String>,
    /// Only this shard of the cases.
    pub shard: Option<Shard>,
    /// Parameters added after every case's own (a bisect's baked-in parameters).
    pub extra_params: Vec<String>,
    /// VMs at a time; `None` picks from the host's cores and memory.
    pub jobs: Option<usize>,
    /// The image recipe directory.
    pub image: PathBuf,
    /// The snapshot root; a run uses `<root>/<label>`.
    pub snapshots: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// How snapshots are checked.
    pub policy: SnapshotPolicy,
    /// Whether any case runs vmgate-probe, so the image needs it; `run` sets it.
    pub wants_probe: bool,
    /// Boots of each case; outcomes that disagree make the case `flaky`.
    pub repeat: u32,
    /// Multiplies every stage deadline.
    pub timeout_scale: f64,
    /// Show a live display on the terminal.
    pub progress: bool,
    /// Stops the run early; the cases that finished are still reported.
    pub interrupt: Interrupt,
}

impl RunOptions {
    /// The defaults for a project checkout at `root`: its scenarios, image
    /// recipe and snapshots; the default kernel; `auto` acceleration; jobs by
    /// the host; one boot per case; snapshots checked as on a developer's machine.
    pub fn for_project(root: &Path) -> RunOptions {
        RunOptions {
            scenarios: vec![root.join("scenarios")],
            kernel: None,
            modules: None,
            label: None,
            accel: AccelChoice::Auto,
            filter: None,
            shard: None,
            extra_params: Vec::new(),
            jobs: None,
            image: root.join("images/minimal"),
            snapshots: root.join("snapshots"),
            memory_mib: 512,
            policy: SnapshotPolicy {
                accept: false,
                ci: false,
            },
            wants_probe: false,
            repeat: 1,
            timeout_scale: 1.0,
            progress: false,
            interrupt: Interrupt::new(),
        }
    }
}

/// The probe crate beside the image recipes: `<project>/probe` for `<project>/images/<name>`.
fn probe_source(image: &Path) -> PathBuf {
    image.join("../../probe")
}

/// A finished run.
#[derive(Debug)]
pub struct RunReport {
    /// The shared context the cases ran in.
    pub context: RunContext,
    /// Every case's result, in scenario order.
    pub results: Vec<CaseResult>,
    /// What stopped the run early, if something did (`SIGINT`, `SIGTERM`).
    pub interrupted: Option<String>,
}

/// Loads, filters and shards the cases; every problem is reported before any
/// VM starts.
pub fn load_cases(
    paths: &[PathBuf],
    filter: Option<&str>,
    shard: Option<Shard>,
) -> Result<Vec<Case>> {
    let mut cases = scenario::load(paths)?;
    if let Some(pattern) = filter {
        cases = scenario::filter(cases, pattern).map_err(Error::Usage)?;
    }
    if let Some(shard) = shard {
        let names: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mine = shard.select(&refs);
        cases.retain(|case| mine.contains(&case.name.as_str()));
    }
    Ok(cases)
}

/// Runs every case and returns the results; errors are infrastructure failures.
pub async fn run(options: &RunOptions) -> Result<RunReport> {
    let mut cases = load_cases(&options.scenarios, options.filter.as_deref(), options.shard)?;
    for case in &mut cases {
        case.params.extend(options.extra_params.iter().cloned());
    }
    let kernel = match &options.kernel {
        Some(path) => Kernel::from_path(path, options.modules.clone())?,
        None => Kernel::default_kernel(&Cache::from_env()?)?,
    }
    .with_label(options.label.clone())?;
    info!(kernel = %kernel.path.display(), release = %kernel.release, cases = cases.len(), "run");
    let mut options = options.clone();
    options.wants_probe = cases.iter().any(|case| case.observe.probe);
    let (run_dir, context) = tokio::select! {
        biased;
        by = options.interrupt.wait() => {
            return Err(Error::InterruptedEarly(by))
        }
        prepared = prepare(&options, kernel) => prepared?,
    };
    check_cpu_flags(&cases, &context.host)?;
    let jobs = options
        .jobs
        .unwrap_or_else(|| default_jobs(options.memory_mib))
        .max(1);
    let timings = Timings::load(&context.kernel.label);
    let progress = Progress::new(
        cases.len() * options.repeat.max(1) as usize,
        options.progress,
    );
    let plan = Plan {
        jobs,
        repeat: options.repeat.max(1),
        timings: &timings,
        progress: &progress,
        interrupt: &options.interrupt,
    };
    let results = run_cases(&context, cases, plan).await;
    progress.clear();
    let interrupted = options.interrupt.requested().map(str::to_string);
    if interrupted.is_none() {
        timings.save(&results);
    }
    drop(run_dir);
    Ok(RunReport {
        context,
        results,
        interrupted,
    })
}

/// A required CPU flag QEMU has never heard of is a typo, not a reason to skip
/// the case forever.
fn check_cpu_flags(cases: &[Case], host: &crate::host::Host) -> Result<()> {
    let problems: Vec<String> = cases
        .iter()
        .flat_map(|case| case.requires.cpu.iter().map(move |flag| (case, flag)))
        .filter(|(_, flag)| !host.cpu_known.is_empty() && !host.cpu_known.contains(flag.as_str()))
        .map(|(case, flag)| {
            format!(
                "{}:{}: QEMU knows no CPU flag `{flag}`",
                case.file.display(),
                case.line
            )
        })
        .collect();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(Error::Usage(problems.join("\n"))),
    }
}

/// Builds what the cases share: image, initramfs, key, host probe.
pub async fn prepare(
    options: &RunOptions,
    kernel: Kernel,
) -> Result<(tempfile::TempDir, RunContext)> {
    let cache = Cache::from_env()?;
    let image = image::build(&cache, &options.image)?;
    let run_dir = host::private_dir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let key = ClientKey::generate(run_dir.path()).map_err(|e| Error::HostTool {
        program: "vmgate".into(),
        message: e.to_string(),
    })?;
    let initrd = run_dir.path().join("initrd.img");
    let probe = match options.wants_probe {
        true => Some(guest_probe::binary(&probe_source(&options.image))?),
        false => None,
    };
    compose_initrd(&image.path, &kernel, &key, probe.as_deref(), &initrd)?;
    let host = host::probe(options.accel, &kernel.path, &initrd).await?;
    let context = RunContext {
        snapshot_dir: options.snapshots.join(&kernel.label),
        host,
        kernel,
        initrd,
        key,
        memory_mib: options.memory_mib,
        policy: options.policy,
        timeout_scale: options.timeout_scale,
    };
    Ok((run_dir, context))
}

/// The base image, then the kernel's module layer, then the run's key layer:
/// Linux unpacks concatenated archives in order, each over the last.
fn compose_initrd(
    base: &Path,
    kernel: &Kernel,
    key: &ClientKey,
    probe: Option<&Path>,
    out: &Path,
) -> Result<()> {
    let mut bytes = std::fs::read(base).map_err(|e| Error::io(base, e))?;
    let mut layers: Vec<Archive> = Vec::new();
    if let Some(dir) = &kernel.modules {
        layers.push(ModuleTree::open(dir)?.layer(&kernel.release, &modules::WANTED)?);
    }
    layers.push(image::key_layer(&key.public_line));
    if let Some(probe) = probe {
        let mut layer = Archive::new();
        let bytes = std::fs::read(probe).map_err(|e| Error::io(probe, e))?;
        layer.file(guest_probe::GUEST_PATH, 0o755, bytes);
        layers.push(layer);
    }
    for layer in layers {
        // The kernel only takes an uncompressed archive that starts 4-byte aligned.
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        bytes.extend(layer.to_cpio().map_err(|e| Error::io(out, e))?);
    }
    std::fs::write(out, bytes).map_err(|e| Error::io(out, e))
}

/// How the cases of a run are scheduled.
struct Plan<'a> {
    jobs: usize,
    repeat: u32,
    timings: &'a Timings,
    progress: &'a Progress,
    interrupt: &'a Interrupt,
}

async fn run_cases(context: &RunContext, cases: Vec<Case>, plan: Plan<'_>) -> Vec<CaseResult> {
    let context = Arc::new(context.clone());
    let slots = Arc::new(tokio::sync::Semaphore::new(plan.jobs));
    let expected = |group: &[usize]| -> f64 {
        let each = group.iter().map(|&i| plan.timings.expected(&cases[i].name));
        each.fold(0.0, |sum, seconds| sum + seconds.min(f64::MAX / 64.0))
    };
    let mut groups = crate::boot_group::groups(&cases);
    groups.sort_by(|a, b| expected(b).total_cmp(&expected(a)));
    let started = Arc::new(std::sync::Mutex::new(BTreeMap::<usize, Instant>::new()));
    let mut boots = futures::stream::FuturesUnordered::new();
    for group in &groups {
        for _ in 0..plan.repeat {
            let members: Vec<Case> = group.iter().map(|&i| cases[i].clone()).collect();
            let (context, slots, group) = (context.clone(), slots.clone(), group.clone());
            let (progress, started) = (plan.progress, started.clone());
            boots.push(async move {
                let _slot = slots.acquire_owned().await;
                let now = Instant::now();
                started
                    .lock()
                    .map(|mut s| s.extend(group.iter().map(|&i| (i, now))))
                    .ok();
                for case in &members {
                    progress.started(&case.name);
                }
                let names: Vec<String> = members.iter().map(|c| c.name.clone()).collect();
                let results = runner::run_group(&context, members).await;
                let mut indexed = Vec::new();
                for result in results {
                    progress.finished(&result.case.name, verdict_word(&result));
                    let at = names.iter().position(|name| *name == result.case.name);
                    indexed.extend(at.map(|at| (group[at], result)));
                }
                indexed
            });
        }
    }
    let mut by_case: BTreeMap<usize, Vec<CaseResult>> = BTreeMap::new();
    let stopped_by = loop {
        tokio::select! {
            biased;
            by = plan.interrupt.wait() => break Some(by),
            next = futures::StreamExt::next(&mut boots) => match next {
                Some(indexed) => {
                    for (index, result) in indexed {
                        by_case.entry(index).or_default().push(result);
                    }
                }
                None => break None,
            },
        }
    };
    // Dropping the boots still running kills their VMs.
    drop(boots);
    let mut results: BTreeMap<usize, CaseResult> = by_case
        .into_iter()
        .filter(|(_, runs)| stopped_by.is_none() || runs.len() == plan.repeat as usize)
        .filter_map(|(index, runs)| Some((index, agree(runs)?)))
        .collect();
    if let Some(by) = stopped_by {
        let started = started.lock().map(|s| s.clone()).unwrap_or_default();
        for (index, case) in cases.into_iter().enumerate() {
            let since = started.get(&index);
            let reason = match since {
                Some(_) => format!("interrupted by {by} while it ran"),
                None => format!("not started: the run was interrupted by {by}"),
            };
            results.entry(index).or_insert_with(|| {
                let mut result = runner::interrupted(&context, case, reason);
                result.seconds = since.map_or(0.0, |t| t.elapsed().as_secs_f64());
                result
            });
        }
    }
    results.into_values().collect()
}

/// The verdict as the summary table and the progress line show it.
pub fn verdict_word(result: &CaseResult) -> &'static str {
    match result.verdict {
        runner::Verdict::Pass => "pass",
        runner::Verdict::Fail(_) => "FAIL",
        runner::Verdict::Skip(_) => "skip",
        runner::Verdict::Interrupted(_) => "INTR",
    }
}

/// One result from a case's repeated boots: theirs if they agree, else the
/// first marked `flaky` with every outcome, never a silent retry into green.
fn agree(mut runs: Vec<CaseResult>) -> Option<CaseResult> {
    let outcomes: Vec<String> = runs
        .iter()
        .map(|r| format!("{} ({})", r.observation.outcome.kind(), verdict_word(r)))
        .collect();
    let mut first = (!runs.is_empty()).then(|| runs.remove(0))?;
    if outcomes.iter().any(|o| *o != outcomes[0]) {
        let reason = format!(
            "flaky: {} boots disagree: {}",
            outcomes.len(),
            outcomes.join(", ")
        );
        first.verdict = match first.verdict {
            runner::Verdict::Fail(mut reasons) => {
                reasons.insert(0, reason);
                runner::Verdict::Fail(reasons)
            }
            _ => runner::Verdict::Fail(vec![reason]),
        };
    }
    Some(first)
}

/// One VM per core, as far as memory allows (each VM costs its guest memory
/// plus about 128 MiB of QEMU's own).
pub fn default_jobs(memory_mib: u32) -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let available = available_memory_mib().unwrap_or(u64::MAX);
    let by_memory = available / (u64::from(memory_mib) + 128);
    cores.min(by_memory.max(1) as usize)
}

fn available_memory_mib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Each case's duration in the last run on a kernel label, so the longest
/// cases start first. Kept in the cache; a case never seen counts as longest.
#[derive(Debug, Default)]
struct Timings {
    path: Option<PathBuf>,
    seconds: BTreeMap<String, f64>,
}

impl Timings {
    fn load(label: &str) -> Timings {
        let path = Cache::from_env()
            .and_then(|cache| cache.dir("timings"))
            .ok()
            .map(|dir| dir.join(format!("{label}.json")));
        let seconds = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Timings { path, seconds }
    }

    fn expected(&self, case: &str) -> f64 {
        self.seconds.get(case).copied().unwrap_or(f64::MAX)
    }

    fn save(mut self, results: &[CaseResult]) {
        for result in results {
            self.seconds
                .insert(result.case.name.clone(), result.seconds);
        }
        if let (Some(path), Ok(bytes)) = (&self.path, serde_json::to_vec(&self.seconds)) {
            let _ = crate::cache::write_atomic(path, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::Accel;
    use crate::observation::{BootOutcome, Observation};
    use crate::runner::Verdict;

    fn result(outcome: BootOutcome, verdict: Verdict) -> CaseResult {
        let text = "[[scenario]]\nname = \"a\"\ndescription = \"d\"\n";
        let case = scenario::parse_str(Path::new("s.toml"), text)
            .unwrap()
            .remove(0);
        CaseResult {
            observation: Observation::not_booted("a", "6.1", Accel::Tcg, outcome),
            case,
            verdict,
            snapshot: None,
            argv: Vec::new(),
            serial: Vec::new(),
            seconds: 1.0,
        }
    }

    #[test]
    fn boots_that_agree_give_one_result() {
        let runs = vec![result(BootOutcome::Booted, Verdict::Pass); 3];
        assert_eq!(agree(runs).unwrap().verdict, Verdict::Pass);
    }

    #[test]
    fn boots_that_disagree_are_flaky_never_green() {
        let hang = BootOutcome::Hang {
            stage: "userspace".into(),
        };
        let runs = vec![
            result(BootOutcome::Booted, Verdict::Pass),
            result(
                hang,
                Verdict::Fail(vec!["expected booted, got hang".into()]),
            ),
        ];
        match agree(runs).unwrap().verdict {
            Verdict::Fail(reasons) => {
                let want = "flaky: 2 boots disagree: booted (pass), hang (FAIL)";
                assert_eq!(reasons[0], want);
            }
            other => panic!("a flaky case must fail, got {other:?}"),
        }
        assert!(agree(Vec::new()).is_none());
    }
}
