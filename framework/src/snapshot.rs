//! Golden snapshots: the stable part of an observation, redacted in one place,
//! compared with `snapshots/<label>/<case>.snap` (insta's file format).

use crate::error::{Error, Result};
use crate::observation::Observation;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Fields of an observation that change from run to run and stay out of snapshots.
pub const UNSNAPSHOTTED: [&str; 2] = ["accel", "ready_seconds"];

/// What the snapshot comparison concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotVerdict {
    /// The golden file matches.
    Matched,
    /// No golden file existed; one was written (outside CI, or with `--accept`).
    Created(PathBuf),
    /// The golden file differed and `--accept` rewrote it.
    Updated(PathBuf),
    /// The golden file differs; `diff` is a unified diff, golden to observed.
    Mismatch {
        /// The golden file.
        path: PathBuf,
        /// The difference.
        diff: String,
    },
    /// No golden file exists and CI forbids creating one.
    Missing(PathBuf),
}

impl SnapshotVerdict {
    /// Whether the case can pass with this verdict.
    pub fn passes(&self) -> bool {
        !matches!(
            self,
            SnapshotVerdict::Mismatch { .. } | SnapshotVerdict::Missing(_)
        )
    }
}

/// How missing and changed snapshots are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Write observed snapshots over golden ones (`--accept`).
    pub accept: bool,
    /// In CI a missing snapshot fails instead of being created.
    pub ci: bool,
}

/// The snapshot text of an observation: stable fields only, redacted.
pub fn render(observation: &Observation) -> String {
    let mut value = serde_json::to_value(observation).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        for field in UNSNAPSHOTTED {
            map.remove(field);
        }
    }
    drop_probe_measurements(&mut value);
    drop_kill_measurements(&mut value);
    redact_value(&mut value);
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// Probe fields that vary between runs: raw entropy bits (their buckets stay)
/// and how long a timed-out check ran.
const PROBE_MEASUREMENTS: [&str; 2] = ["bits", "seconds"];

/// Fields of a PaX kill that change with ASLR and process numbering.
const KILL_MEASUREMENTS: [&str; 4] = ["start", "end", "address", "pid"];

fn drop_kill_measurements(value: &mut serde_json::Value) {
    let events = value
        .pointer_mut("/kernel_events")
        .and_then(|v| v.as_array_mut());
    for event in events.into_iter().flatten() {
        if let Some(map) = event
            .as_object_mut()
            .filter(|m| m.get("kind").and_then(|k| k.as_str()) == Some("pax-kill"))
        {
            KILL_MEASUREMENTS
                .iter()
                .for_each(|field| drop(map.remove(*field)));
        }
    }
}

fn drop_probe_measurements(value: &mut serde_json::Value) {
    for user in ["root", "user"] {
        let records = value
            .pointer_mut(&format!("/probe/{user}"))
            .and_then(|v| v.as_array_mut());
        for record in records.into_iter().flatten() {
            if let Some(map) = record.as_object_mut() {
                PROBE_MEASUREMENTS
                    .iter()
                    .for_each(|field| drop(map.remove(*field)));
            }
        }
    }
}

fn redact_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => *text = redact(text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_value),
        serde_json::Value::Object(map) => map.values_mut().for_each(redact_value),
        _ => {}
    }
}

/// Replaces what varies between runs of the same kernel: printk times, kernel
/// and user addresses, host ports, temporary paths.
pub fn redact(text: &str) -> String {
    static RULES: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"\[\s*\d+\.\d+\]", "[time]"),
            (r"\b0x[0-9a-fA-F]{8,16}\b", "[addr]"),
            (r"\b[0-9a-fA-F]{16}\b", "[addr]"),
            (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
            (r"/tmp/vmgate-[^/\s]+", "[tmp]"),
        ]
        .into_iter()
        .filter_map(|(pattern, with)| regex::Regex::new(pattern).ok().map(|r| (r, with)))
        .collect()
    });
    let mut text = text.to_string();
    for (pattern, with) in rules {
        text = pattern.replace_all(&text, *with).into_owned();
    }
    text
}

/// The golden file of `case` under `dir` (`snapshots/<label>`).
pub fn path_for(dir: &Path, case: &str) -> PathBuf {
    dir.join(format!("{case}.snap"))
}

