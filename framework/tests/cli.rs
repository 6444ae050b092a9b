//! The `vmgate` binary as a user meets it: exit codes, one-line errors for bad
//! input, a readable diff for a changed snapshot, and no QEMU left behind, even
//! after Ctrl-C.

mod common;

use common::{project, qemus_under};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `vmgate` with a private TMPDIR, so this test's QEMUs can be told from others'.
fn vmgate(tmp: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmgate"));
    command
        .current_dir(project())
        .env("TMPDIR", tmp)
        .env_remove("VMGATE_LOG");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_missing_kernel_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let output = vmgate(tmp.path())
        .args(["run", "--kernel", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("error: /nonexistent: cannot read the kernel"),
        "{text}"
    );
}

#[test]
fn a_file_that_is_not_a_kernel_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("bzImage");
    std::fs::write(&fake, "#!/bin/sh\necho not a kernel\n").unwrap();
    let output = vmgate(tmp.path())
        .arg("run")
        .arg("--kernel")
        .arg(&fake)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("not an x86 bzImage"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn a_malformed_scenario_names_file_and_line_before_any_boot() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    let text =
        "[[scenario]]\nname = \"x\"\ndescription = \"d\"\nparams = [\"a b\"]\ntimeoutt = 3\n";
    std::fs::write(&file, text).unwrap();
    let output = vmgate(tmp.path()).arg("run").arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    let shown = file.display().to_string();
    assert!(
        said.contains(&format!("{shown}:4:")),
        "the bad parameter's line: {said}"
    );
    assert!(
        said.contains(&format!("{shown}:5:")),
        "the unknown key's line: {said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    assert!(qemus_under(tmp.path()).is_empty());
}

#[test]
fn list_prints_the_expanded_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let output = vmgate(tmp.path())
        .args(["list", "--filter", "sanitize"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let listed = String::from_utf8_lossy(&output.stdout);
    let names: Vec<&str> = listed.lines().collect();
    let expected = [
        "pax_sanitize_slab-off",
        "pax_sanitize_slab-fast",
        "pax_sanitize_slab-full",
    ];
    assert_eq!(names, expected);
}

#[test]
fn an_edited_snapshot_fails_the_run_with_a_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshots = tmp.path().join("snapshots");
    let label = "golden";
    let source = std::fs::read_dir(project().join("snapshots"))
        .unwrap()
        .flatten()
        .next();
    let source = source.expect("committed snapshots").path();
    std::fs::create_dir_all(snapshots.join(label)).unwrap();
    let golden = std::fs::read_to_string(source.join("pax_nouderef.snap")).unwrap();
    let edited = golden.replace("\"outcome\": \"booted\"", "\"outcome\": \"booted-edited\"");
    assert_ne!(golden, edited, "the committed snapshot records the outcome");
    std::fs::write(snapshots.join(label).join("pax_nouderef.snap"), edited).unwrap();

    let output = vmgate(tmp.path())
        .args([
            "run",
            "--filter",
            "pax_nouderef",
            "--accel",
            "tcg",
            "--label",
            label,
        ])
        .arg("--snapshots")
        .arg(&snapshots)
        .arg("--artifacts")
        .arg(tmp.path().join("artifacts"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        stderr(&output)
    );
    assert!(stdout.contains("snapshot differs"), "{stdout}");
    assert!(
        stdout.contains("-  \"outcome\": \"booted-edited\","),
        "{stdout}"
    );
    assert!(stdout.contains("+  \"outcome\": \"booted\","), "{stdout}");
    let artifacts = tmp.path().join("artifacts/pax_nouderef");
    for file in [
        "serial.log",
        "qemu-argv.txt",
        "observation.json",
        "snapshot.diff",
        "reproduce.sh",
    ] {
        assert!(artifacts.join(file).is_file(), "{file} missing");
    }
    let again = std::fs::read_to_string(artifacts.join("reproduce.sh")).unwrap();
    for part in [
        "run",
        "--filter pax_nouderef",
        "--label golden",
        "--modules",
        "--accel tcg",
    ] {
        assert!(again.contains(part), "reproduce.sh lacks {part}: {again}");
    }
    assert!(
        stdout.contains(" repro pax_nouderef "),
        "the repro command: {stdout}"
    );
    assert!(qemus_under(tmp.path()).is_empty(), "QEMU left running");
}

/// Signals vmgate (one VM at a time, three cases) once the first case has
/// finished and the second one's QEMU runs: vmgate must exit 2 with every QEMU
/// gone within 5 seconds, its temporary directories removed, and a partial
/// report naming the finished, the interrupted and the unstarted case.
fn signal_mid_run(signal: i32) {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = vmgate(tmp.path())
        .env_remove("CI")
        .args(["run", "-j", "1", "--accel", "tcg", "--filter"])
        .arg("pax_size,pax_nouderef,missing_init")
        .arg("--snapshots")
        .arg(tmp.path().join("snapshots"))
        .arg("--json")
        .arg(tmp.path().join("report.json"))
        .arg("--junit")
        .arg(tmp.path().join("junit.xml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let finished = first_case_done(&mut child);
    let start = Instant::now();
    while qemus_under(tmp.path()).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(120), "no second QEMU");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let signalled = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "vmgate took too long"
    );
    assert!(
        qemus_under(tmp.path()).is_empty(),
        "QEMU outlived the signal"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("vmgate-"))
        .collect();
    assert!(left.is_empty(), "temporary directories left: {left:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("this report is partial"), "{stdout}");
    assert_partial_report(tmp.path(), &finished);
}

/// Reads vmgate's log until a case is done; returns its name. The rest of
/// the log is drained by a thread so vmgate never blocks on it.
fn first_case_done(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let finished = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let done = line.contains("case done");
            let name = line.split("case{case=").nth(1)?.split_whitespace().next();
            done.then(|| name.map(str::to_string)).flatten()
        })
        .expect("no case finished");
    std::thread::spawn(move || lines.for_each(drop));
    finished
}

/// The JSON and JUnit reports of an interrupted run: the finished case with
/// its verdict, the running one interrupted, the last one not started.
fn assert_partial_report(tmp: &Path, finished: &str) {
    let json = std::fs::read_to_string(tmp.join("report.json")).expect("JSON report");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(report["interrupted"].is_string(), "{report}");
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3, "{report}");
    let reason = |case: &serde_json::Value| case["verdict"]["reasons"].to_string();
    let mut reasons: Vec<String> = cases.iter().map(reason).collect();
    reasons.sort();
    let done = cases.iter().find(|c| c["case"] == finished).unwrap();
    assert_eq!(done["verdict"]["verdict"], "pass", "{done}");
    assert!(
        reasons.iter().any(|r| r.contains("while it ran")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not started")),
        "{reasons:?}"
    );
    let running = cases.iter().find(|c| reason(c).contains("while it ran"));
    let seconds = running
        .and_then(|c| c["seconds"].as_f64())
        .unwrap_or_default();
    assert!(seconds > 0.0, "the interrupted case ran for {seconds} s");
    let junit = std::fs::read_to_string(tmp.join("junit.xml")).expect("JUnit report");
    assert!(junit.contains("errors=\"2\""), "{junit}");
}

#[test]
fn ctrl_c_mid_run_leaves_no_qemu_behind_and_a_partial_report() {
    signal_mid_run(libc::SIGINT);
}

#[test]
fn sigterm_mid_run_leaves_no_qemu_behind_and_a_partial_report() {
    signal_mid_run(libc::SIGTERM);
}

#[test]
fn two_shards_list_every_case_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let listed = |extra: &[&str]| -> Vec<String> {
        let output = vmgate(tmp.path()).arg("list").args(extra).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let all = listed(&[]);
    let mut union = [listed(&["--shard", "1/2"]), listed(&["--shard", "2/2"])].concat();
    assert!(all.len() >= 8);
    union.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(union, expected);
}

#[test]
fn a_missing_qemu_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let output = vmgate(tmp.path())
        .env("VMGATE_QEMU", "/nonexistent/qemu-system-x86_64")
        .args(["run", "--filter", "missing_init", "--accel", "tcg"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    let last = said.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: /nonexistent/qemu-system-x86_64: cannot run it"),
        "{said}"
    );
    assert!(last.contains("apt-get install qemu-system-x86"), "{said}");
}

#[test]
fn a_full_artifacts_filesystem_is_reported_and_the_verdict_stands() {
    let tmp = tempfile::tempdir().unwrap();
    let artifacts = tmp.path().join("artifacts");
    std::fs::create_dir(&artifacts).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&artifacts)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let output = vmgate(tmp.path())
        .env_remove("CI")
        .args([
            "run",
            "--filter",
            "missing_init",
            "--accel",
            "tcg",
            "--artifacts",
        ])
        .arg(&artifacts)
        .output()
        .unwrap();
    let _ = Command::new("umount").arg(&artifacts).status();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{said}");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
    assert!(
        said.contains("artifacts not written") && said.contains("No space left"),
        "{said}"
    );
}

/// `vmgate run` of the quick panicking case on the cache at `cache`, with its
/// own snapshot directory `snapshots` (a name under `tmp`).
fn quick_run(tmp: &Path, cache: &Path, snapshots: &str) -> Command {
    let mut command = vmgate(tmp);
    command
        .env("VMGATE_CACHE_DIR", cache)
        .env_remove("CI")
        .args([
            "run",
            "--filter",
            "missing_init",
            "--accel",
            "tcg",
            "--snapshots",
        ])
        .arg(tmp.join(snapshots));
    command
}

/// The built images in a cache.
fn cached_images(cache: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(cache.join("images")).unwrap().flatten();
    let images = entries.map(|e| e.path());
    images
        .filter(|p| p.to_string_lossy().ends_with(".cpio.gz"))
        .collect()
}

#[test]
fn a_cold_cache_shared_by_two_runs_and_then_damaged_stays_sound() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let spawn = |name: &str| {
        let mut command = quick_run(tmp.path(), &cache, name);
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    for run in [spawn("snapshots-1"), spawn("snapshots-2")] {
        let output = run.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{stdout}\n{}",
            stderr(&output)
        );
    }
    let images = cached_images(&cache);
    assert_eq!(images.len(), 1, "one image, built once: {images:?}");
    assert!(qemus_under(tmp.path()).is_empty());

    let mut bytes = std::fs::read(&images[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 64]
        .iter_mut()
        .for_each(|b| *b ^= 0xff);
    std::fs::write(&images[0], bytes).unwrap();
    let again = quick_run(tmp.path(), &cache, "snapshots-3")
        .output()
        .unwrap();
    let said = stderr(&again);
    assert_eq!(again.status.code(), Some(0), "{said}");
    assert!(
        said.contains("does not match its digest; rebuilding"),
        "{said}"
    );
}

/// The README's `cargo run --release -- run` needs one binary to pick: the
/// workspace's default members must hold vmgate and not vmgate-probe.
#[test]
fn cargo_run_at_the_top_level_means_vmgate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(project())
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let members = metadata["workspace_default_members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{members:?}");
    assert!(
        members[0].as_str().unwrap().contains("#vmgate@"),
        "{members:?}"
    );
}
