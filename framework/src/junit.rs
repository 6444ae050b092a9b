//! The run as a JUnit XML report: one test case per case, the failure message
//! giving the outcome and its line, system-out holding the console's tail.

use crate::report::console_tail;
use crate::run::RunReport;
use crate::runner::Verdict;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// How many console lines each test case carries.
const TAIL: usize = 60;

/// The JUnit XML text of a run.
pub fn render(report: &RunReport) -> String {
    let label = &report.context.kernel.label;
    let mut suite = TestSuite::new(format!("vmgate {label}"));
    for result in &report.results {
        let mut status = match &result.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::Fail(reasons) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(reasons.join("; "));
                status.set_type(result.observation.outcome.kind());
                status
            }
            Verdict::Skip(reason) => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(reason.as_str());
                status
            }
            Verdict::Interrupted(reason) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(reason.as_str());
                status.set_type("interrupted");
                status
            }
        };
        if let Some(detail) = result.observation.outcome.detail() {
            status.set_description(detail);
        }
        let mut case = TestCase::new(result.case.name.as_str(), status);
        case.set_classname(format!("{label}.{}", result.case.scenario));
        case.set_time(Duration::from_secs_f64(result.seconds));
        case.set_system_out_lossy(console_tail(&result.serial, TAIL));
        suite.add_test_case(case);
    }
    let accel = &report.context.host;
    suite.add_property(("accelerator", accel.accel.as_str()));
    suite.add_property(("accelerator-reason", accel.accel_reason.as_str()));
    suite.add_property(("kernel", report.context.kernel.release.as_str()));
    let mut junit = Report::new("vmgate");
    junit.add_test_suite(suite);
    junit.to_string().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::Accel;
    use crate::host::Host;
    use crate::kernel::Kernel;
    use crate::machine::ssh::ClientKey;
    use crate::observation::{BootOutcome, Observation};
    use crate::run::RunReport;
    use crate::runner::{CaseResult, RunContext};
    use crate::snapshot::SnapshotPolicy;
    use std::path::Path;

    fn report() -> RunReport {
        let text = "[[scenario]]\nname = \"a\"\ndescription = \"d\"\n\
                    [[scenario]]\nname = \"b\"\ndescription = \"d\"\n\
                    [[scenario]]\nname = \"c\"\ndescription = \"d\"\n\
                    [[scenario]]\nname = \"e\"\ndescription = \"d\"\n";
        let cases = crate::scenario::parse_str(Path::new("s.toml"), text).unwrap();
        let context = RunContext {
            host: Host {
                qemu: "qemu-system-x86_64".into(),
                qemu_version: "7.2".into(),
                accel: Accel::Tcg,
                accel_reason: "KVM unusable: canary stalled".into(),
                cpu_flags: Default::default(),
                cpu_known: Default::default(),
            },
            kernel: Kernel {
                path: "/k".into(),
                release: "6.1.0".into(),
                label: "6.1.0".into(),
                modules: None,
            },
            initrd: "/i".into(),
            key: ClientKey {
                private_path: "/k".into(),
                public_line: String::new(),
            },
            memory_mib: 512,
            snapshot_dir: "/s".into(),
            policy: SnapshotPolicy {
                accept: false,
                ci: true,
            },
            timeout_scale: 1.0,
        };
        let panic = BootOutcome::Panic {
            line: "Kernel panic - not syncing: <boom> & more".into(),
        };
        let skip = BootOutcome::Skipped {
            reason: "guest CPU lacks pcid".into(),
        };
        let verdicts = [
            (BootOutcome::Booted, Verdict::Pass),
            (
                panic,
                Verdict::Fail(vec!["expected booted, got panic".into()]),
            ),
            (skip, Verdict::Skip("guest CPU lacks pcid".into())),
            (
                BootOutcome::Interrupted {
                    reason: "interrupted by SIGINT while it ran".into(),
                },
                Verdict::Interrupted("interrupted by SIGINT while it ran".into()),
            ),
        ];
        let results = cases
            .into_iter()
            .zip(verdicts)
            .map(|(case, (outcome, verdict))| CaseResult {
                observation: Observation::not_booted(&case.name, "6.1.0", Accel::Tcg, outcome),
                case,
                verdict,
                snapshot: None,
                argv: Vec::new(),
                serial: b"[    0.0] Linux version 6.1.0\r\nbad \x1b[2J\x01 bytes\n".to_vec(),
                seconds: 1.5,
            })
            .collect();
        RunReport {
            context,
            results,
            interrupted: Some("SIGINT".into()),
        }
    }

    #[test]
    fn a_junit_reader_sees_one_testcase_per_case() {
        let xml = render(&report());
        let suites = junit_parser::from_reader(std::io::Cursor::new(xml.as_bytes())).unwrap();
        let suite = &suites.suites[0];
        let cases = &suite.cases;
        assert_eq!(cases.len(), 4, "{xml}");
        assert!(cases[0].status.is_success());
        assert!(cases[1].status.is_failure());
        let failure = cases[1].status.failure_as_ref();
        assert_eq!(failure.message, "expected booted, got panic");
        assert_eq!(failure.failure_type, "panic");
        assert!(cases[2].status.is_skipped());
        assert!(cases[0]
            .system_out
            .as_deref()
            .unwrap_or_default()
            .contains("Linux version"));
        assert!(cases[3].status.is_error(), "{xml}");
        let error = cases[3].status.error_as_ref();
        assert_eq!(error.message, "interrupted by SIGINT while it ran");
        assert_eq!((suite.tests, suite.failures, suite.skipped), (4, 1, 1));
        assert_eq!(suite.errors, 1);
    }
}