/// Compares `observed` with the golden file at `path`, writing it as policy says.
pub fn check(
    path: &Path,
    case: &str,
    observed: &str,
    policy: SnapshotPolicy,
) -> Result<SnapshotVerdict> {
    let golden = read_golden(path)?;
    let verdict = match golden {
        Some(golden) if golden.trim_end() == observed.trim_end() => SnapshotVerdict::Matched,
        Some(_) if policy.accept => {
            write(path, case, observed)?;
            SnapshotVerdict::Updated(path.to_path_buf())
        }
        Some(golden) => SnapshotVerdict::Mismatch {
            path: path.to_path_buf(),
            diff: diff(&golden, observed),
        },
        None if policy.ci && !policy.accept => SnapshotVerdict::Missing(path.to_path_buf()),
        None => {
            write(path, case, observed)?;
            SnapshotVerdict::Created(path.to_path_buf())
        }
    };
    Ok(verdict)
}

fn read_golden(path: &Path) -> Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    let snapshot = insta::Snapshot::from_file(path).map_err(|e| {
        Error::io(
            path,
            std::io::Error::other(format!("not a snapshot file: {e}")),
        )
    })?;
    Ok(snapshot.contents().as_text().map(|text| text.to_string()))
}

fn write(path: &Path, case: &str, observed: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let header = format!(
        "---\nsource: vmgate\ndescription: \"observation of case {case}; not recorded: {}; \
         redacted: printk times, addresses, ports, temporary paths\"\n---\n",
        UNSNAPSHOTTED.join(", ")
    );
    crate::cache::write_atomic(
        path,
        format!("{header}{}\n", observed.trim_end()).as_bytes(),
    )
}

/// A unified diff from the golden text to the observed one.
pub fn diff(golden: &str, observed: &str) -> String {
    similar::TextDiff::from_lines(golden.trim_end(), observed.trim_end())
        .unified_diff()
        .context_radius(3)
        .header("golden", "observed")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECK: SnapshotPolicy = SnapshotPolicy {
        accept: false,
        ci: false,
    };
    const CI: SnapshotPolicy = SnapshotPolicy {
        accept: false,
        ci: true,
    };
    const ACCEPT: SnapshotPolicy = SnapshotPolicy {
        accept: true,
        ci: true,
    };

    #[test]
    fn redaction_covers_what_varies() {
        let cases = [
            ("[    1.234567] Kernel panic", "[time] Kernel panic"),
            ("RIP: 0010:0xffffffff81234567", "RIP: 0010:[addr]"),
            (
                "PC: 000003054e044000, SP: 0000030534126388",
                "PC: [addr], SP: [addr]",
            ),
            (
                "connect to 127.0.0.1:41234 failed",
                "connect to 127.0.0.1:[port] failed",
            ),
            ("/tmp/vmgate-AbC123/qmp.sock", "[tmp]/qmp.sock"),
            ("pax_sanitize_slab=full", "pax_sanitize_slab=full"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_a_change_shows_as_a_diff() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "baseline");
        let created = check(&path, "baseline", "{\n  \"a\": 1\n}", CHECK).unwrap();
        assert_eq!(created, SnapshotVerdict::Created(path.clone()));
        assert_eq!(
            check(&path, "baseline", "{\n  \"a\": 1\n}", CI).unwrap(),
            SnapshotVerdict::Matched
        );
        match check(&path, "baseline", "{\n  \"a\": 2\n}", CI).unwrap() {
            SnapshotVerdict::Mismatch { diff, .. } => {
                assert!(
                    diff.contains("-  \"a\": 1") && diff.contains("+  \"a\": 2"),
                    "{diff}"
                );
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert!(matches!(
            check(&path, "baseline", "{\n  \"a\": 2\n}", ACCEPT).unwrap(),
            SnapshotVerdict::Updated(_)
        ));
        assert_eq!(
            check(&path, "baseline", "{\n  \"a\": 2\n}", CI).unwrap(),
            SnapshotVerdict::Matched
        );
    }

    #[test]
    fn pax_kill_addresses_and_pids_stay_out_of_snapshots() {
        let mut value = serde_json::json!({"kernel_events": [
            {"kind": "pax-kill", "task": "/x", "start": 1, "end": 2, "address": 3, "pid": 4},
            {"kind": "pax-mode", "text": "UDEREF enabled"},
            {"no-kind": true}
        ]});
        drop_kill_measurements(&mut value);
        let expected = serde_json::json!({"kernel_events": [
            {"kind": "pax-kill", "task": "/x"},
            {"kind": "pax-mode", "text": "UDEREF enabled"},
            {"no-kind": true}
        ]});
        assert_eq!(value, expected);
    }

    #[test]
    fn ci_refuses_to_create_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "new");
        assert_eq!(
            check(&path, "new", "x", CI).unwrap(),
            SnapshotVerdict::Missing(path.clone())
        );
        assert!(!path.exists());
    }
}
