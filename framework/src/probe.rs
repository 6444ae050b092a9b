//! Reading the guest's sysctls in one round trip, keeping a value, an absent
//! key and a read error distinct.

use crate::guest_script::ONE_LINE;
use serde::Serialize;
use std::collections::BTreeMap;

/// One sysctl as the guest showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum SysctlValue {
    /// The key exists and reads as `value` (lines joined by spaces).
    Value {
        /// The value, trimmed.
        value: String,
    },
    /// The kernel has no such key.
    Absent,
    /// The key exists but reading it failed.
    Error {
        /// `permission-denied`, or the reader's message.
        error: String,
    },
}

/// The `/proc/sys` path of a dotted key.
pub fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Guest shell scripts, in batches for SSH, that print one tab-separated
/// record per key: `value KEY VALUE`, `absent KEY`, or `error KEY MESSAGE`.
pub fn sysctl_script(keys: &[String]) -> Vec<String> {
    crate::guest_script::batches(keys.iter().map(|key| {
        let path = shell_words::quote(&sysctl_path(key)).into_owned();
        let key = shell_words::quote(key).into_owned();
        let flat = format!("\"$(printf %s \"$v\" | {ONE_LINE})\"");
        format!(
            "if [ ! -e {path} ]; then printf 'absent\\t%s\\n' {key}; \
             elif v=$(cat {path} 2>&1); then printf 'value\\t%s\\t%s\\n' {key} {flat}; \
             else printf 'error\\t%s\\t%s\\n' {key} {flat}; fi\n"
        )
    }))
}

/// Parses the script's output; keys it did not report are read errors.
pub fn parse_sysctls(keys: &[String], output: &str) -> BTreeMap<String, SysctlValue> {
    let mut found = BTreeMap::new();
    for line in output.lines() {
        let mut fields = line.splitn(3, '\t');
        let (state, key, rest) = (fields.next(), fields.next(), fields.next());
        let Some(key) = key.filter(|k| keys.iter().any(|w| w == k)) else {
            continue;
        };
        let value = match (state, rest) {
            (Some("absent"), _) => SysctlValue::Absent,
            (Some("value"), Some(v)) => SysctlValue::Value {
                value: v.trim().to_string(),
            },
            (Some("error"), Some(message)) => SysctlValue::Error {
                error: read_error(message),
            },
            _ => continue,
        };
        found.insert(key.to_string(), value);
    }
    for key in keys {
        found
            .entry(key.clone())
            .or_insert_with(|| SysctlValue::Error {
                error: "not reported by the guest".into(),
            });
    }
    found
}

fn read_error(message: &str) -> String {
    if message.contains("Permission denied") || message.contains("Operation not permitted") {
        "permission-denied".into()
    } else {
        message.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_three_states_stay_distinct() {
        let wanted = keys(&[
            "kernel.kptr_restrict",
            "kernel.grsecurity.harden_ptrace",
            "a.b",
            "c",
        ]);
        let output = "value\tkernel.kptr_restrict\t1\n\
                      absent\tkernel.grsecurity.harden_ptrace\n\
                      error\ta.b\tcat: can't open '/proc/sys/a/b': Permission denied\n";
        let got = parse_sysctls(&wanted, output);
        assert_eq!(
            got["kernel.kptr_restrict"],
            SysctlValue::Value { value: "1".into() }
        );
        assert_eq!(got["kernel.grsecurity.harden_ptrace"], SysctlValue::Absent);
        let denied = SysctlValue::Error {
            error: "permission-denied".into(),
        };
        assert_eq!(got["a.b"], denied);
        let silent = SysctlValue::Error {
            error: "not reported by the guest".into(),
        };
        assert_eq!(got["c"], silent);
    }

    #[test]
    fn records_for_keys_not_asked_for_are_ignored() {
        let got = parse_sysctls(&keys(&["x"]), "value\ty\t1\nvalue\tx\t2\tz\n");
        assert_eq!(got.len(), 1);
        assert_eq!(
            got["x"],
            SysctlValue::Value {
                value: "2\tz".into()
            }
        );
    }

    #[test]
    fn the_script_quotes_paths_and_keys() {
        let scripts = sysctl_script(&keys(&["kernel.yama.ptrace_scope"]));
        assert_eq!(scripts.len(), 1);
        assert!(scripts[0].contains("/proc/sys/kernel/yama/ptrace_scope"));
        assert_eq!(scripts[0].lines().count(), 1);
    }
}
