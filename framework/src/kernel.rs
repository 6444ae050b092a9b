//! The kernel under test: a bzImage from a path, or Debian's cloud kernel
//! fetched into the cache, identified by the release string in its header.

use crate::cache::Cache;
use crate::debian;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tracing::info;

/// The Debian metapackage whose dependency is the default kernel.
pub const DEFAULT_PACKAGE: &str = "linux-image-cloud-amd64";

/// A kernel image ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The bzImage.
    pub path: PathBuf,
    /// The release string from the image header, e.g. `6.1.0-57-cloud-amd64`.
    pub release: String,
    /// The name its snapshots live under: the release unless `--label` says otherwise.
    pub label: String,
    /// `lib/modules/<release>` for this kernel, where it has one.
    pub modules: Option<PathBuf>,
}

impl Kernel {
    /// A kernel from a path the user gave, with its modules directory if given.
    pub fn from_path(path: &Path, modules: Option<PathBuf>) -> Result<Kernel> {
        let bytes = read_image(path)?;
        let release = release_of(&bytes).map_err(|why| Error::NotAKernel {
            path: path.to_path_buf(),
            why,
        })?;
        if let Some(dir) = modules.as_ref().filter(|dir| !dir.is_dir()) {
            return Err(Error::Usage(format!(
                "--modules {}: not a directory; give the kernel's lib/modules/<release>",
                dir.display()
            )));
        }
        check_label(&release).map_err(|why| Error::NotAKernel {
            path: path.to_path_buf(),
            why: format!("its release string {release:?} {why}"),
        })?;
        Ok(Kernel {
            path: path.to_path_buf(),
            label: release.clone(),
            release,
            modules,
        })
    }

    /// Debian's cloud kernel at the version apt offers, unpacked in the cache.
    pub fn default_kernel(cache: &Cache) -> Result<Kernel> {
        let package = debian::remembered(cache, DEFAULT_PACKAGE, default_package)?;
        let versioned = package.name.clone();
        let dir = unpacked(cache, &package)?;
        let release = versioned.trim_start_matches("linux-image-").to_string();
        let image = dir.join("boot").join(format!("vmlinuz-{release}"));
        let modules = dir.join("lib/modules").join(&release);
        Kernel::from_path(&image, Some(modules).filter(|m| m.is_dir()))
    }

    /// Overrides the snapshot label, which names a directory and so must be one
    /// plain name.
    pub fn with_label(mut self, label: Option<String>) -> Result<Kernel> {
        if let Some(label) = label {
            check_label(&label).map_err(|why| Error::Usage(format!("--label {label:?} {why}")))?;
            self.label = label;
        }
        Ok(self)
    }
}

/// The largest file taken as a kernel image.
const IMAGE_LIMIT: u64 = 512 * 1024 * 1024;

/// Reads a regular file of sane size: never a device, a FIFO or a directory.
fn read_image(path: &Path) -> Result<Vec<u8>> {
    let unreadable = |source| Error::KernelUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let refuse = |why: &str| Error::NotAKernel {
        path: path.to_path_buf(),
        why: why.into(),
    };
    if !meta.is_file() {
        return Err(refuse("not a regular file"));
    }
    if meta.len() > IMAGE_LIMIT {
        return Err(refuse("larger than any bzImage (over 512 MiB)"));
    }
    std::fs::read(path).map_err(unreadable)
}

/// Why `label` cannot name a snapshot directory, if it cannot.
pub fn check_label(label: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._+-~".contains(c);
    if label.is_empty() || label == "." || label == ".." {
        return Err("is not a directory name".into());
    }
    match label.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!("contains {c:?}; use letters, digits and . _ + - ~")),
        None => Ok(()),
    }
}

/// The versioned kernel package the metapackage depends on, at apt's candidate.
fn default_package() -> Result<debian::Package> {
    let versioned = debian::depends(DEFAULT_PACKAGE)?
        .into_iter()
        .find(|name| name.starts_with("linux-image-"))
        .ok_or_else(|| Error::HostTool {
            program: "apt".into(),
            message: format!("{DEFAULT_PACKAGE} names no kernel package; run apt-get update"),
        })?;
    let mut found = debian::candidates(std::slice::from_ref(&versioned))?;
    found.pop().ok_or_else(|| Error::HostTool {
        program: "apt".into(),
        message: format!("no candidate for {versioned}; run apt-get update, or pass --kernel"),
    })
}

fn unpacked(cache: &Cache, package: &debian::Package) -> Result<PathBuf> {
    let kernels = cache.dir("kernels")?;
    let dir = kernels.join(format!(
        "{}_{}",
        package.name,
        package.version.replace(':', "%3a")
    ));
    if dir.is_dir() {
        return Ok(dir);
    }
    let _lock = cache.lock("kernels")?;
    if dir.is_dir() {
        return Ok(dir);
    }
    info!(package = %package.name, version = %package.version, "fetching the default kernel");
    let debs = debian::fetch(cache, std::slice::from_ref(package))?;
    let staging = tempfile::tempdir_in(&kernels).map_err(|e| Error::io(&kernels, e))?;
    debian::unpack(&debs[0], staging.path())?;
    let staged = staging.keep();
    std::fs::rename(&staged, &dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// The release string of an x86 bzImage, read from its setup header.
pub fn release_of(image: &[u8]) -> Result<String, String> {
    let u16_at = |at: usize| {
        image
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Err("no \"HdrS\" setup header at offset 0x202".into());
    }
    let pointer = u16_at(0x20e).ok_or("header is truncated")? as usize;
    if pointer == 0 {
        return Err("the header holds no kernel version".into());
    }
    let text = image
        .get(pointer + 0x200..)
        .ok_or("kernel version offset is past the end")?;
    let end = text.iter().take(512).position(|&b| b == 0 || b == b' ');
    let release = end.and_then(|end| std::str::from_utf8(&text[..end]).ok());
    match release {
        Some(release) if !release.is_empty() => Ok(release.to_string()),
        _ => Err("the kernel version string is not readable".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with_version(version: &[u8]) -> Vec<u8> {
        let mut image = vec![0u8; 0x400];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        image[0x300..0x300 + version.len()].copy_from_slice(version);
        image
    }

    #[test]
    fn release_is_the_first_word_of_the_version() {
        let image = image_with_version(b"6.1.0-57-cloud-amd64 (debian-kernel@lists) #1 SMP\0");
        assert_eq!(release_of(&image).unwrap(), "6.1.0-57-cloud-amd64");
    }

    #[test]
    fn labels_are_plain_directory_names() {
        for good in ["6.1.0-57-cloud-amd64", "v6.12-rc1+", "golden", "a.b_c~1"] {
            assert_eq!(check_label(good), Ok(()), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "x y", "a\nb", "é"] {
            assert!(check_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn devices_fifos_and_directories_are_not_read() {
        for path in ["/dev/zero", "/dev/null", "/tmp"] {
            let err = Kernel::from_path(Path::new(path), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a regular file"), "{path}: {err}");
        }
    }

    #[test]
    fn files_that_are_not_kernels_are_refused() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "HdrS"),
            (b"#!/bin/sh\necho hi\n", "HdrS"),
            (&[0u8; 0x210], "HdrS"),
        ];
        for (bytes, needle) in cases {
            let err = release_of(bytes).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let mut image = image_with_version(b"\0");
        assert!(release_of(&image).is_err());
        image[0x20e..0x210].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert!(release_of(&image).unwrap_err().contains("past the end"));
    }
}
