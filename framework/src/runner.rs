//! Running one case: boot its VM, wait for readiness, observe the guest over
//! SSH, shut down, and judge the observation against the expectation and the
//! golden snapshot.

use crate::event_expect::{self, SeenEvents};
use crate::host::Host;
use crate::kernel::Kernel;
use crate::kernel_log::KernelEvent;
use crate::machine::qemu::QemuConfig;
use crate::machine::ssh::{ClientKey, CommandOutput, Ssh, SshError};
use crate::machine::{free_port, Machine, StartError};
use crate::observation::{BootOutcome, CommandResult, CommandRun, Observation};
use crate::scenario::{Case, ExpectedOutcome};
use crate::snapshot::{self, SnapshotPolicy, SnapshotVerdict};
use crate::watch::{BootWatch, Wait};
use crate::{console, guest_probe, paxtest, probe, sysctl_write};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tracing::{info, info_span, warn, Instrument};

/// What every case of one run shares.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The host and its accelerator.
    pub host: Host,
    /// The kernel under test.
    pub kernel: Kernel,
    /// The run's initramfs: image, module layer and key layer.
    pub initrd: PathBuf,
    /// The run's SSH key.
    pub key: ClientKey,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// `snapshots/<label>`.
    pub snapshot_dir: PathBuf,
    /// How snapshots are checked.
    pub policy: SnapshotPolicy,
    /// Multiplies every stage deadline (`--timeout-scale`).
    pub timeout_scale: f64,
}

/// The verdict on one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "reasons", rename_all = "kebab-case")]
pub enum Verdict {
    /// Everything matched.
    Pass,
    /// What did not match.
    Fail(Vec<String>),
    /// Why the case did not run.
    Skip(String),
    /// The run stopped before the case finished: why.
    Interrupted(String),
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// What was seen.
    pub observation: Observation,
    /// The verdict.
    pub verdict: Verdict,
    /// The snapshot comparison, where the case booted at all.
    pub snapshot: Option<SnapshotVerdict>,
    /// QEMU's argv, where QEMU was started.
    pub argv: Vec<String>,
    /// The raw serial console.
    pub serial: Vec<u8>,
    /// Wall time of the case.
    pub seconds: f64,
}

/// Per-stage deadlines, scaled for the accelerator.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    banner: Duration,
    boot: Duration,
    ssh: Duration,
    command: Duration,
    paxtest: Duration,
}

impl Deadlines {
    fn for_case(ctx: &RunContext, case: &Case) -> Deadlines {
        let accel = match ctx.host.accel {
            crate::accel::Accel::Kvm => 1.0,
            crate::accel::Accel::Tcg => 4.0,
        };
        let scale = ctx.timeout_scale.max(0.01);
        let secs = |s: f64| Duration::from_secs_f64(s * accel * scale);
        let boot = case.timeout.map(|t| t.mul_f64(scale)).unwrap_or(secs(30.0));
        Deadlines {
            banner: secs(5.0),
            boot,
            ssh: secs(10.0),
            command: secs(15.0),
            paxtest: secs(60.0),
        }
    }
}

/// Runs one case from start to verdict.
pub async fn run_case(ctx: &RunContext, case: Case) -> CaseResult {
    let span = info_span!("case", case = %case.name, kernel = %ctx.kernel.label);
    async {
        let start = Instant::now();
        let mut result = match unmet_requirement(ctx, &case) {
            Some(reason) => skipped(ctx, case, reason),
            None => alone(ctx, case).await,
        };
        result.seconds = start.elapsed().as_secs_f64();
        let (outcome, verdict) = (result.observation.outcome.kind(), &result.verdict);
        info!(outcome, ?verdict, seconds = result.seconds, "case done");
        result
    }
    .instrument(span)
    .await
}

/// One case on its own boot.
async fn alone(ctx: &RunContext, case: Case) -> CaseResult {
    let fallback = case.clone();
    let (mut results, _) = boot_and_judge(ctx, vec![case]).await;
    let none = || infra_failure(ctx, fallback, "the boot gave no observation".into());
    results.pop().unwrap_or_else(none)
}

