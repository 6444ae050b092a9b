//! The user's cache directory and atomic, locked writes into it.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Where vmgate keeps downloaded packages, kernels and built images.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// `$VMGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/vmgate` (`~/.cache/vmgate`).
    pub fn from_env() -> Result<Cache> {
        let root = match std::env::var_os("VMGATE_CACHE_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => dirs::cache_dir()
                .ok_or_else(|| Error::HostTool {
                    program: "vmgate".into(),
                    message: "no cache directory: set HOME or VMGATE_CACHE_DIR".into(),
                })?
                .join("vmgate"),
        };
        Cache::at(root)
    }

    /// A cache rooted at `root`, created if missing.
    pub fn at(root: PathBuf) -> Result<Cache> {
        fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        Ok(Cache { root })
    }

    /// The cache's top directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A subdirectory, created if missing.
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir)
    }

    /// Holds an exclusive lock on `name` until the guard drops, so two runs on one
    /// host never build the same entry at once.
    pub fn lock(&self, name: &str) -> Result<CacheLock> {
        let path = self.dir("locks")?.join(format!("{name}.lock"));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: flock on a descriptor we own; the lock ends when the file closes.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
        if rc != 0 {
            return Err(Error::io(&path, std::io::Error::last_os_error()));
        }
        Ok(CacheLock { _file: file })
    }
}

/// An exclusive lock on one cache entry.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a
/// reader sees the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
