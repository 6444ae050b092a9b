//! What a run tells its reader: a summary table, the diff and console tail of
//! each failure, and per-case artifacts on disk.

use crate::error::{Error, Result};
use crate::machine::qemu;
use crate::run::RunReport;
use crate::runner::{CaseResult, Verdict};
use crate::snapshot::SnapshotVerdict;
use std::fmt::Write as _;
use std::path::Path;

/// How many console lines a failure shows.
const CONSOLE_TAIL: usize = 25;

/// The summary table: case, outcome, verdict, seconds.
pub fn summary(report: &RunReport) -> String {
    let width = report
        .results
        .iter()
        .map(|r| r.case.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<17}  {:<7}  {:>7}\n",
        "case", "outcome", "verdict", "seconds"
    );
    for result in &report.results {
        let verdict = crate::run::verdict_word(result);
        let _ = writeln!(
            out,
            "{:<width$}  {:<17}  {:<7}  {:>7.1}",
            result.case.name,
            result.observation.outcome.kind(),
            verdict,
            result.seconds
        );
    }
    let count = |f: fn(&Verdict) -> bool| report.results.iter().filter(|r| f(&r.verdict)).count();
    let _ = writeln!(
        out,
        "{} passed, {} failed, {} skipped (accelerator {}: {})",
        count(|v| matches!(v, Verdict::Pass)),
        count(|v| matches!(v, Verdict::Fail(_))),
        count(|v| matches!(v, Verdict::Skip(_))),
        report.context.host.accel,
        report.context.host.accel_reason
    );
    if let Some(by) = &report.interrupted {
        let stopped = count(|v| matches!(v, Verdict::Interrupted(_)));
        let _ = writeln!(
            out,
            "interrupted by {by}: {stopped} case(s) did not finish; this report is partial"
        );
    }
    out
}

/// Skips and failures explained, each in its own block.
pub fn explanations(report: &RunReport) -> String {
    let mut out = String::new();
    for result in &report.results {
        match &result.snapshot {
            Some(SnapshotVerdict::Created(path)) => {
                let _ = writeln!(out, "wrote new snapshot {}", path.display());
            }
            Some(SnapshotVerdict::Updated(path)) => {
                let _ = writeln!(out, "updated snapshot {}", path.display());
            }
            _ => {}
        }
        match &result.verdict {
            Verdict::Pass => {}
            Verdict::Skip(reason) => {
                let _ = writeln!(out, "skipped {}: {reason}", result.case.name);
            }
            Verdict::Interrupted(reason) => {
                let _ = writeln!(out, "{}: {reason}", result.case.name);
            }
            Verdict::Fail(reasons) => out.push_str(&failure(report, result, reasons)),
        }
    }
    out
}

fn failure(report: &RunReport, result: &CaseResult, reasons: &[String]) -> String {
    let mut out = format!(
        "\n=== FAIL {} ({}:{})\n",
        result.case.name,
        result.case.file.display(),
        result.case.line
    );
    for reason in reasons {
        let _ = writeln!(out, "  {reason}");
    }
    if let Some(SnapshotVerdict::Mismatch { diff, .. }) = &result.snapshot {
        let _ = writeln!(out, "--- snapshot diff (golden -> observed)\n{diff}");
    }
    if !result.argv.is_empty() {
        let line = qemu::shell_line(&report.context.host.qemu, &result.argv);
        let _ = writeln!(out, "--- qemu argv\n{line}");
    }
    let tail = console_tail(&result.serial, CONSOLE_TAIL);
    if !tail.is_empty() {
        let _ = writeln!(out, "--- console (last {CONSOLE_TAIL} lines)\n{tail}");
    }
    let _ = writeln!(out, "--- reproduce\n{}", reproduce(report, result));
    let _ = writeln!(
        out,
        "--- open a shell in this VM\n{}",
        repro_shell(report, result)
    );
    out
}

