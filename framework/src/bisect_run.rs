//! Running bisects: one `git bisect run` step (build, boot, verdict), the git
//! driver that always resets the repository, and the search over prebuilt
//! kernels. Builds are the one place a scenario-adjacent command runs on the
//! host, by design: the user's build command.

use crate::bisect::{first_bad_commit, KernelSearch, StepVerdict};
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::run::{self, RunOptions, RunReport};
use crate::snapshot;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use tracing::{info, warn};

/// The default kernel build of a bisect step.
pub const DEFAULT_BUILD: &str = "make olddefconfig && make -j$(nproc) bzImage";

/// How one step builds and boots.
#[derive(Debug, Clone)]
pub struct StepOptions {
    /// The kernel tree (a git work tree).
    pub tree: PathBuf,
    /// The shell command that builds the kernel in the tree.
    pub build: String,
    /// A config fragment appended to `.config` before building.
    pub config_fragment: Option<PathBuf>,
    /// The built image, relative to the tree.
    pub image: PathBuf,
    /// A file in the tree whose words are kernel parameters every case gets.
    pub params_file: Option<PathBuf>,
    /// Where to record each step's observations, by commit.
    pub record: Option<PathBuf>,
    /// Boots per step; the majority decides, a tie makes the commit untestable.
    pub votes: u32,
    /// The run to make with the built kernel (its `kernel` is replaced).
    pub run: RunOptions,
}

/// Builds the tree's kernel (or takes it from the cache), boots the cases, and
/// returns the verdict.
pub async fn step(options: &StepOptions) -> StepVerdict {
    let commit = match git(&options.tree, &["rev-parse", "HEAD"]) {
        Ok(commit) => commit,
        Err(e) => return StepVerdict::Abort(e.to_string()),
    };
    let kernel = match built_kernel(options, &commit) {
        Ok(kernel) => kernel,
        Err(verdict) => return verdict,
    };
    let mut run = options.run.clone();
    run.kernel = Some(kernel);
    if let Some(file) = &options.params_file {
        let text = std::fs::read_to_string(options.tree.join(file)).unwrap_or_default();
        run.extra_params = text.split_whitespace().map(str::to_string).collect();
    }
    let mut votes = Vec::new();
    for _ in 0..options.votes.max(1) {
        let verdict = match run::run(&run).await {
            Ok(report) => {
                record(options.record.as_deref(), &commit, &report);
                StepVerdict::of_run(&report)
            }
            Err(e) => StepVerdict::of_error(&e),
        };
        let stop = matches!(verdict, StepVerdict::Abort(_) | StepVerdict::Untestable(_));
        votes.push(verdict);
        if stop {
            break;
        }
    }
    let verdict = StepVerdict::by_vote(votes);
    info!(%commit, ?verdict, "bisect step");
    verdict
}

/// The built image for `commit`, cached by commit, build command and fragment.
fn built_kernel(options: &StepOptions, commit: &str) -> Result<PathBuf, StepVerdict> {
    let abort = |e: Error| StepVerdict::Abort(e.to_string());
    let cache = Cache::from_env().map_err(abort)?;
    let mut key = Sha256::new();
    key.update(format!("{commit}\0{}\0", options.build));
    if let Some(fragment) = &options.config_fragment {
        key.update(std::fs::read(fragment).unwrap_or_default());
    }
    let dir = cache
        .dir("built")
        .map_err(abort)?
        .join(hex::encode(&key.finalize()[..12]));
    let cached = dir.join("bzImage");
    if cached.is_file() {
        info!(%commit, "kernel from the build cache");
        return Ok(cached);
    }
    build(options)?;
    let image = options.tree.join(&options.image);
    std::fs::create_dir_all(&dir).map_err(|e| abort(Error::io(&dir, e)))?;
    std::fs::copy(&image, &cached).map_err(|e| {
        StepVerdict::Untestable(format!("the build made no {}: {e}", image.display()))
    })?;
    Ok(cached)
}

fn build(options: &StepOptions) -> Result<(), StepVerdict> {
    if let Some(fragment) = &options.config_fragment {
        let text = std::fs::read_to_string(fragment)
            .map_err(|e| StepVerdict::Abort(format!("{}: {e}", fragment.display())))?;
        let config = options.tree.join(".config");
        let mut current = std::fs::read_to_string(&config).unwrap_or_default();
        current.push_str(&text);
        std::fs::write(&config, current)
            .map_err(|e| StepVerdict::Untestable(format!("{}: {e}", config.display())))?;
    }
    info!(build = %options.build, tree = %options.tree.display(), "building the kernel");
    let status = Command::new("sh")
        .args(["-c", &options.build])
        .current_dir(&options.tree)
        .status()
        .map_err(|e| StepVerdict::Abort(format!("cannot run sh: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(StepVerdict::Untestable(format!(
            "the build failed ({status})"
        )))
    }
}