/// Runs cases that share a kernel command line (see [`crate::boot_group`])
/// on one boot, each judged on its own; a group of one is [`run_case`].
/// Cases the shared guest could not serve, because an earlier case left it
/// unusable, boot again on their own.
pub async fn run_group(ctx: &RunContext, cases: Vec<Case>) -> Vec<CaseResult> {
    if cases.len() < 2 {
        return futures::future::join_all(cases.into_iter().map(|c| run_case(ctx, c))).await;
    }
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    let span = info_span!("case", case = %names.join("+"), kernel = %ctx.kernel.label);
    let start = Instant::now();
    let (mut results, unserved) = async {
        match unmet_requirement(ctx, &cases[0]) {
            Some(reason) => {
                let skips = cases.into_iter().map(|c| skipped(ctx, c, reason.clone()));
                (skips.collect(), Vec::new())
            }
            None => boot_and_judge(ctx, cases).await,
        }
    }
    .instrument(span)
    .await;
    let share = start.elapsed().as_secs_f64() / results.len().max(1) as f64;
    for result in &mut results {
        result.seconds = share;
        let (case, verdict) = (&result.case.name, &result.verdict);
        let outcome = result.observation.outcome.kind();
        info!(%case, outcome, ?verdict, seconds = share, "case done");
    }
    if !unserved.is_empty() {
        let names: Vec<&str> = unserved.iter().map(|c| c.name.as_str()).collect();
        warn!(
            "the shared boot ended early; booting them alone: {}",
            names.join(", ")
        );
    }
    for case in unserved {
        results.push(run_case(ctx, case).await);
    }
    results
}

fn unmet_requirement(ctx: &RunContext, case: &Case) -> Option<String> {
    if let Some(accel) = case.requires.accel {
        if accel != ctx.host.accel {
            return Some(format!(
                "requires accel {accel}, running under {}",
                ctx.host.accel
            ));
        }
    }
    let missing: Vec<&str> = case
        .requires
        .cpu
        .iter()
        .filter(|flag| !ctx.host.cpu_flags.contains(flag.as_str()))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return None;
    }
    let model = match ctx.host.accel {
        crate::accel::Accel::Kvm => "host",
        crate::accel::Accel::Tcg => "max",
    };
    Some(format!(
        "guest CPU ({} under {}) lacks {}",
        model,
        ctx.host.accel,
        missing.join(", ")
    ))
}

/// The result of a case the run stopped before it finished.
pub fn interrupted(ctx: &RunContext, case: Case, reason: String) -> CaseResult {
    let outcome = BootOutcome::Interrupted {
        reason: reason.clone(),
    };
    let mut result = skipped(ctx, case, String::new());
    result.observation.outcome = outcome;
    result.verdict = Verdict::Interrupted(reason);
    result
}

fn skipped(ctx: &RunContext, case: Case, reason: String) -> CaseResult {
    let outcome = BootOutcome::Skipped {
        reason: reason.clone(),
    };
    let observation =
        Observation::not_booted(&case.name, &ctx.kernel.release, ctx.host.accel, outcome);
    CaseResult {
        case,
        observation,
        verdict: Verdict::Skip(reason),
        snapshot: None,
        argv: Vec::new(),
        serial: Vec::new(),
        seconds: 0.0,
    }
}

/// Boots once for `cases` and judges each; gives the cases the boot could
/// not serve (an earlier case left the guest unusable) back to boot alone.
async fn boot_and_judge(ctx: &RunContext, cases: Vec<Case>) -> (Vec<CaseResult>, Vec<Case>) {
    let dir = match crate::host::private_dir() {
        Ok(dir) => dir,
        Err(e) => {
            let message = format!("temporary directory: {e}");
            let failed = cases
                .into_iter()
                .map(|c| infra_failure(ctx, c, message.clone()));
            return (failed.collect(), Vec::new());
        }
    };
    let serial_log = dir.path().join("serial.log");
    let launched = tokio::time::Instant::now();
    let (served, argv) = match start_machine(ctx, &cases[0], dir.path()).await {
        Ok(machine) => {
            let argv = machine.argv().to_vec();
            (observe(ctx, &cases, machine, launched).await, argv)
        }
        Err((argv, outcome)) => (Served::Boot(Box::new(not_booted(ctx, outcome))), argv),
    };
    let serial = std::fs::read(&serial_log).unwrap_or_default();
    let observations = match served {
        Served::Boot(observation) => vec![*observation; cases.len()],
        Served::Cases(observations) => observations,
    };
    let mut cases = cases.into_iter();
    let results = observations
        .into_iter()
        .zip(cases.by_ref())
        .map(|(observation, case)| judge(ctx, case, observation, argv.clone(), serial.clone()))
        .collect();
    (results, cases.collect())
}