/// The last `n` clean lines of a raw serial log.
pub fn console_tail(serial: &[u8], n: usize) -> String {
    let all = crate::console::clean_lines(serial);
    let start = all.len().saturating_sub(n);
    all[start..].join("\n")
}

/// The command that runs this one case again: same kernel, modules, label,
/// snapshots, memory and accelerator, through this very vmgate binary.
pub fn reproduce(report: &RunReport, result: &CaseResult) -> String {
    let context = &report.context;
    let kernel = &context.kernel;
    let exe = std::env::current_exe().map(|p| p.display().to_string());
    let mut words = vec![exe.unwrap_or_else(|_| "vmgate".into()), "run".into()];
    words.push(result.case.file.display().to_string());
    words.extend(["--filter".into(), result.case.name.clone()]);
    words.extend(["--kernel".into(), kernel.path.display().to_string()]);
    if let Some(modules) = &kernel.modules {
        words.extend(["--modules".into(), modules.display().to_string()]);
    }
    words.extend(["--label".into(), kernel.label.clone()]);
    if let Some(root) = context.snapshot_dir.parent() {
        words.extend(["--snapshots".into(), root.display().to_string()]);
    }
    words.extend(["--memory".into(), context.memory_mib.to_string()]);
    words.extend(["--accel".into(), context.host.accel.to_string()]);
    shell_words::join(words)
}

/// The `vmgate repro` command that boots this case's VM and opens a shell.
pub fn repro_shell(report: &RunReport, result: &CaseResult) -> String {
    let run = reproduce(report, result);
    let words = shell_words::split(&run).unwrap_or_default();
    let mut repro: Vec<String> = Vec::new();
    let mut rest = words.into_iter();
    repro.extend(rest.next());
    repro.extend(["repro".to_string(), result.case.name.clone()]);
    let mut rest = rest.skip(1).peekable();
    while let Some(word) = rest.next() {
        match word.as_str() {
            "--filter" => {
                rest.next();
            }
            _ => repro.push(word),
        }
    }
    shell_words::join(repro)
}

/// Writes `<dir>/<case>/`: serial.log, console.log, qemu-argv.txt,
/// observation.json, snapshot.diff (if any) and reproduce.sh.
pub fn write_artifacts(report: &RunReport, dir: &Path) -> Result<()> {
    for result in &report.results {
        let case_dir = dir.join(&result.case.name);
        std::fs::create_dir_all(&case_dir).map_err(|e| Error::io(&case_dir, e))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = case_dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
        };
        write("serial.log", &result.serial)?;
        write(
            "console.log",
            console_tail(&result.serial, usize::MAX).as_bytes(),
        )?;
        let argv = qemu::shell_line(&report.context.host.qemu, &result.argv);
        write("qemu-argv.txt", format!("{argv}\n").as_bytes())?;
        let observation = serde_json::to_string_pretty(&result.observation).unwrap_or_default();
        write("observation.json", observation.as_bytes())?;
        if let Some(SnapshotVerdict::Mismatch { diff, .. }) = &result.snapshot {
            write("snapshot.diff", diff.as_bytes())?;
        }
        write(
            "reproduce.sh",
            format!("#!/bin/sh\n{}\n", reproduce(report, result)).as_bytes(),
        )?;
    }
    Ok(())
}

/// Every observation and verdict of a run, as JSON.
pub fn json(report: &RunReport) -> String {
    let cases: Vec<serde_json::Value> = report
        .results
        .iter()
        .map(|result| {
            serde_json::json!({
                "case": result.case.name,
                "scenario": result.case.scenario,
                "file": result.case.file,
                "line": result.case.line,
                "params": result.case.params,
                "verdict": result.verdict,
                "seconds": result.seconds,
                "observation": result.observation,
            })
        })
        .collect();
    let document = serde_json::json!({
        "kernel": report.context.kernel.release,
        "label": report.context.kernel.label,
        "host": report.context.host,
        "interrupted": report.interrupted,
        "cases": cases,
    });
    serde_json::to_string_pretty(&document).unwrap_or_default()
}
