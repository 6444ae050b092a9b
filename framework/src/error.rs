//! vmgate's errors and the one table that maps them to exit codes.

use std::path::PathBuf;

/// The process exit codes vmgate documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every case passed or was skipped with a reason.
    Passed = 0,
    /// At least one case failed: a kernel or snapshot problem.
    Failed = 1,
    /// A usage or infrastructure error: nothing can be concluded about the kernel.
    Infrastructure = 2,
}

/// Everything that stops vmgate before a case can be judged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario files are invalid; every problem is listed.
    #[error("{0}")]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// A kernel given with `--kernel` does not exist or cannot be read.
    #[error("{path}: cannot read the kernel ({source}); pass a built bzImage with --kernel")]
    KernelUnreadable {
        /// The path given.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file given as a kernel is not an x86 bzImage.
    #[error("{path}: not an x86 bzImage ({why}); pass arch/x86/boot/bzImage")]
    NotAKernel {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A host program vmgate needs is missing or failed.
    #[error("{program}: {message}")]
    HostTool {
        /// The program, for example `qemu-system-x86_64` or `apt-get`.
        program: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// An image recipe is invalid.
    #[error("{path}: {message}")]
    Recipe {
        /// The recipe file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file vmgate needed to read or write.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The requested accelerator cannot run guests here.
    #[error("accelerator {accel} is unusable: {reason}")]
    AccelUnusable {
        /// The accelerator asked for.
        accel: crate::accel::Accel,
        /// What the host check found.
        reason: String,
    },
    /// A command-line value is unusable; the text says which and why.
    #[error("{0}")]
    Usage(String),
    /// The user interrupted the run.
    #[error("interrupted")]
    Interrupted,
    /// A signal stopped the run before any case started.
    #[error("interrupted by {0} before any case started")]
    InterruptedEarly(&'static str),
}

impl Error {
    /// Wraps an I/O failure with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Every error here is a usage or infrastructure failure.
    pub fn exit_status(&self) -> ExitStatus {
        ExitStatus::Infrastructure
    }
}

/// Shorthand for results in vmgate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
