//! Bisecting for real: a synthetic kernel history whose build step produces the
//! cached default kernel, one commit that breaks the boot, one whose build
//! fails; an injected infrastructure failure; and a list of prebuilt kernels.

mod common;

use common::project;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vmgate::cache::Cache;
use vmgate::kernel::Kernel;

fn default_kernel() -> Kernel {
    Kernel::default_kernel(&Cache::from_env().unwrap()).expect("the default kernel")
}

fn git(repo: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=vmgate",
            "-c",
            "user.email=vmgate@localhost",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

const BUILD_OK: &str =
    "mkdir -p arch/x86/boot && cp \"$VMGATE_TEST_KERNEL\" arch/x86/boot/bzImage\n";
const BUILD_BROKEN: &str = "echo 'error: this commit does not compile' >&2; exit 1\n";

/// Eight commits: 4 breaks the build, 5 mends it, 6 bakes a boot-breaking
/// parameter into the boot. Returns the repository and the commits, oldest first.
fn history(dir: &Path) -> Vec<String> {
    git(dir, &["init", "-q", "-b", "main"]);
    let mut commits = Vec::new();
    for n in 1..=8 {
        let build = if n == 4 { BUILD_BROKEN } else { BUILD_OK };
        std::fs::write(dir.join("build.sh"), build).unwrap();
        std::fs::write(dir.join("version"), format!("{n}\n")).unwrap();
        if n == 6 {
            std::fs::write(
                dir.join("boot-params"),
                "rdinit=/nonexistent init=/nonexistent\n",
            )
            .unwrap();
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", &format!("commit {n}")]);
        commits.push(git(dir, &["rev-parse", "HEAD"]));
    }
    commits
}

/// `git bisect reset` ran: the repository is back on main at its newest commit.
fn assert_restored(repo: &Path, commits: &[String]) {
    assert_eq!(
        git(repo, &["rev-parse", "HEAD"]),
        commits[7],
        "bisect reset"
    );
    assert_eq!(git(repo, &["branch", "--show-current"]), "main");
}

fn bisect(repo: &Path, commits: &[String], extra_env: &[(&str, &str)]) -> Output {
    let kernel = default_kernel();
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmgate"));
    command
        .current_dir(project())
        .env("VMGATE_TEST_KERNEL", &kernel.path)
        .args([
            "bisect",
            "--case",
            "pax_nouderef",
            "--accel",
            "tcg",
            "--build",
            "sh build.sh",
        ])
        .args([
            "--params-file",
            "boot-params",
            "--good",
            &commits[0],
            "--bad",
            &commits[7],
        ])
        .arg("--repo")
        .arg(repo)
        .arg("--modules")
        .arg(kernel.modules.expect("the default kernel has modules"));
    for (key, value) in extra_env {
        command.env(key, value);
    }
    command.output().unwrap()
}

#[test]
fn git_bisect_names_the_commit_that_broke_the_boot() {
    let repo = tempfile::tempdir().unwrap();
    let commits = history(repo.path());
    let output = bisect(repo.path(), &commits, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("first bad: {}", commits[5])),
        "{stdout}"
    );
    assert!(stdout.contains("last good: "), "{stdout}");
    assert!(
        stdout.contains("+  \"outcome\": \"panic\""),
        "the diff shows the panic: {stdout}"
    );
    assert_restored(repo.path(), &commits);
}

#[test]
fn an_infrastructure_failure_aborts_the_bisect_and_restores_the_repo() {
    let repo = tempfile::tempdir().unwrap();
    let commits = history(repo.path());
    let output = bisect(
        repo.path(),
        &commits,
        &[("VMGATE_QEMU", "/nonexistent/qemu")],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("first bad"),
        "no commit may be blamed: {stdout}"
    );
    assert!(stderr.contains("no first bad commit"), "{stderr}");
    assert_restored(repo.path(), &commits);
}

#[test]
fn bisect_step_exit_codes_follow_the_verdict() {
    let repo = tempfile::tempdir().unwrap();
    let commits = history(repo.path());
    let kernel = default_kernel();
    let step = |commit: &str| {
        git(repo.path(), &["checkout", "-q", commit]);
        Command::new(env!("CARGO_BIN_EXE_vmgate"))
            .current_dir(project())
            .env("VMGATE_TEST_KERNEL", &kernel.path)
            .args(["bisect-step", "--case", "pax_nouderef", "--accel", "tcg"])
            .args(["--build", "sh build.sh", "--params-file", "boot-params"])
            .arg("--tree")
            .arg(repo.path())
            .arg("--modules")
            .arg(kernel.modules.as_ref().unwrap())
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(
        step(&commits[3]),
        Some(125),
        "a build failure is untestable"
    );
    assert_eq!(step(&commits[6]), Some(1), "a panicking boot is bad");
}

#[test]
fn a_search_over_prebuilt_kernels_finds_the_first_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = default_kernel();
    let good = std::fs::read(&kernel.path).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle..middle + 4096]
        .iter_mut()
        .for_each(|b| *b ^= 0x5a);
    let kernels: Vec<PathBuf> = (0..8)
        .map(|n| {
            let path = dir.path().join(format!("bzImage-{n}"));
            std::fs::write(&path, if n < 5 { &good } else { &bad }).unwrap();
            path
        })
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_vmgate"))
        .current_dir(project())
        .args([
            "bisect",
            "--case",
            "pax_nouderef",
            "--accel",
            "tcg",
            "--modules",
        ])
        .arg(kernel.modules.as_ref().unwrap())
        .arg("--kernels")
        .args(&kernels)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("first bad: {}", kernels[5].display())),
        "{stdout}"
    );
    let boots = stderr.matches("boot started").count();
    assert!(boots <= 3, "{boots} boots for 8 kernels");
}
