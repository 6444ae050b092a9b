//! End to end: the default scenario suite boots the real default kernel (Debian's
//! cloud kernel, fetched into the cache) under TCG, and every case matches its
//! committed snapshot. Asserts observed values, not just verdicts.

mod common;

use common::{project, qemus_under};

use vmgate::host::AccelChoice;
use vmgate::observation::BootOutcome;
use vmgate::probe::SysctlValue;
use vmgate::run::{self, RunOptions, RunReport};
use vmgate::runner::{CaseResult, Verdict};
use vmgate::snapshot::SnapshotPolicy;

fn options() -> RunOptions {
    RunOptions {
        accel: AccelChoice::Tcg,
        jobs: Some(2),
        policy: SnapshotPolicy {
            accept: false,
            ci: true,
        },
        ..RunOptions::for_project(&project())
    }
}

fn case<'a>(report: &'a RunReport, name: &str) -> &'a CaseResult {
    let found = report.results.iter().find(|r| r.case.name == name);
    found.unwrap_or_else(|| panic!("no case {name}"))
}

fn sysctl(result: &CaseResult, key: &str) -> SysctlValue {
    result
        .observation
        .sysctls
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("{key} not read"))
}

fn value(v: &str) -> SysctlValue {
    SysctlValue::Value { value: v.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_suite_boots_and_matches_its_snapshots() {
    // The run's temporary directories go here, so its QEMUs can be told from
    // any other vmgate's on the host. This binary holds no other test.
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("TMPDIR", tmp.path());
    let report = run::run(&options())
        .await
        .expect("the run itself must work");
    let summary = vmgate::report::summary(&report);
    let explained = vmgate::report::explanations(&report);
    println!("{explained}\n{summary}");

    let baseline = case(&report, "baseline");
    assert_eq!(baseline.observation.outcome, BootOutcome::Booted);
    assert_eq!(sysctl(baseline, "kernel.randomize_va_space"), value("2"));
    assert_eq!(
        sysctl(baseline, "kernel.grsecurity.harden_ptrace"),
        SysctlValue::Absent
    );
    assert_eq!(sysctl(baseline, "kernel.dmesg_restrict"), value("1"));
    let paxtest = baseline.observation.paxtest.as_ref().expect("paxtest ran");
    let guest_kernel = paxtest.kernel.as_deref().unwrap_or_default();
    assert!(
        guest_kernel.contains(&report.context.kernel.release),
        "{guest_kernel}"
    );
    let anonymous = &paxtest.results["Executable anonymous mapping"];
    assert_eq!(
        *anonymous,
        vmgate::paxtest::Verdict::Killed,
        "NX stops it on any kernel"
    );
    assert!(baseline.observation.ready_seconds.is_some_and(|s| s > 0.0));

    let nouderef = case(&report, "pax_nouderef");
    assert_eq!(nouderef.observation.outcome, BootOutcome::Booted);
    assert_eq!(
        nouderef.observation.unknown_params,
        ["pax_nouderef"],
        "vanilla ignores it"
    );
    let cmdline = nouderef
        .observation
        .command_line
        .as_deref()
        .unwrap_or_default();
    assert!(cmdline.ends_with("pax_nouderef"), "{cmdline}");

    let full = case(&report, "pax_sanitize_slab-full");
    assert_eq!(full.observation.unknown_params, ["pax_sanitize_slab=full"]);

    let weak = case(&report, "pax_weakuderef");
    match &weak.verdict {
        Verdict::Skip(reason) => assert!(reason.contains("pcid"), "{reason}"),
        other => panic!("pax_weakuderef must be skipped under TCG, got {other:?}"),
    }

    let sticky = case(&report, "sticky_sysctls");
    let writes = serde_json::to_value(&sticky.observation.sysctl_writes).unwrap();
    let results: Vec<&str> = writes
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["result"].as_str().unwrap())
        .collect();
    let alternate = ["applied", "refused"].repeat(3);
    assert_eq!(results, alternate, "{writes}");
    assert_eq!(
        sticky.serial, baseline.serial,
        "baseline only reads the guest, so it shares sticky_sysctls' boot"
    );
    assert_ne!(sticky.serial, case(&report, "grsec_lock").serial);

    for (name, mode) in [("vsyscall-none", "none"), ("vsyscall-xonly", "xonly")] {
        let probe = case(&report, name)
            .observation
            .probe
            .as_ref()
            .expect("probe ran");
        assert_eq!(probe.root[0]["mode"], mode, "{name}: {:?}", probe.root);
    }

    let panic = case(&report, "missing_init");
    match &panic.observation.outcome {
        BootOutcome::Panic { line } => assert!(line.contains("not syncing"), "{line}"),
        other => panic!("missing_init must panic, got {other:?}"),
    }

    for result in &report.results {
        assert!(
            !matches!(result.verdict, Verdict::Fail(_)),
            "{} failed: {:?}\n{explained}",
            result.case.name,
            result.verdict
        );
    }
    assert_eq!(qemus_under(tmp.path()), [], "QEMU left running");
}
