//! Bisecting boot failures: one step's verdict as a `git bisect run` exit code,
//! the git-driven bisect that always restores the repository, and a binary
//! search over prebuilt kernels.

use crate::error::Error;
use crate::observation::BootOutcome;
use crate::run::RunReport;
use crate::runner::Verdict;
use serde::Serialize;

/// What one bisect step concluded about the commit or kernel under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", content = "why", rename_all = "kebab-case")]
pub enum StepVerdict {
    /// Every chosen case passed.
    Good,
    /// The kernel is at fault: a panic, hang, or wrong observation.
    Bad(String),
    /// This commit cannot be tested: the build failed, or a case was skipped.
    Untestable(String),
    /// The test infrastructure failed; the bisect must stop.
    Abort(String),
}

impl StepVerdict {
    /// The exit code `git bisect run` understands: 0 good, 1 bad, 125 skip,
    /// 128 abort (git stops on any code from 128 to 255 except 125).
    pub fn exit_code(&self) -> u8 {
        match self {
            StepVerdict::Good => 0,
            StepVerdict::Bad(_) => 1,
            StepVerdict::Untestable(_) => 125,
            StepVerdict::Abort(_) => 128,
        }
    }

    /// The verdict on a finished run of the chosen cases.
    pub fn of_run(report: &RunReport) -> StepVerdict {
        if report.results.is_empty() {
            return StepVerdict::Abort("no case matched".into());
        }
        for result in &report.results {
            if let BootOutcome::QemuError { message } = &result.observation.outcome {
                return StepVerdict::Abort(format!("{}: QEMU failed: {message}", result.case.name));
            }
        }
        let mut bad = Vec::new();
        for result in &report.results {
            match &result.verdict {
                Verdict::Pass => {}
                Verdict::Skip(reason) => {
                    return StepVerdict::Untestable(format!("{}: {reason}", result.case.name))
                }
                Verdict::Interrupted(reason) => {
                    return StepVerdict::Abort(format!("{}: {reason}", result.case.name))
                }
                Verdict::Fail(reasons) => {
                    bad.push(format!("{}: {}", result.case.name, reasons.join("; ")))
                }
            }
        }
        if bad.is_empty() {
            StepVerdict::Good
        } else {
            StepVerdict::Bad(bad.join("\n"))
        }
    }

    /// The majority of several boots' verdicts: any abort or untestable result
    /// stands; good against bad needs a strict majority, else untestable.
    pub fn by_vote(votes: Vec<StepVerdict>) -> StepVerdict {
        if let Some(last) = votes
            .last()
            .filter(|v| matches!(v, StepVerdict::Abort(_) | StepVerdict::Untestable(_)))
        {
            return last.clone();
        }
        let bad: Vec<&StepVerdict> = votes
            .iter()
            .filter(|v| matches!(v, StepVerdict::Bad(_)))
            .collect();
        let good = votes.len() - bad.len();
        match (good, bad.len()) {
            (g, b) if g > b => StepVerdict::Good,
            (g, b) if b > g => bad[0].clone(),
            (g, b) => StepVerdict::Untestable(format!("flaky: {g} good and {b} bad boots")),
        }
    }

    /// The verdict when the run could not happen at all.
    pub fn of_error(error: &Error) -> StepVerdict {
        match error {
            Error::KernelUnreadable { .. } | Error::NotAKernel { .. } => {
                StepVerdict::Untestable(format!("no bootable kernel: {error}"))
            }
            _ => StepVerdict::Abort(error.to_string()),
        }
    }
}

/// Where a search over prebuilt kernels stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSearch {
    /// Index of the newest kernel known good.
    pub good: usize,
    /// Index of the oldest kernel known bad.
    pub bad: usize,
    /// Indexes that could not be tested.
    pub untestable: Vec<usize>,
}

impl KernelSearch {
    /// A search over `count` kernels, the first taken as good and the last as bad.
    pub fn new(count: usize) -> KernelSearch {
        KernelSearch {
            good: 0,
            bad: count.saturating_sub(1),
            untestable: Vec::new(),
        }
    }

    /// The next kernel to boot, or `None` when the first bad one is found (or
    /// every kernel between is untestable).
    pub fn next(&self) -> Option<usize> {
        let between: Vec<usize> = (self.good + 1..self.bad)
            .filter(|i| !self.untestable.contains(i))
            .collect();
        if between.is_empty() {
            return None;
        }
        let middle = (self.good + self.bad) / 2;
        between.into_iter().min_by_key(|i| i.abs_diff(middle))
    }