fn not_booted(ctx: &RunContext, outcome: BootOutcome) -> Observation {
    Observation::not_booted("", &ctx.kernel.release, ctx.host.accel, outcome)
}

fn infra_failure(ctx: &RunContext, case: Case, message: String) -> CaseResult {
    let observation = not_booted(ctx, BootOutcome::QemuError { message });
    judge(ctx, case, observation, Vec::new(), Vec::new())
}

/// The QEMU configuration of `case`: what `run`, `repro` and bisects all boot.
pub fn qemu_config(ctx: &RunContext, case: &Case, dir: &std::path::Path, port: u16) -> QemuConfig {
    QemuConfig {
        binary: ctx.host.qemu.clone(),
        accel: ctx.host.accel,
        memory_mib: ctx.memory_mib,
        cpus: 1,
        kernel: ctx.kernel.path.clone(),
        initrd: ctx.initrd.clone(),
        params: case.params.clone(),
        qmp_socket: dir.join("qmp.sock"),
        ssh_port: port,
    }
}

/// Starts QEMU; a forward port taken in the meantime gets one retry on a new port.
async fn start_machine(
    ctx: &RunContext,
    case: &Case,
    dir: &std::path::Path,
) -> Result<Machine, (Vec<String>, BootOutcome)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port().map_err(|e| (Vec::new(), qemu_error(e.to_string())))?;
        let config = qemu_config(ctx, case, dir, port);
        info!(cmdline = %config.cmdline(), accel = %config.accel, "boot started");
        match Machine::start(&config, &dir.join("serial.log")).await {
            Ok(machine) => return Ok(machine),
            Err(StartError::Qmp { stderr, .. })
                if attempt == 1 && stderr.contains("Could not set up host forwarding rule") =>
            {
                warn!("forward port taken; retrying on a new port");
                let _ = std::fs::remove_file(dir.join("qmp.sock"));
            }
            Err(StartError::Unresponsive { message }) => {
                let stage = format!("QEMU start ({message})");
                return Err((config.args(), BootOutcome::Hang { stage }));
            }
            Err(e) => return Err((config.args(), qemu_error(start_message(e)))),
        }
    }
}

fn start_message(e: StartError) -> String {
    match e {
        StartError::Qmp { message, stderr } => {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            last.map(|l| l.trim().to_string()).unwrap_or(message)
        }
        other => other.to_string(),
    }
}

fn qemu_error(message: String) -> BootOutcome {
    BootOutcome::QemuError { message }
}

/// Where a case's part of a boot starts in the watch's event and oops lists.
/// A case gets what the boot showed before readiness and what came during
/// its own observation; the last case served also gets what came after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Mark {
    events: usize,
    oopses: usize,
}

impl Mark {
    fn now(watch: &BootWatch) -> Mark {
        Mark {
            events: watch.events.len(),
            oopses: watch.console.oopses.len(),
        }
    }
}

/// What one boot gave its cases.
enum Served {
    /// The boot ended before any case was observed: this is every case's.
    Boot(Box<Observation>),
    /// One observation per case served, in order; serving stops after the
    /// first case whose observation did not end `booted`.
    Cases(Vec<Observation>),
}