fn record(dir: Option<&Path>, name: &str, report: &RunReport) {
    let Some(dir) = dir else { return };
    let rendered: Vec<String> = report
        .results
        .iter()
        .map(|r| snapshot::render(&r.observation))
        .collect();
    let _ = std::fs::create_dir_all(dir);
    if let Err(e) = std::fs::write(dir.join(format!("{name}.txt")), rendered.join("\n")) {
        warn!(error = %e, "bisect record not written");
    }
}

fn git(tree: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(tree)
        .args(args)
        .output()
        .map_err(|e| Error::HostTool {
            program: "git".into(),
            message: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(Error::HostTool {
            program: "git".into(),
            message: format!(
                "git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The answer of a bisect.
#[derive(Debug, Clone)]
pub struct BisectAnswer {
    /// The first bad commit or kernel.
    pub first_bad: String,
    /// The last good one.
    pub last_good: Option<String>,
    /// How the observations differ from the last good to the first bad.
    pub diff: Option<String>,
}

/// Restores the repository however the bisect ends.
struct BisectReset<'a> {
    repo: &'a Path,
}

impl Drop for BisectReset<'_> {
    fn drop(&mut self) {
        let _ = git(self.repo, &["bisect", "reset"]);
    }
}

/// Drives `git bisect run` with `step_argv` (this program's bisect-step) and
/// always runs `git bisect reset`, on success, error or cancellation.
pub async fn git_bisect(
    repo: &Path,
    good: &str,
    bad: &str,
    step_argv: &[String],
    record: &Path,
) -> Result<BisectAnswer> {
    git(repo, &["bisect", "start", bad, good])?;
    let _reset = BisectReset { repo };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(repo)
        .args(["bisect", "run"])
        .args(step_argv);
    command.process_group(0).kill_on_drop(true);
    let child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::HostTool {
            program: "git".into(),
            message: e.to_string(),
        })?;
    let group = GroupKill(child.id().map(|id| id as i32));
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| Error::io("git bisect run", e))?;
    drop(group);
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(first_bad) = first_bad_commit(&text) else {
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        return Err(Error::HostTool {
            program: "git bisect run".into(),
            message: format!("found no first bad commit ({})", tail.join(" / ")),
        });
    };
    let log = git(repo, &["bisect", "log"])?;
    let last_good = log
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("# good: ["))
        .filter_map(|l| l.split(']').next())
        .next()
        .map(str::to_string);
    let diff = last_good
        .as_ref()
        .and_then(|good| records_diff(record, good, &first_bad));
    Ok(BisectAnswer {
        first_bad,
        last_good,
        diff,
    })
}

/// Kills a process group when dropped (a cancelled bisect takes its step along).
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pid) = self.0.filter(|pid| *pid > 0) {
            // SAFETY: signalling the process group we started.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

fn records_diff(record: &Path, good: &str, bad: &str) -> Option<String> {
    let read = |name: &str| std::fs::read_to_string(record.join(format!("{name}.txt"))).ok();
    Some(snapshot::diff(&read(good)?, &read(bad)?))
}

/// Binary search over prebuilt kernels, oldest first; the first is taken as
/// good and the last as bad.
pub async fn kernels(kernels: &[PathBuf], run: &RunOptions) -> Result<BisectAnswer> {
    if kernels.len() < 2 {
        return Err(Error::HostTool {
            program: "vmgate bisect".into(),
            message: "--kernels needs at least two kernels, oldest (good) first".into(),
        });
    }
    let mut search = KernelSearch::new(kernels.len());
    let mut seen: Vec<Option<String>> = vec![None; kernels.len()];
    while let Some(index) = search.next() {
        let mut options = run.clone();
        options.kernel = Some(kernels[index].clone());
        let verdict = match run::run(&options).await {
            Ok(report) => {
                let rendered = report
                    .results
                    .iter()
                    .map(|r| snapshot::render(&r.observation));
                seen[index] = Some(rendered.collect::<Vec<_>>().join("\n"));
                StepVerdict::of_run(&report)
            }
            Err(e) => StepVerdict::of_error(&e),
        };
        info!(kernel = %kernels[index].display(), ?verdict, "bisect step");
        if let StepVerdict::Abort(why) = &verdict {
            return Err(Error::HostTool {
                program: "vmgate bisect".into(),
                message: why.clone(),
            });
        }
        search.record(index, &verdict);
    }
    let diff = match (&seen[search.good], &seen[search.bad]) {
        (Some(good), Some(bad)) => Some(snapshot::diff(good, bad)),
        _ => None,
    };
    Ok(BisectAnswer {
        first_bad: kernels[search.bad].display().to_string(),
        last_good: Some(kernels[search.good].display().to_string()),
        diff,
    })
}
