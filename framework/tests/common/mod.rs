//! Helpers the end-to-end tests share.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The project checkout these tests belong to.
pub fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Pid and command line of each QEMU whose arguments mention `tmp` (a test's
/// private TMPDIR, so other tests' QEMUs are not counted).
pub fn qemus_under(tmp: &Path) -> Vec<(i32, String)> {
    let needle = tmp.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.starts_with("qemu-system") && text.contains(&needle) {
            found.push((pid, text));
        }
    }
    found
}