/// Boots to readiness, reads what each case asks for in turn, and shuts the
/// machine down.
async fn observe(
    ctx: &RunContext,
    cases: &[Case],
    mut machine: Machine,
    launched: tokio::time::Instant,
) -> Served {
    let deadlines = Deadlines::for_case(ctx, &cases[0]);
    let mut watch = BootWatch::since(launched);
    let now = tokio::time::Instant::now();
    let (banner, boot) = (now + deadlines.banner, now + deadlines.boot);
    let mut served = Vec::new();
    let outcome = match watch.until_ready(&mut machine, banner, boot).await {
        Wait::Ended(outcome) => Some(outcome),
        Wait::Ready => unreachable_guest(&watch),
    };
    let ready = Mark::now(&watch);
    let before_cases = outcome.is_some();
    match outcome {
        Some(outcome) => served.push((not_booted(ctx, outcome), ready)),
        None => serve(ctx, cases, &mut machine, &mut watch, &mut served).await,
    }
    let mut observations = finish_boot(machine, watch, ready, served).await;
    match observations.pop() {
        Some(observation) if before_cases => Served::Boot(Box::new(observation)),
        last => {
            observations.extend(last);
            Served::Cases(observations)
        }
    }
}

/// Why SSH cannot work on a guest that printed its readiness marker, if so.
fn unreachable_guest(watch: &BootWatch) -> Option<BootOutcome> {
    let error = match (&watch.no_network, &watch.console.host_key) {
        (Some(error), _) => error.clone(),
        (None, None) => "the guest printed no host key before its readiness marker".into(),
        (None, Some(_)) => return None,
    };
    Some(BootOutcome::SshUnreachable { error })
}

/// Observes each case on the ready guest, in order, until one does not end
/// `booted`; each observation goes to `served` with where its part starts.
async fn serve(
    ctx: &RunContext,
    cases: &[Case],
    machine: &mut Machine,
    watch: &mut BootWatch,
    served: &mut Vec<(Observation, Mark)>,
) {
    let host_key = watch.console.host_key.clone().unwrap_or_default();
    let mut ssh = None;
    for case in cases {
        let deadlines = Deadlines::for_case(ctx, case);
        let start = Mark::now(watch);
        let mut observation = not_booted(ctx, BootOutcome::Booted);
        let door = (machine.ssh_port(), host_key.as_str());
        let guest = read_guest(ctx, case, &mut ssh, door, deadlines, &mut observation);
        let reached = tokio::select! {
            outcome = guest => Some(outcome),
            _ = watch.until_fatal(machine) => None,
        };
        observation.outcome = match reached {
            Some(BootOutcome::SshUnreachable { error }) => {
                // A guest that died under SSH shows why on its console: that
                // outranks the SSH error.
                let grace = tokio::time::timeout(deadlines.banner, watch.until_fatal(machine));
                match grace.await {
                    Ok(()) => watch.ended(machine, "observation"),
                    Err(_) => BootOutcome::SshUnreachable { error },
                }
            }
            Some(outcome) => outcome,
            None => watch.ended(machine, "observation"),
        };
        let done = observation.outcome != BootOutcome::Booted;
        served.push((observation, start));
        if done {
            break;
        }
    }
}

/// Shuts the machine down and completes each served observation from the
/// console: a fatal event after the last observation is the last case's, and
/// an oops in a case's part of the boot makes its outcome `oops`.
async fn finish_boot(
    mut machine: Machine,
    mut watch: BootWatch,
    ready: Mark,
    mut served: Vec<(Observation, Mark)>,
) -> Vec<Observation> {
    watch.drain(&mut machine);
    if let Some((last, _)) = served.last_mut() {
        if watch.fatal() && last.outcome == BootOutcome::Booted {
            last.outcome = watch.ended(&machine, "shutdown");
        }
    }
    machine.shutdown(Duration::from_secs(5)).await;
    watch.finish();
    let ends: Vec<Option<Mark>> = served.iter().skip(1).map(|(_, s)| Some(*s)).collect();
    let parts = served.iter_mut().zip(ends.into_iter().chain([None]));
    for ((observation, start), end) in parts {
        fill_from_console(observation, &watch, ready, *start, end);
        if let (BootOutcome::Booted, Some(first)) =
            (&observation.outcome, observation.oopses.first())
        {
            observation.outcome = BootOutcome::Oops {
                line: first.clone(),
            };
        }
    }
    served
        .into_iter()
        .map(|(observation, _)| observation)
        .collect()
}

