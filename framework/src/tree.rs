//! Listing the files below a directory, in a stable order.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Every non-directory below `root`, sorted; symbolic links are listed, not followed.
pub fn files_under(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_files_come_back_sorted() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("b/c")).unwrap();
        for file in ["b/c/z", "a", "b/y"] {
            std::fs::write(root.path().join(file), "").unwrap();
        }
        let found: Vec<String> = files_under(root.path())
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(root.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(found, ["a", "b/c/z", "b/y"]);
    }
}
