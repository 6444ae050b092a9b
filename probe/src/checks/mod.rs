//! The list of checks, in the order they run and print, and what each one is given.

mod aslr;
mod exec;
mod kernel_info;
mod ldt;
mod process_info;
mod ptrace;
mod selftest;
mod vsyscall;
mod wx;

use std::time::Duration;

pub use aslr::sample_line;

/// What a check's function is given.
pub struct Context {
    /// The check's name, for the record's `check` field.
    pub name: &'static str,
    /// Processes the `aslr` check samples.
    pub samples: u32,
}

/// What a check's function returns: its record as one line of JSON, or why it could
/// not run (which becomes an error record).
pub type Outcome = Result<String, String>;

/// One check: its name, its time limit and the function its child process runs.
pub struct Check {
    /// The name in the record's `check` field and in `--only`.
    pub name: &'static str,
    /// How long the check's child may run before it is killed and reported as `timeout`.
    pub timeout: Duration,
    /// Whether the check runs only when `--only` names it (and is left out of usage).
    pub hidden: bool,
    /// Runs in the child and returns the record.
    pub run: fn(&Context) -> Outcome,
}

/// The time limit of most checks.
const SHORT: Duration = Duration::from_secs(10);

/// The time limit of the `aslr` check, which starts a process per sample.
const LONG: Duration = Duration::from_secs(60);

const fn listed(name: &'static str, timeout: Duration, run: fn(&Context) -> Outcome) -> Check {
    Check {
        name,
        timeout,
        hidden: false,
        run,
    }
}

const fn hidden(name: &'static str, timeout: Duration, run: fn(&Context) -> Outcome) -> Check {
    Check {
        name,
        timeout,
        hidden: true,
        run,
    }
}

/// Every check, in the order the probe runs them and prints their records.
pub const CHECKS: &[Check] = &[
    listed("exec-stack", SHORT, exec::stack),
    listed("exec-heap", SHORT, exec::heap),
    listed("exec-anon", SHORT, exec::anon),
    listed("wx-mprotect", SHORT, wx::run),
    listed("ptrace-nonchild", SHORT, ptrace::run),
    listed("modify-ldt", SHORT, ldt::run),
    listed("vsyscall", SHORT, vsyscall::run),
    listed("aslr", LONG, aslr::run),
    listed("pax-flags", SHORT, process_info::pax_flags),
    listed("kallsyms", SHORT, kernel_info::kallsyms),
    listed("dmesg", SHORT, kernel_info::dmesg),
    listed("identity", SHORT, process_info::identity),
    hidden("crash-test", SHORT, selftest::crash),
    hidden("hang-test", Duration::from_secs(1), selftest::hang),
];

/// The names of the checks, hidden ones included or not, in list order.
pub fn names(include_hidden: bool) -> Vec<&'static str> {
    CHECKS
        .iter()
        .filter(|check| include_hidden || !check.hidden)
        .map(|check| check.name)
        .collect()
}

/// The checks to run, in list order whatever order `only` names them in: those `only`
/// names, or without it every check that is not hidden.
pub fn select(only: Option<&[String]>) -> Vec<&'static Check> {
    CHECKS
        .iter()
        .filter(|check| match only {
            Some(names) => names.iter().any(|name| name == check.name),
            None => !check.hidden,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selected(only: Option<&[&str]>) -> Vec<&'static str> {
        let only: Option<Vec<String>> =
            only.map(|names| names.iter().map(|name| name.to_string()).collect());
        select(only.as_deref())
            .iter()
            .map(|check| check.name)
            .collect()
    }

    #[test]
    fn names_are_unique() {
        let mut names = names(true);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
    }

    #[test]
    fn selection_follows_the_list_order() {
        let cases: &[(Option<&[&str]>, &[&str])] = &[
            (
                Some(&["identity", "exec-stack"]),
                &["exec-stack", "identity"],
            ),
            (Some(&["aslr", "aslr"]), &["aslr"]),
            (Some(&["crash-test"]), &["crash-test"]),
        ];
        for (only, expected) in cases {
            assert_eq!(selected(*only), *expected, "{only:?}");
        }
    }

    #[test]
    fn hidden_checks_run_only_when_named() {
        let all = selected(None);
        assert_eq!(all.len(), 12);
        assert!(!all.contains(&"crash-test"));
        assert!(!all.contains(&"hang-test"));
        assert!(!names(false).contains(&"crash-test"));
        assert!(names(true).contains(&"crash-test"));
    }
}