/// Copies what the console showed into an observation: the boot's part up to
/// `ready`, and the case's part from `start` to `end` (the end when `None`).
fn fill_from_console(
    observation: &mut Observation,
    watch: &BootWatch,
    ready: Mark,
    start: Mark,
    end: Option<Mark>,
) {
    let part = |all: usize, boot: usize, from: usize, to: Option<usize>| {
        let to = to.unwrap_or(all).min(all);
        (boot.min(all), from.min(to), to)
    };
    let (boot, from, to) = part(
        watch.events.len(),
        ready.events,
        start.events,
        end.map(|e| e.events),
    );
    observation.kernel_events = watch.events[..boot].to_vec();
    observation
        .kernel_events
        .extend_from_slice(&watch.events[from.max(boot)..to]);
    let oopses = &watch.console.oopses;
    let (boot, from, to) = part(
        oopses.len(),
        ready.oopses,
        start.oopses,
        end.map(|e| e.oopses),
    );
    observation.oopses = oopses[..boot].to_vec();
    observation
        .oopses
        .extend_from_slice(&oopses[from.max(boot)..to]);
    let console = &watch.console;
    observation.command_line = console.command_line.clone();
    observation.unknown_params = console.unknown_params.clone();
    observation.ready_seconds = watch.ready_after.map(|d| d.as_secs_f64());
}

/// The SSH part of a case, connecting first if no earlier case of the boot
/// did; returns the outcome it reached.
async fn read_guest(
    ctx: &RunContext,
    case: &Case,
    ssh: &mut Option<Ssh>,
    (port, host_key): (u16, &str),
    deadlines: Deadlines,
    observation: &mut Observation,
) -> BootOutcome {
    if ssh.is_none() {
        match connect(ctx, port, host_key, deadlines.ssh).await {
            Ok(connected) => *ssh = Some(connected),
            Err(error) => {
                return BootOutcome::SshUnreachable {
                    error: error.to_string(),
                }
            }
        }
        info!("ssh ready");
    }
    let Some(ssh) = ssh.as_ref() else {
        return BootOutcome::Booted;
    };
    match observe_guest(ssh, case, deadlines, observation).await {
        Ok(()) => BootOutcome::Booted,
        Err(outcome) => outcome,
    }
}

/// Everything a case reads over SSH, in order: sysctl writes, sysctls,
/// commands, the probe, paxtest. Stops at the first step the guest fails.
async fn observe_guest(
    ssh: &Ssh,
    case: &Case,
    deadlines: Deadlines,
    observation: &mut Observation,
) -> Result<(), BootOutcome> {
    let writes = &case.observe.sysctl_writes;
    if !writes.is_empty() {
        let scripts = sysctl_write::write_script(writes);
        let out = steps(ssh, "sysctl writes", &scripts, deadlines.command).await?;
        observation.sysctl_writes = sysctl_write::parse_writes(writes, &out);
    }
    let keys = sysctl_keys(case);
    if !keys.is_empty() {
        let scripts = probe::sysctl_script(&keys);
        let out = steps(ssh, "sysctl reads", &scripts, deadlines.command).await?;
        observation.sysctls = probe::parse_sysctls(&keys, &out);
    }
    for argv in &case.observe.commands {
        let line = shell_words::join(argv);
        // Recorded before it runs, so a guest that ends mid-command shows which one.
        observation.commands.push(CommandResult {
            argv: argv.clone(),
            result: CommandRun::Failed {
                error: "the guest ended while it ran".into(),
            },
        });
        let ran = step(ssh, &format!("command `{line}`"), &line, deadlines.command).await;
        let result = match &ran {
            Ok(output) => CommandRun::Ran(output.clone()),
            Err(outcome) => CommandRun::Failed {
                error: outcome.detail().unwrap_or_default().to_string(),
            },
        };
        if let Some(last) = observation.commands.last_mut() {
            last.result = result;
        }
        ran?;
    }
    if case.observe.probe {
        let checks = &case.observe.probe_checks;
        let root = guest_probe::as_root(checks);
        let root = step(ssh, "vmgate-probe as root", &root, deadlines.paxtest).await?;
        let user = guest_probe::as_user(checks);
        let user = step(ssh, "vmgate-probe as user", &user, deadlines.paxtest).await?;
        observation.probe = Some(guest_probe::ProbeRuns {
            root: guest_probe::records(&root.stdout),
            user: guest_probe::records(&user.stdout),
        });
    }
    if case.observe.paxtest {
        let tests: Vec<&str> = paxtest::stable_tests().collect();
        let script = paxtest::framed_script(&tests);
        let out = step(ssh, "paxtest", &script, deadlines.paxtest).await?;
        observation.paxtest = Some(paxtest::parse_framed(&out.stdout));
    }
    Ok(())
}

