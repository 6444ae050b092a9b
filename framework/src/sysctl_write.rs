//! Writing sysctls in the guest and checking the effect: a write the kernel
//! applied, one it refused (locked or sticky tunables), one it took but ignored,
//! and a key it does not have are four different results.

use crate::guest_script::ONE_LINE;
use crate::probe::sysctl_path;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// One write a scenario asks for, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlWrite {
    /// The dotted key, such as `kernel.yama.ptrace_scope`.
    pub key: String,
    /// The text written.
    pub value: String,
    /// What the write must do.
    pub expect: WriteExpectation,
}

/// What a write must do: take effect or not, and whether a kernel without the
/// key passes. Written `"applied"` or `"refused"`, optionally followed by
/// `" or absent"`; the default is `"applied"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WriteExpectation {
    /// Whether the value must read back as written.
    pub applied: bool,
    /// Whether a kernel without the key passes too.
    pub absent_ok: bool,
}

impl Default for WriteExpectation {
    fn default() -> Self {
        WriteExpectation {
            applied: true,
            absent_ok: false,
        }
    }
}

impl FromStr for WriteExpectation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (body, absent_ok) = match text.trim().strip_suffix(" or absent") {
            Some(body) => (body.trim(), true),
            None => (text.trim(), false),
        };
        let applied = match body {
            "applied" => true,
            "refused" => false,
            _ => {
                return Err(format!(
                    "`{text}`: write `applied` or `refused`, optionally `... or absent`"
                ))
            }
        };
        Ok(WriteExpectation { applied, absent_ok })
    }
}

impl fmt::Display for WriteExpectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = if self.applied { "applied" } else { "refused" };
        let tail = if self.absent_ok { " or absent" } else { "" };
        write!(f, "{body}{tail}")
    }
}

/// What one write did in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum WriteResult {
    /// The write succeeded and the key reads back as written.
    Applied,
    /// The write failed; `now` is what the key reads afterwards.
    Refused {
        /// The errno name (`EPERM`, `EINVAL`, ...) or the shell's message.
        error: String,
        /// The value read after the attempt.
        now: String,
    },
    /// The write succeeded but the key reads back otherwise.
    Ignored {
        /// The value read after the write.
        now: String,
    },
    /// The kernel has no such key.
    Absent,
    /// The guest did not report this write.
    Unreported,
}

/// A write with what came of it, as the observation records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteRecord {
    /// The dotted key.
    pub key: String,
    /// The text written.
    pub value: String,
    /// What came of it.
    #[serde(flatten)]
    pub result: WriteResult,
}

impl SysctlWrite {
    /// Why `result` misses this write's expectation, if it does.
    pub fn failure(&self, result: &WriteResult) -> Option<String> {
        let met = match result {
            WriteResult::Absent => self.expect.absent_ok,
            WriteResult::Applied => self.expect.applied,
            WriteResult::Refused { .. } | WriteResult::Ignored { .. } => !self.expect.applied,
            WriteResult::Unreported => false,
        };
        (!met).then(|| {
            format!(
                "sysctl write {} = {}: expected {}, was {}",
                self.key,
                self.value,
                self.expect,
                describe(result)
            )
        })
    }
}

fn describe(result: &WriteResult) -> String {
    match result {
        WriteResult::Applied => "applied".into(),
        WriteResult::Refused { error, now } => format!("refused ({error}; reads {now})"),
        WriteResult::Ignored { now } => format!("ignored (reads {now})"),
        WriteResult::Absent => "absent".into(),
        WriteResult::Unreported => "not reported by the guest".into(),
    }
}

/// Guest shell scripts, in batches for SSH, that perform `writes` in order,
/// printing one tab-separated record each: `absent N`, `ok N NOW` or
/// `error N MESSAGE NOW`, where N is the write's index. `cat` makes the one
/// write(2), so its message names the errno.
pub fn write_script(writes: &[SysctlWrite]) -> Vec<String> {
    crate::guest_script::batches(writes.iter().enumerate().map(|(index, write)| {
        let path = shell_words::quote(&sysctl_path(&write.key)).into_owned();
        let value = shell_words::quote(&write.value).into_owned();
        let now = format!("\"$({ONE_LINE} < {path} 2>&1)\"");
        let error = format!("\"$(printf %s \"$e\" | {ONE_LINE})\"");
        format!(
            "if [ ! -e {path} ]; then printf 'absent\\t{index}\\n'; \
             elif e=$(printf '%s\\n' {value} | cat 2>&1 > {path}); then \
             printf 'ok\\t{index}\\t%s\\n' {now}; \
             else printf 'error\\t{index}\\t%s\\t%s\\n' {error} {now}; fi\n"
        )
    }))
}

