//! vmgate-probe in the guest: finding or building the static binary, the
//! commands that run it as root and as the unprivileged user, and its records.

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use tracing::info;

/// Where the probe lives inside the guest.
pub const GUEST_PATH: &str = "usr/bin/vmgate-probe";

/// ASLR samples per run: enough for stable entropy buckets.
pub const SAMPLES: u32 = 64;

/// The checks the probe runs, as scenarios name them.
pub const CHECKS: &[&str] = &[
    "exec-stack",
    "exec-heap",
    "exec-anon",
    "wx-mprotect",
    "ptrace-nonchild",
    "modify-ldt",
    "vsyscall",
    "aslr",
    "pax-flags",
    "kallsyms",
    "dmesg",
    "identity",
];

/// The probe's target: glibc, statically linked.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The records one run of the probe printed, per user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeRuns {
    /// Run as root.
    pub root: Vec<serde_json::Value>,
    /// Run as the unprivileged user (uid 1000).
    pub user: Vec<serde_json::Value>,
}

/// The static probe: `$VMGATE_PROBE`, or built from `source` (the `probe/`
/// crate of the workspace) with cargo, which rebuilds only what changed.
pub fn binary(source: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("VMGATE_PROBE") {
        return Ok(PathBuf::from(path));
    }
    let workspace = source.parent().unwrap_or(source);
    let manifest = source.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(Error::HostTool {
            program: "vmgate-probe".into(),
            message: format!(
                "no {} to build it from; set VMGATE_PROBE to a static vmgate-probe",
                manifest.display()
            ),
        });
    }
    info!("building vmgate-probe (static)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "vmgate-probe",
            "--target",
            TARGET,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(workspace)
        .status()
        .map_err(|e| Error::HostTool {
            program: "cargo".into(),
            message: e.to_string(),
        })?;
    if !status.success() {
        return Err(Error::HostTool {
            program: "cargo".into(),
            message: format!("building vmgate-probe failed ({status})"),
        });
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    Ok(target_dir.join(TARGET).join("release/vmgate-probe"))
}

/// The guest command that runs the probe as root: `checks`, or all when empty.
pub fn as_root(checks: &[String]) -> String {
    let known = checks.iter().filter(|c| CHECKS.contains(&c.as_str()));
    let only: Vec<&str> = known.map(String::as_str).collect();
    match only.as_slice() {
        [] => format!("/{GUEST_PATH} --samples {SAMPLES}"),
        only => format!(
            "/{GUEST_PATH} --samples {SAMPLES} --only {}",
            only.join(",")
        ),
    }
}

/// The guest command that runs the probe as the unprivileged user.
pub fn as_user(checks: &[String]) -> String {
    let inner = shell_words::quote(&as_root(checks)).into_owned();
    format!("su -s /bin/sh -c {inner} user")
}

/// The JSON records in the probe's output; other lines become error records.
pub fn records(output: &str) -> Vec<serde_json::Value> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(
                |_| serde_json::json!({"check": null, "result": "unparsed", "line": line}),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_json_and_flag_the_rest() {
        let output = "{\"check\":\"identity\",\"uid\":0}\n\nSegmentation fault\n";
        let parsed = records(output);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0]["uid"], 0);
        assert_eq!(parsed[1]["result"], "unparsed");
    }

    #[test]
    fn the_user_command_quotes_the_probe() {
        assert_eq!(
            as_user(&[]),
            "su -s /bin/sh -c '/usr/bin/vmgate-probe --samples 64' user"
        );
        let only = ["vsyscall".to_string(), "x;reboot".to_string()];
        assert_eq!(
            as_root(&only),
            "/usr/bin/vmgate-probe --samples 64 --only vsyscall"
        );
    }

    #[test]
    fn the_check_list_matches_the_probe_crate() {
        let source = include_str!("../../probe/src/checks/mod.rs");
        for check in CHECKS {
            assert!(source.contains(&format!("\"{check}\"")), "{check}");
        }
    }
}
