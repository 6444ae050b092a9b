//! Faults injected into real runs: QEMU killed or stopped mid-boot, the guest
//! panicking after boot, the guest's sshd killed. Each asserts the outcome,
//! the report, and that no QEMU and no temporary directory is left.

mod common;

use common::{project, qemus_under};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `vmgate run` on one scenario file with a private TMPDIR and reports.
fn start(tmp: &Path, scenario: &str) -> Child {
    start_scaled(tmp, scenario, 1.0)
}

/// Like [`start`], with every stage deadline multiplied by `scale`.
fn start_scaled(tmp: &Path, scenario: &str, scale: f64) -> Child {
    let file = tmp.join("fault.toml");
    std::fs::write(&file, scenario).unwrap();
    Command::new(env!("CARGO_BIN_EXE_vmgate"))
        .current_dir(project())
        .env("VMGATE_TIMEOUT_SCALE", scale.to_string())
        .env("TMPDIR", tmp)
        .env_remove("CI")
        .arg("run")
        .arg(&file)
        .args(["--accel", "tcg", "--snapshots"])
        .arg(tmp.join("snapshots"))
        .arg("--json")
        .arg(tmp.join("report.json"))
        .arg("--artifacts")
        .arg(tmp.join("artifacts"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The pid of a booting QEMU under `tmp` whose command line contains `needle`.
fn wait_for_qemu(tmp: &Path, needle: &str) -> i32 {
    let start = Instant::now();
    loop {
        let booting = qemus_under(tmp)
            .into_iter()
            .find(|(_, cmdline)| cmdline.contains("-kernel") && cmdline.contains(needle));
        if let Some((pid, _)) = booting {
            return pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "QEMU never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for vmgate, then returns its exit code and the whole JSON report,
/// after checking that no QEMU and no temporary directory is left.
fn finish_all(child: Child, tmp: &Path) -> (Option<i32>, serde_json::Value, String) {
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = std::fs::read_to_string(tmp.join("report.json"))
        .unwrap_or_else(|e| panic!("no report ({e}): {stdout}"));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(qemus_under(tmp).is_empty(), "QEMU left running");
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vmgate-"))
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "temporary directories left: {left:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), report, stderr)
}

/// Like [`finish_all`], for a run of one case: its observation.
fn finish(child: Child, tmp: &Path) -> (Option<i32>, serde_json::Value) {
    let (code, report, _) = finish_all(child, tmp);
    (code, report["cases"][0]["observation"].clone())
}

/// A guest command that announces itself on the console, then blocks.
const OBSERVING: &str = "[scenario.observe]\ncommands = [[\"sh\", \"-c\", \
    \"echo vmgate-fault: observing > /dev/console; sleep 600\"]]\n";

/// The pid of the QEMU under `tmp` once its guest is running [`OBSERVING`]'s command.
fn wait_for_observation(tmp: &Path) -> i32 {
    let pid = wait_for_qemu(tmp, "");
    let start = Instant::now();
    while !serial_logs_under(tmp).contains("vmgate-fault: observing") {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the guest never ran the command"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    pid
}

/// The serial logs of every run's temporary directory under `tmp`, joined.
fn serial_logs_under(tmp: &Path) -> String {
    let dirs = std::fs::read_dir(tmp).unwrap().flatten();
    let logs = dirs.map(|dir| dir.path().join("serial.log"));
    logs.filter_map(|log| std::fs::read_to_string(log).ok())
        .collect()
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: signalling a QEMU this test's vmgate started.
    unsafe { libc::kill(pid, signal) };
}

const BOOTS: &str = "[[scenario]]\nname = \"fault\"\ndescription = \"a boot\"\n";

#[test]
fn qemu_killed_mid_boot_is_a_qemu_error_and_other_cases_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let other =
        "[[scenario]]\nname = \"other\"\ndescription = \"d\"\nparams = [\"vmgate_other\"]\n";
    let child = start(tmp.path(), &format!("{BOOTS}{other}"));
    let pid = wait_for_qemu(tmp.path(), "console=ttyS0 panic=-1 -chardev");
    std::thread::sleep(Duration::from_millis(500));
    signal(pid, libc::SIGKILL);
    let (code, report, _) = finish_all(child, tmp.path());
    assert_eq!(code, Some(1));
    let observation = &report["cases"][0]["observation"];
    assert_eq!(observation["outcome"], "qemu-error", "{observation}");
    let message = observation["message"].as_str().unwrap_or_default();
    assert!(message.contains("killed by a signal"), "{message}");
    let other = &report["cases"][1];
    assert_eq!(other["observation"]["outcome"], "booted", "{other}");
    assert_eq!(other["verdict"]["verdict"], "pass", "{other}");
}

#[test]
fn qemu_stopped_mid_boot_hangs_at_its_deadline_and_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = format!("{BOOTS}timeout = 8\n");
    let child = start(tmp.path(), &scenario);
    let pid = wait_for_qemu(tmp.path(), "");
    signal(pid, libc::SIGSTOP);
    let started = Instant::now();
    let (code, observation) = finish(child, tmp.path());
    assert_eq!(code, Some(1));
    assert_eq!(observation["outcome"], "hang", "{observation}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the deadline was not kept"
    );
}

#[test]
fn qemu_killed_mid_observation_is_a_qemu_error_with_the_command_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let child = start(tmp.path(), &format!("{BOOTS}{OBSERVING}"));
    let pid = wait_for_observation(tmp.path());
    signal(pid, libc::SIGKILL);
    let (code, observation) = finish(child, tmp.path());
    assert_eq!(code, Some(1));
    assert_eq!(observation["outcome"], "qemu-error", "{observation}");
    let message = observation["message"].as_str().unwrap_or_default();
    assert!(message.contains("killed by a signal"), "{message}");
    let command = &observation["commands"][0];
    assert!(command["error"].is_string(), "{observation}");
}

#[test]
fn qemu_stopped_mid_observation_hangs_in_that_command_and_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let child = start_scaled(tmp.path(), &format!("{BOOTS}{OBSERVING}"), 0.5);
    let pid = wait_for_observation(tmp.path());
    signal(pid, libc::SIGSTOP);
    let started = Instant::now();
    let (code, observation) = finish(child, tmp.path());
    assert_eq!(code, Some(1));
    assert_eq!(observation["outcome"], "hang", "{observation}");
    let stage = observation["stage"].as_str().unwrap_or_default();
    assert!(stage.starts_with("command `sh -c"), "{stage}");
    assert!(stage.contains("no answer in"), "{stage}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the command's deadline was not kept"
    );
}

#[test]
fn a_guest_panic_after_boot_is_a_panic_not_an_ssh_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = format!(
        "{BOOTS}[scenario.expect]\noutcome = \"panic\"\nmessage = \"sysrq triggered crash\"\n\
         [scenario.observe]\ncommands = [[\"sh\", \"-c\", \"echo c > /proc/sysrq-trigger\"]]\n"
    );
    let child = start(tmp.path(), &scenario);
    let (code, observation) = finish(child, tmp.path());
    assert_eq!(code, Some(0), "{observation}");
    assert_eq!(observation["outcome"], "panic");
    let line = observation["line"].as_str().unwrap_or_default();
    assert!(line.contains("sysrq triggered crash"), "{line}");
}

#[test]
fn a_killed_sshd_ends_as_ssh_unreachable() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = format!(
        "{BOOTS}[scenario.expect]\noutcome = \"ssh-unreachable\"\n\
         [scenario.observe]\ncommands = [[\"killall\", \"-9\", \"dropbear\"], [\"true\"]]\n"
    );
    let child = start(tmp.path(), &scenario);
    let (code, observation) = finish(child, tmp.path());
    assert_eq!(code, Some(0), "{observation}");
    assert_eq!(observation["outcome"], "ssh-unreachable");
}

#[tokio::test]
async fn a_taken_forward_port_names_the_collision() {
    use vmgate::host::AccelChoice;
    use vmgate::machine::{Machine, StartError};
    use vmgate::run::{self, RunOptions};

    let scratch = tempfile::tempdir().unwrap();
    let options = RunOptions {
        accel: AccelChoice::Tcg,
        filter: Some("pax_nouderef".into()),
        jobs: Some(1),
        snapshots: scratch.path().to_path_buf(),
        ..RunOptions::for_project(&project())
    };
    let kernel =
        vmgate::kernel::Kernel::default_kernel(&vmgate::cache::Cache::from_env().unwrap()).unwrap();
    let (_dir, context) = run::prepare(&options, kernel).await.unwrap();
    let cases = run::load_cases(&options.scenarios, Some("pax_nouderef"), None).unwrap();
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = vmgate::runner::qemu_config(&context, &cases[0], scratch.path(), port);
    let started = Instant::now();
    match Machine::start(&config, &scratch.path().join("serial.log")).await {
        Err(StartError::Qmp { stderr, .. }) => {
            assert!(
                stderr.contains("Could not set up host forwarding rule"),
                "{stderr}"
            );
        }
        Err(other) => panic!("expected QEMU's own words, got {other}"),
        Ok(_) => panic!("QEMU started on a taken port"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it must not wait for QMP"
    );
}

#[tokio::test]
async fn a_corrupt_initramfs_ends_the_boot_at_once_naming_the_unpacking_error() {
    use vmgate::host::AccelChoice;
    use vmgate::run::{self, RunOptions};

    let scratch = tempfile::tempdir().unwrap();
    let options = RunOptions {
        accel: AccelChoice::Tcg,
        snapshots: scratch.path().to_path_buf(),
        ..RunOptions::for_project(&project())
    };
    let kernel =
        vmgate::kernel::Kernel::default_kernel(&vmgate::cache::Cache::from_env().unwrap()).unwrap();
    let (_dir, context) = run::prepare(&options, kernel).await.unwrap();
    let mut bytes = std::fs::read(&context.initrd).unwrap();
    let middle = bytes.len() / 3;
    for byte in &mut bytes[middle..middle + 4096] {
        *byte ^= 0x5a;
    }
    std::fs::write(&context.initrd, bytes).unwrap();
    let cases = run::load_cases(&options.scenarios, Some("pax_nouderef"), None).unwrap();
    let case = cases.into_iter().next().unwrap();
    let started = Instant::now();
    let result = vmgate::runner::run_case(&context, case).await;
    let observation = serde_json::to_value(&result.observation).unwrap();
    assert_eq!(observation["outcome"], "setup-failed", "{observation}");
    let message = observation["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("the kernel could not unpack the initramfs: "),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "it waited for a deadline"
    );
}

#[test]
fn a_shared_boot_lost_mid_observation_boots_the_unserved_case_again() {
    let tmp = tempfile::tempdir().unwrap();
    let readers = "[[scenario]]\nname = \"first\"\ndescription = \"reads\"\n\
                   [scenario.observe]\nprobe = true\n\
                   [[scenario]]\nname = \"second\"\ndescription = \"reads too\"\n\
                   [scenario.observe]\nsysctls = [\"kernel.kptr_restrict\"]\n";
    let child = start(tmp.path(), readers);
    let pid = wait_for_qemu(tmp.path(), "");
    let start = Instant::now();
    while !serial_logs_under(tmp.path()).contains("vmgate: ready") {
        assert!(start.elapsed() < Duration::from_secs(120), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(pid, libc::SIGKILL);
    let (code, report, log) = finish_all(child, tmp.path());
    assert_eq!(code, Some(1));
    assert!(log.contains("booting them alone: second"), "{log}");
    let cases = report["cases"].as_array().unwrap();
    let first = &cases[0]["observation"];
    assert_eq!(first["outcome"], "qemu-error", "{first}");
    let second = &cases[1];
    assert_eq!(second["observation"]["outcome"], "booted", "{second}");
    assert_eq!(second["verdict"]["verdict"], "pass", "{second}");
}

#[test]
fn sysctl_writes_of_any_valid_size_and_shape_are_made() {
    let tmp = tempfile::tempdir().unwrap();
    let big = "v".repeat(1000);
    let absent: String = (0..40)
        .map(|i| {
            format!(
                "{{ key = \"vmgate.nosuch{i:03}\", value = \"{big}\", \
                 expect = \"refused or absent\" }},\n"
            )
        })
        .collect();
    let scenario = format!(
        "{BOOTS}[scenario.observe]\nsysctl_writes = [\n{absent}\
         {{ key = \"kernel.domainname\", value = \"-n\" }},\n\
         {{ key = \"kernel.domainname\", value = \"-e \\\\t x\" }},\n]\n"
    );
    let child = start(tmp.path(), &scenario);
    let (code, observation) = finish(child, tmp.path());
    let writes = observation["sysctl_writes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let results: Vec<&serde_json::Value> = writes.iter().map(|w| &w["result"]).collect();
    assert_eq!(code, Some(0), "{} {results:?}", observation["outcome"]);
    assert_eq!(writes.len(), 42, "{results:?}");
    assert!(
        writes[..40].iter().all(|w| w["result"] == "absent"),
        "{results:?}"
    );
    assert_eq!(writes[40]["result"], "applied", "{}", writes[40]);
    assert_eq!(writes[41]["result"], "applied", "{}", writes[41]);
}