/// Reads the script's output into one record per write, in order.
pub fn parse_writes(writes: &[SysctlWrite], output: &str) -> Vec<WriteRecord> {
    let mut results = vec![WriteResult::Unreported; writes.len()];
    for line in output.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let Some(index) = fields.get(1).and_then(|i| i.parse::<usize>().ok()) else {
            continue;
        };
        let Some(write) = writes.get(index) else {
            continue;
        };
        let result = match (fields[0], &fields[2..]) {
            ("absent", []) => WriteResult::Absent,
            ("ok", [now]) if same_value(now, &write.value) => WriteResult::Applied,
            ("ok", [now]) => WriteResult::Ignored {
                now: now.trim().to_string(),
            },
            ("error", [message, now]) => WriteResult::Refused {
                error: errno_name(message),
                now: now.trim().to_string(),
            },
            _ => continue,
        };
        results[index] = result;
    }
    writes
        .iter()
        .zip(results)
        .map(|(write, result)| WriteRecord {
            key: write.key.clone(),
            value: write.value.clone(),
            result,
        })
        .collect()
}

fn same_value(read: &str, written: &str) -> bool {
    read.split_whitespace().eq(written.split_whitespace())
}

/// The errno a shell's write error names, or the message itself.
fn errno_name(message: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("Operation not permitted", "EPERM"),
        ("Permission denied", "EACCES"),
        ("Invalid argument", "EINVAL"),
        ("Device or resource busy", "EBUSY"),
        ("Read-only file system", "EROFS"),
        ("Numerical result out of range", "ERANGE"),
        ("No such file or directory", "ENOENT"),
    ];
    NAMES
        .iter()
        .find(|(text, _)| message.contains(text))
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| message.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str, value: &str, expect: &str) -> SysctlWrite {
        SysctlWrite {
            key: key.into(),
            value: value.into(),
            expect: expect.parse().unwrap(),
        }
    }

    #[test]
    fn expectations_read_and_print_back() {
        for text in [
            "applied",
            "refused",
            "applied or absent",
            "refused or absent",
        ] {
            let parsed: WriteExpectation = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
        for bad in [
            "",
            "absent",
            "applied or",
            "denied",
            "refused or absent or absent",
        ] {
            assert!(bad.parse::<WriteExpectation>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_four_results_are_told_apart() {
        let writes = [
            write("kernel.yama.ptrace_scope", "3", "applied"),
            write("kernel.yama.ptrace_scope", "1", "refused"),
            write("kernel.grsecurity.grsec_lock", "1", "applied or absent"),
            write("vm.mmap_min_addr", "0", "applied"),
            write("kernel.printk", "4 4 1 7", "applied"),
        ];
        let output = "ok\t0\t3\n\
            error\t1\tsh: write error: Invalid argument\t3\n\
            absent\t2\n\
            ok\t3\t65536\n\
            ok\t4\t4 4 1 7\n";
        let records = parse_writes(&writes, output);
        let results: Vec<&WriteResult> = records.iter().map(|r| &r.result).collect();
        assert_eq!(
            results,
            [
                &WriteResult::Applied,
                &WriteResult::Refused {
                    error: "EINVAL".into(),
                    now: "3".into()
                },
                &WriteResult::Absent,
                &WriteResult::Ignored {
                    now: "65536".into()
                },
                &WriteResult::Applied,
            ]
        );
        let failures: Vec<String> = writes
            .iter()
            .zip(&records)
            .filter_map(|(w, r)| w.failure(&r.result))
            .collect();
        assert_eq!(
            failures,
            ["sysctl write vm.mmap_min_addr = 0: expected applied, was ignored (reads 65536)"]
        );
    }

    #[test]
    fn a_lock_that_lets_a_write_through_fails_the_expectation() {
        let locked = write("kernel.grsecurity.harden_ptrace", "0", "refused or absent");
        assert_eq!(locked.failure(&WriteResult::Absent), None);
        let ignored = WriteResult::Ignored { now: "1".into() };
        assert_eq!(locked.failure(&ignored), None);
        let message = locked.failure(&WriteResult::Applied).unwrap();
        assert!(
            message.contains("expected refused or absent, was applied"),
            "{message}"
        );
    }

    #[test]
    fn writes_the_guest_never_reported_fail_and_stray_lines_are_ignored() {
        let writes = [write("kernel.modules_disabled", "1", "applied")];
        let records = parse_writes(&writes, "ok\t7\t1\nnoise\nok\tx\t1\nerror\t0\tonly-two\n");
        assert_eq!(records[0].result, WriteResult::Unreported);
        assert!(writes[0].failure(&records[0].result).is_some());
    }

    #[test]
    fn the_script_quotes_values_and_keys_for_the_guest_shell() {
        let script = write_script(&[write("kernel.core_pattern", "|/bin/x $(id)", "applied")]);
        let script = script.concat();
        assert!(script.contains("'|/bin/x $(id)'"), "{script}");
        assert!(script.contains("/proc/sys/kernel/core_pattern"), "{script}");
    }
}
