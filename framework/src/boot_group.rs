//! Cases that can share one boot: same kernel command line, same
//! requirements and boot timeout, each expecting a plain boot. A boot serves
//! any number of cases that only read the guest, then at most one that may
//! change it (sysctl writes or commands), so no case ever sees another's
//! changes.

use crate::scenario::{Case, ExpectedOutcome};

/// Whether a case's observation may change the guest.
pub fn changes_guest(case: &Case) -> bool {
    !case.observe.sysctl_writes.is_empty() || !case.observe.commands.is_empty()
}

/// Whether a case may share its boot with others at all.
fn shareable(case: &Case) -> bool {
    case.expect.outcome == ExpectedOutcome::Booted && case.expect.message.is_none()
}

/// What must be equal for two cases to share a boot.
fn boot_key(case: &Case) -> impl PartialEq + '_ {
    (
        &case.params,
        &case.requires.cpu,
        case.requires.accel,
        case.timeout,
    )
}

/// The indices of `cases` grouped into boots, in the order of each group's
/// first case: readers first, the one case that changes the guest last.
pub fn groups(cases: &[Case]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut taken = vec![false; cases.len()];
    for first in 0..cases.len() {
        if taken[first] {
            continue;
        }
        let mates: Vec<usize> = (first..cases.len())
            .filter(|&i| !taken[i] && same_boot(&cases[first], &cases[i]))
            .collect();
        let mut group: Vec<usize> = mates
            .iter()
            .copied()
            .filter(|&i| !changes_guest(&cases[i]))
            .collect();
        group.extend(mates.iter().copied().find(|&i| changes_guest(&cases[i])));
        for &i in &group {
            taken[i] = true;
        }
        groups.push(group);
    }
    groups
}

fn same_boot(a: &Case, b: &Case) -> bool {
    std::ptr::eq(a, b) || (shareable(a) && shareable(b) && boot_key(a) == boot_key(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cases(text: &str) -> Vec<Case> {
        crate::scenario::parse_str(Path::new("s.toml"), text).unwrap()
    }

    fn scenario(name: &str, extra: &str) -> String {
        format!("[[scenario]]\nname = \"{name}\"\ndescription = \"d\"\n{extra}")
    }

    const READS: &str = "[scenario.observe]\nsysctls = [\"kernel.kptr_restrict\"]\n";
    const WRITES: &str = "[scenario.observe]\ncommands = [[\"true\"]]\n";

    #[test]
    fn readers_share_a_boot_with_one_writer_last() {
        let text = [
            scenario("w1", WRITES),
            scenario("r1", READS),
            scenario("w2", WRITES),
            scenario("other", "params = [\"nopti\"]\n"),
            scenario("r2", ""),
        ]
        .concat();
        let found = groups(&cases(&text));
        assert_eq!(found, [vec![1, 4, 0], vec![2], vec![3]]);
    }

    #[test]
    fn cases_expecting_a_failed_boot_or_other_limits_boot_alone() {
        let text = [
            scenario("a", ""),
            scenario("panics", "[scenario.expect]\noutcome = \"panic\"\n"),
            scenario("slow", "timeout = 90\n"),
            scenario("pcid", "[scenario.requires]\ncpu = [\"pcid\"]\n"),
            scenario("b", READS),
        ]
        .concat();
        let found = groups(&cases(&text));
        assert_eq!(found, [vec![0, 4], vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn every_case_is_in_exactly_one_group() {
        let text: String = (0..9)
            .map(|i| {
                let observe = if i % 3 == 0 { WRITES } else { READS };
                scenario(
                    &format!("c{i}"),
                    &format!("params = [\"p{}\"]\n{observe}", i % 2),
                )
            })
            .collect();
        let mut seen: Vec<usize> = groups(&cases(&text)).concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..9).collect::<Vec<_>>());
    }
}
