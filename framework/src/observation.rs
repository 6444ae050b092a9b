//! What vmgate saw of one case: the boot outcome and everything read from the
//! guest. Serialised into reports; its stable part goes into the snapshot.

use crate::accel::Accel;
use crate::machine::ssh::CommandOutput;
use crate::paxtest::PaxtestReport;
use crate::probe::SysctlValue;
use serde::Serialize;
use std::collections::BTreeMap;

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum BootOutcome {
    /// Userspace was reached and SSH answered.
    Booted,
    /// The kernel panicked; `line` is its panic line.
    Panic {
        /// The `Kernel panic - not syncing: ...` line.
        line: String,
    },
    /// The guest booted but the log holds an Oops, BUG or WARNING.
    Oops {
        /// The first such line.
        line: String,
    },
    /// No progress before the stage's deadline.
    Hang {
        /// The stage that did not finish, e.g. `kernel banner` or `userspace`.
        stage: String,
    },
    /// QEMU failed to start or exited on its own.
    QemuError {
        /// What QEMU said on standard error, or how it ended.
        message: String,
    },
    /// Userspace was reached but SSH never answered.
    SshUnreachable {
        /// The last SSH error.
        error: String,
    },
    /// The machine reset or the kernel booted twice without being asked to.
    UnexpectedReboot {
        /// What showed it: a QMP event or a second banner.
        evidence: String,
    },
    /// The guest vmgate built could not come up: the kernel could not unpack
    /// the initramfs, or the guest's init reported a setup step that failed.
    SetupFailed {
        /// What failed, in the kernel's or init's words.
        message: String,
    },
    /// The run was stopped (SIGINT, SIGTERM) before the case finished.
    Interrupted {
        /// What stopped it, and whether the case had started.
        reason: String,
    },
    /// A requirement was not met, so the case did not boot.
    Skipped {
        /// The unmet requirement.
        reason: String,
    },
}

impl BootOutcome {
    /// The outcome's kebab-case name, as scenarios write it.
    pub fn kind(&self) -> &'static str {
        match self {
            BootOutcome::Booted => "booted",
            BootOutcome::Panic { .. } => "panic",
            BootOutcome::Oops { .. } => "oops",
            BootOutcome::Hang { .. } => "hang",
            BootOutcome::QemuError { .. } => "qemu-error",
            BootOutcome::SshUnreachable { .. } => "ssh-unreachable",
            BootOutcome::UnexpectedReboot { .. } => "unexpected-reboot",
            BootOutcome::SetupFailed { .. } => "setup-failed",
            BootOutcome::Interrupted { .. } => "interrupted",
            BootOutcome::Skipped { .. } => "skipped",
        }
    }

    /// The line that explains the outcome, where there is one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            BootOutcome::Booted => None,
            BootOutcome::Panic { line } | BootOutcome::Oops { line } => Some(line),
            BootOutcome::Hang { stage } => Some(stage),
            BootOutcome::QemuError { message } | BootOutcome::SetupFailed { message } => {
                Some(message)
            }
            BootOutcome::SshUnreachable { error } => Some(error),
            BootOutcome::UnexpectedReboot { evidence } => Some(evidence),
            BootOutcome::Interrupted { reason } | BootOutcome::Skipped { reason } => Some(reason),
        }
    }
}

/// One guest command's argv and result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandResult {
    /// The argv as the scenario gave it.
    pub argv: Vec<String>,
    /// What it did, or why it could not run.
    #[serde(flatten)]
    pub result: CommandRun,
}

/// A guest command's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CommandRun {
    /// It ran.
    Ran(CommandOutput),
    /// It could not be run.
    Failed {
        /// Why.
        error: String,
    },
}

/// Everything vmgate saw of one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// The case's name.
    pub case: String,
    /// The kernel's release string.
    pub kernel: String,
    /// The accelerator the guest ran under. Not snapshotted.
    pub accel: Accel,
    /// How the boot ended.
    #[serde(flatten)]
    pub outcome: BootOutcome,
    /// The command line the kernel reported.
    pub command_line: Option<String>,
    /// Requested parameters the kernel reported as unknown.
    pub unknown_params: Vec<String>,
    /// Oops, BUG and WARNING lines from the console.
    pub oopses: Vec<String>,
    /// PaX kills and modes, grsecurity denials and faults from the console.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernel_events: Vec<crate::kernel_log::KernelEvent>,
    /// Each requested sysctl write, in order, with what came of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sysctl_writes: Vec<crate::sysctl_write::WriteRecord>,
    /// Each requested sysctl: a value, absent, or a read error.
    pub sysctls: BTreeMap<String, SysctlValue>,
    /// Each requested guest command.
    pub commands: Vec<CommandResult>,
    /// paxtest's verdicts, where the scenario asked for them.
    pub paxtest: Option<PaxtestReport>,
    /// vmgate-probe's records, where the scenario asked for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::guest_probe::ProbeRuns>,
    /// Seconds from spawning QEMU to the guest's readiness marker. Not snapshotted.
    pub ready_seconds: Option<f64>,
}

impl Observation {
    /// An observation of a case that never booted.
    pub fn not_booted(case: &str, kernel: &str, accel: Accel, outcome: BootOutcome) -> Self {
        Observation {
            case: case.to_string(),
            kernel: kernel.to_string(),
            accel,
            outcome,
            command_line: None,
            unknown_params: Vec::new(),
            oopses: Vec::new(),
            kernel_events: Vec::new(),
            sysctl_writes: Vec::new(),
            sysctls: BTreeMap::new(),
            commands: Vec::new(),
            paxtest: None,
            probe: None,
            ready_seconds: None,
        }
    }
}