/// Runs the scripts of one step in turn; gives their standard output joined.
async fn steps(
    ssh: &Ssh,
    what: &str,
    scripts: &[String],
    within: Duration,
) -> Result<String, BootOutcome> {
    let mut stdout = String::new();
    for script in scripts {
        stdout.push_str(&step(ssh, what, script, within).await?.stdout);
    }
    Ok(stdout)
}

/// Runs one step in the guest; a failure becomes the outcome it means: no
/// answer before the deadline is a hang of that step, a lost connection is
/// an unreachable guest.
async fn step(
    ssh: &Ssh,
    what: &str,
    script: &str,
    within: Duration,
) -> Result<CommandOutput, BootOutcome> {
    ssh.exec(script, within).await.map_err(|error| match error {
        SshError::Timeout(after) => BootOutcome::Hang {
            stage: format!("{what} (no answer in {}s)", after.as_secs()),
        },
        other => BootOutcome::SshUnreachable {
            error: format!("lost the guest during {what}: {other}"),
        },
    })
}

/// The sysctls a case reads: those it observes and those it expects.
fn sysctl_keys(case: &Case) -> Vec<String> {
    let mut keys = case.observe.sysctls.clone();
    for key in case.expect.sysctls.keys() {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    keys
}

/// Connects, retrying refused, reset and timed-out attempts until `within` ends:
/// QEMU's forward accepts connections before the guest's sshd does.
async fn connect(
    ctx: &RunContext,
    port: u16,
    host_key: &str,
    within: Duration,
) -> Result<Ssh, SshError> {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(20);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let attempt = Ssh::connect(port, &ctx.key, host_key, left.max(pause)).await;
        match attempt {
            Ok(ssh) => return Ok(ssh),
            Err(e @ (SshError::HostKeyMismatch | SshError::Auth(_) | SshError::Key(_))) => {
                return Err(e)
            }
            Err(e) if tokio::time::Instant::now() + pause >= deadline => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "ssh not ready; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }
}

/// Judges an observation: the expected outcome first, then the snapshot.
fn judge(
    ctx: &RunContext,
    case: Case,
    mut observation: Observation,
    argv: Vec<String>,
    serial: Vec<u8>,
) -> CaseResult {
    observation.case = case.name.clone();
    let mut reasons = expectation_failures(&case, &observation.outcome);
    reasons.extend(unexpected_kills(&observation.kernel_events));
    reasons.extend(event_failures(&case, &observation, &serial));
    if observation.outcome == BootOutcome::Booted {
        reasons.extend(guest_failures(ctx, &case, &observation));
    }
    let rendered = snapshot::render(&observation);
    let path = snapshot::path_for(&ctx.snapshot_dir, &case.name);
    // A case that already failed its expectation never creates a golden file.
    let policy = SnapshotPolicy {
        ci: ctx.policy.ci || !reasons.is_empty(),
        accept: ctx.policy.accept && reasons.is_empty(),
    };
    let snapshot = match snapshot::check(&path, &case.name, &rendered, policy) {
        Ok(verdict) => Some(verdict),
        Err(e) => {
            reasons.push(format!("snapshot: {e}"));
            None
        }
    };
    match &snapshot {
        Some(SnapshotVerdict::Mismatch { path, .. }) => {
            reasons.push(format!("snapshot differs from {}", path.display()));
        }
        Some(SnapshotVerdict::Missing(path)) if reasons.is_empty() => reasons.push(format!(
            "no snapshot at {} (CI never creates one: run `vmgate run --accept` and commit it)",
            path.display()
        )),
        _ => {}
    }
    let verdict = if reasons.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(reasons)
    };
    CaseResult {
        case,
        observation,
        verdict,
        snapshot,
        argv,
        serial,
        seconds: 0.0,
    }
}

/// Required console events that did not occur and forbidden ones that did.
fn event_failures(case: &Case, observation: &Observation, serial: &[u8]) -> Vec<String> {
    let (required, forbidden) = (&case.expect.events, &case.expect.no_events);
    if required.is_empty() && forbidden.is_empty() {
        return Vec::new();
    }
    let lines = crate::console::clean_lines(serial);
    let console: Vec<String> = lines.iter().map(|l| console::message(l).into()).collect();
    let seen = SeenEvents {
        kernel: &observation.kernel_events,
        unknown_params: &observation.unknown_params,
        console: &console,
    };
    event_expect::failures(seen, required, forbidden)
}

/// What the guest showed over SSH that misses the case's expectations: sysctl
/// values, sysctl writes, and paxtest runs that are incomplete or ran elsewhere.
fn guest_failures(ctx: &RunContext, case: &Case, observation: &Observation) -> Vec<String> {
    let sysctls = &observation.sysctls;
    let misses = case.expect.sysctls.iter();
    let mut reasons: Vec<String> = misses
        .filter_map(|(key, want)| want.failure(key, sysctls.get(key)))
        .collect();
    let writes = case
        .observe
        .sysctl_writes
        .iter()
        .zip(&observation.sysctl_writes);
    reasons.extend(writes.filter_map(|(write, record)| write.failure(&record.result)));
    if let Some(report) = &observation.paxtest {
        let release = &ctx.kernel.release;
        reasons.extend(paxtest::run_failures(
            report,
            paxtest::stable_tests(),
            release,
        ));
    }
    reasons
}

/// Why an outcome does not meet the case's expectation; empty when it does.
pub fn expectation_failures(case: &Case, outcome: &BootOutcome) -> Vec<String> {
    let expected = case.expect.outcome;
    let matches = matches!(
        (expected, outcome),
        (ExpectedOutcome::Booted, BootOutcome::Booted)
            | (ExpectedOutcome::Panic, BootOutcome::Panic { .. })
            | (ExpectedOutcome::Oops, BootOutcome::Oops { .. })
            | (ExpectedOutcome::Hang, BootOutcome::Hang { .. })
            | (
                ExpectedOutcome::SshUnreachable,
                BootOutcome::SshUnreachable { .. }
            )
    );
    if !matches {
        let detail = outcome
            .detail()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return vec![format!(
            "expected {expected}, got {}{detail}",
            outcome.kind()
        )];
    }
    match (&case.expect.message, outcome.detail()) {
        (Some(wanted), Some(line)) if !line.contains(wanted.as_str()) => {
            vec![format!(
                "expected {expected} with \"{wanted}\", got: {line}"
            )]
        }
        _ => Vec::new(),
    }
}

/// PaX kills of anything but a paxtest program: paxtest provokes kills on
/// purpose, any other kill is a finding.
pub fn unexpected_kills(events: &[KernelEvent]) -> Vec<String> {
    let paxtest = |comm: &str| paxtest::TESTS.iter().any(|(binary, _)| *binary == comm);
    events
        .iter()
        .filter_map(|event| match event {
            KernelEvent::PaxKill {
                task,
                comm,
                mapping,
                ..
            } if !paxtest(comm) => {
                Some(format!("PaX killed {task} ({comm}) executing in {mapping}"))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill(comm: &str) -> KernelEvent {
        KernelEvent::PaxKill {
            mapping: "<anonymous mapping>".into(),
            start: None,
            end: None,
            address: None,
            task: format!("/usr/bin/{comm}"),
            comm: comm.into(),
            pid: 1,
            uid: None,
            euid: None,
            source: None,
        }
    }

    #[test]
    fn kills_during_paxtest_are_expected_and_others_fail() {
        assert!(unexpected_kills(&[kill("anonmap"), kill("execstack")]).is_empty());
        let found = unexpected_kills(&[kill("anonmap"), kill("player")]);
        assert_eq!(
            found,
            ["PaX killed /usr/bin/player (player) executing in <anonymous mapping>"]
        );
    }
}
