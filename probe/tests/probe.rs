//! End-to-end tests: run the built probe on this host and read what it prints.

use std::process::{Command, Output};

use serde_json::{json, Value};

const PROBE: &str = env!("CARGO_BIN_EXE_vmgate-probe");

/// The checks a plain run prints, in order.
const LISTED: &[&str] = &[
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

fn probe(args: &[&str]) -> Output {
    Command::new(PROBE)
        .args(args)
        .output()
        .expect("the probe starts")
}

/// Runs the probe, expects it to succeed, and parses every line it printed.
fn records(args: &[&str]) -> Vec<Value> {
    let output = probe(args);
    assert!(output.status.success(), "{args:?}: {output:?}");
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

fn text<'a>(record: &'a Value, key: &str) -> &'a str {
    record[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {record}"))
}

fn names(records: &[Value]) -> Vec<&str> {
    records.iter().map(|record| text(record, "check")).collect()
}

#[test]
fn every_record_is_json_in_check_order() {
    let records = records(&["--samples", "8"]);
    assert_eq!(names(&records), LISTED);
    for record in &records {
        let result = text(record, "result");
        assert!(!matches!(result, "error" | "timeout"), "{record}");
    }
}

#[test]
fn only_keeps_the_list_order() {
    let records = records(&["--only", "identity,pax-flags,exec-stack"]);
    assert_eq!(names(&records), ["exec-stack", "pax-flags", "identity"]);
}

#[test]
fn exec_anon_is_killed() {
    let records = records(&["--only", "exec-anon"]);
    assert_eq!(text(&records[0], "result"), "killed");
    assert_eq!(records[0]["signal"], 11);
    assert_eq!(text(&records[0], "signal_name"), "SIGSEGV");
}

#[test]
fn a_crashing_check_is_reported_and_the_probe_goes_on() {
    let records = records(&["--only", "crash-test,identity"]);
    assert_eq!(names(&records), ["identity", "crash-test"]);
    let crash = &records[1];
    assert_eq!(text(crash, "result"), "killed");
    assert_eq!(crash["signal"], 11);
    assert_eq!(text(crash, "signal_name"), "SIGSEGV");
}

#[test]
fn a_hanging_check_times_out_with_what_it_started() {
    let records = records(&["--only", "hang-test"]);
    assert_eq!(text(&records[0], "result"), "timeout");
    assert_eq!(records[0]["seconds"], 1);
}

#[test]
fn aslr_measures_every_region() {
    let records = records(&["--only", "aslr", "--samples", "8"]);
    let aslr = &records[0];
    assert_eq!(aslr["samples"], 8);
    for region in ["stack", "mmap", "heap", "pie", "vdso"] {
        let bits = aslr["bits"][region].as_u64();
        assert!(bits.is_some_and(|bits| bits <= 64), "{region} in {aslr}");
        let bucket = text(&aslr["bucket"], region);
        assert!(
            ["none", "low", "medium", "high"].contains(&bucket),
            "{aslr}"
        );
    }
    assert!(aslr["bits"]["stack"].as_u64() > Some(0), "{aslr}");
}

#[test]
fn aslr_sample_prints_five_addresses() {
    let output = probe(&["--aslr-sample"]);
    assert!(output.status.success(), "{output:?}");
    let sample: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    for region in ["stack", "mmap", "heap", "pie", "vdso"] {
        assert!(sample[region].as_u64().is_some(), "{region} in {sample}");
    }
}

#[test]
fn the_other_checks_report_their_fields() {
    let only = "wx-mprotect,ptrace-nonchild,modify-ldt,pax-flags,kallsyms,dmesg,identity";
    let records = records(&["--only", only]);
    let fields: &[&[&str]] = &[
        &["mprotect", "rwx_mmap"],
        &["attach", "yama_ptrace_scope"],
        &["read", "write"],
        &["present"],
        &["addresses"],
        &["read"],
        &["uid", "euid", "gid"],
    ];
    for (record, fields) in records.iter().zip(fields) {
        assert_eq!(text(record, "result"), "ok", "{record}");
        for field in *fields {
            assert!(record.get(field).is_some(), "{field} missing from {record}");
        }
    }
}

/// Whatever mode this host's kernel is in, the record must name it and show what that
/// mode does to the page, the read and the call.
#[test]
fn vsyscall_fields_agree_with_the_mode() {
    let records = records(&["--only", "vsyscall"]);
    let vsyscall = &records[0];
    let mode = text(vsyscall, "mode");
    let mut expected = match mode {
        "emulate" => json!({"mapped": true, "perms": "r-xp", "read": "allowed",
                            "call": "allowed", "time_plausible": true}),
        "xonly" => json!({"mapped": true, "perms": "--xp", "read": "SIGSEGV",
                          "call": "allowed", "time_plausible": true}),
        "none" => json!({"mapped": false, "read": "SIGSEGV", "call": "SIGSEGV"}),
        _ => panic!("no known mode in {vsyscall}"),
    };
    expected["check"] = json!("vsyscall");
    expected["result"] = json!("ok");
    expected["mode"] = json!(mode);
    assert_eq!(vsyscall, &expected);
}

#[test]
fn repeated_runs_print_the_same_records() {
    let args = [
        "--only",
        "wx-mprotect,modify-ldt,vsyscall,pax-flags,identity",
    ];
    assert_eq!(probe(&args).stdout, probe(&args).stdout);
}

#[test]
fn bad_command_lines_exit_2_with_usage() {
    let cases: &[&[&str]] = &[
        &["--bogus"],
        &["--samples", "0"],
        &["--samples", "5000"],
        &["--only", "nope"],
        &["--aslr-sample", "--only", "aslr"],
    ];
    for args in cases {
        let output = probe(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("usage:"),
            "{args:?}"
        );
    }
}

#[test]
fn help_lists_the_checks_but_not_the_hidden_ones() {
    let output = probe(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains(&LISTED.join(" ")), "{help}");
    assert!(!help.contains("crash-test"), "{help}");
}

/// `setarch -R` turns randomisation off for the probe and everything it starts, so every
/// region must land in the `none` bucket. Skipped where util-linux's setarch is missing.
#[test]
fn aslr_sees_no_entropy_with_randomisation_off() {
    let args = [PROBE, "--only", "aslr", "--samples", "8"];
    let Ok(output) = Command::new("setarch")
        .args(["x86_64", "-R"])
        .args(args)
        .output()
    else {
        eprintln!("setarch is not installed; skipping");
        return;
    };
    assert!(output.status.success(), "{output:?}");
    let aslr: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    for region in ["stack", "mmap", "heap", "pie", "vdso"] {
        assert_eq!(aslr["bits"][region], 0, "{aslr}");
        assert_eq!(aslr["bucket"][region], "none", "{aslr}");
    }
}