    /// Records a step's verdict on kernel `index`.
    pub fn record(&mut self, index: usize, verdict: &StepVerdict) {
        match verdict {
            StepVerdict::Good => self.good = index,
            StepVerdict::Bad(_) => self.bad = index,
            StepVerdict::Untestable(_) | StepVerdict::Abort(_) => self.untestable.push(index),
        }
    }

    /// Whether the answer is exact: no untestable kernel hides the boundary.
    pub fn exact(&self) -> bool {
        (self.good + 1..self.bad).all(|i| !self.untestable.contains(&i))
            && self.bad == self.good + 1
    }
}

/// The commit `git bisect run` named as the first bad one, from its output.
pub fn first_bad_commit(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|line| line.strip_suffix(" is the first bad commit"))
        .map(|sha| sha.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verdict_has_its_exit_code() {
        let table = [
            (StepVerdict::Good, 0),
            (StepVerdict::Bad("panic".into()), 1),
            (StepVerdict::Untestable("build failed".into()), 125),
            (StepVerdict::Abort("no qemu".into()), 128),
        ];
        for (verdict, code) in table {
            assert_eq!(verdict.exit_code(), code, "{verdict:?}");
            assert_ne!(
                verdict.exit_code(),
                255,
                "255 would stop git bisect as an error"
            );
        }
    }

    #[test]
    fn votes_take_the_majority_and_ties_are_untestable() {
        let good = || StepVerdict::Good;
        let bad = || StepVerdict::Bad("panic".into());
        assert_eq!(StepVerdict::by_vote(vec![good(), bad(), good()]), good());
        assert_eq!(StepVerdict::by_vote(vec![bad(), good(), bad()]), bad());
        assert!(matches!(
            StepVerdict::by_vote(vec![good(), bad()]),
            StepVerdict::Untestable(_)
        ));
        let abort = StepVerdict::Abort("no qemu".into());
        assert_eq!(StepVerdict::by_vote(vec![good(), abort.clone()]), abort);
        assert_eq!(StepVerdict::by_vote(vec![bad()]), bad());
    }

    #[test]
    fn errors_map_to_untestable_or_abort() {
        let missing = Error::KernelUnreadable {
            path: "/k".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(matches!(
            StepVerdict::of_error(&missing),
            StepVerdict::Untestable(_)
        ));
        let no_qemu = Error::HostTool {
            program: "qemu".into(),
            message: "missing".into(),
        };
        assert!(matches!(
            StepVerdict::of_error(&no_qemu),
            StepVerdict::Abort(_)
        ));
        assert!(matches!(
            StepVerdict::of_error(&Error::Interrupted),
            StepVerdict::Abort(_)
        ));
    }

    #[test]
    fn kernel_search_finds_the_first_bad_in_log_steps() {
        for count in 2..=33usize {
            for first_bad in 1..count {
                let mut search = KernelSearch::new(count);
                let mut boots = 0;
                while let Some(index) = search.next() {
                    boots += 1;
                    let verdict = if index >= first_bad {
                        StepVerdict::Bad("x".into())
                    } else {
                        StepVerdict::Good
                    };
                    search.record(index, &verdict);
                }
                assert_eq!(search.bad, first_bad, "{count} kernels");
                assert!(search.exact());
                let bound = (count as f64).log2().ceil() as usize;
                assert!(boots <= bound, "{boots} boots for {count} kernels");
            }
        }
    }

    #[test]
    fn untestable_kernels_are_stepped_around() {
        let mut search = KernelSearch::new(8);
        search.record(3, &StepVerdict::Untestable("build".into()));
        assert_ne!(search.next(), Some(3));
        search.record(4, &StepVerdict::Bad("x".into()));
        search.record(2, &StepVerdict::Good);
        assert_eq!(search.next(), None);
        assert!(
            !search.exact(),
            "3 is untestable, so 3 or 4 is the first bad"
        );
    }

    #[test]
    fn git_output_names_the_first_bad_commit() {
        let output = "running vmgate\nabc123 is the first bad commit\ncommit abc123\n";
        assert_eq!(first_bad_commit(output).as_deref(), Some("abc123"));
        assert_eq!(first_bad_commit("nothing"), None);
    }
}
