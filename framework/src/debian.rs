//! Debian packages from the host's apt: dependency closure, versions, download,
//! and unpacking without root.

use crate::cache::Cache;
use crate::error::{Error, Result};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tracing::{debug, info};

/// One binary package at the version apt would install.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Package {
    /// The package name, e.g. `busybox-static`.
    pub name: String,
    /// The candidate version, e.g. `1:1.35.0-4+deb12u1+b1`.
    pub version: String,
    /// The architecture, e.g. `amd64` or `all`.
    pub arch: String,
}

impl Package {
    /// The file name `apt-get download` gives this package.
    pub fn file_name(&self) -> String {
        let version = self.version.replace(':', "%3a");
        format!("{}_{}_{}.deb", self.name, version, self.arch)
    }
}

/// `names` and everything they depend on (Depends and Pre-Depends), as apt
/// resolves it on this host, with candidate versions, sorted by name.
pub fn closure(names: &[String]) -> Result<Vec<Package>> {
    let mut args = vec![
        "depends",
        "--recurse",
        "--no-recommends",
        "--no-suggests",
        "--no-conflicts",
        "--no-breaks",
        "--no-replaces",
        "--no-enhances",
    ];
    args.extend(names.iter().map(String::as_str));
    let listing = run_apt_cache(&args)?;
    let all: Vec<String> = listing
        .lines()
        .filter(|line| !line.starts_with(' ') && !line.starts_with('<'))
        .map(|line| line.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect();
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !all.contains(n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(apt_error(&format!(
            "apt knows no package {}",
            unknown.join(", ")
        )));
    }
    candidates(&all)
}

/// The candidate version of each named package.
pub fn candidates(names: &[String]) -> Result<Vec<Package>> {
    let mut args = vec!["show", "--no-all-versions"];
    args.extend(names.iter().map(String::as_str));
    let text = run_apt_cache(&args)?;
    let found = parse_stanzas(&text);
    let mut missing = names
        .iter()
        .filter(|n| !found.contains_key(n.as_str()))
        .peekable();
    if missing.peek().is_some() {
        let list: Vec<&str> = missing.map(String::as_str).collect();
        return Err(apt_error(&format!("no candidate for {}", list.join(", "))));
    }
    Ok(found.into_values().collect())
}

/// The Depends of one package, each alternative group reduced to its first name.
pub fn depends(name: &str) -> Result<Vec<String>> {
    let text = run_apt_cache(&["depends", "--no-recommends", "--no-suggests", name])?;
    let deps = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Depends: "))
        .map(|dep| dep.trim_matches(|c| c == '<' || c == '>').to_string())
        .collect();
    Ok(deps)
}

fn parse_stanzas(text: &str) -> BTreeMap<String, Package> {
    let mut found = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        };
        if let (Some(name), Some(version), Some(arch)) =
            (field("Package:"), field("Version:"), field("Architecture:"))
        {
            found.entry(name.clone()).or_insert(Package {
                name,
                version,
                arch,
            });
        }
    }
    found
}

/// `work`'s answer for `question`, kept in the cache until apt's package lists
/// change: apt-cache reads every list on each call (a second or more where apt
/// keeps no binary cache), and a run asks the same questions every time.
pub fn remembered<T>(cache: &Cache, question: &str, work: impl FnOnce() -> Result<T>) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let Some(stamp) = lists_stamp() else {
        return work();
    };
    let key = hex::encode(&sha2::Sha256::digest(format!("{stamp}\0{question}"))[..12]);
    let path = cache.dir("apt-answers")?.join(format!("{key}.json"));
    if let Some(answer) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        debug!(question, "apt answer from the cache");
        return Ok(answer);
    }
    let answer = work()?;
    if let Ok(bytes) = serde_json::to_vec(&answer) {
        let _ = crate::cache::write_atomic(&path, &bytes);
    }
    Ok(answer)
}

/// Names, sizes and times of apt's package lists: changes with every `apt-get update`.
fn lists_stamp() -> Option<String> {
    let mut entries: Vec<String> = std::fs::read_dir("/var/lib/apt/lists")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            let modified = meta.modified().ok()?;
            Some(format!(
                "{:?}:{}:{:?}",
                entry.file_name(),
                meta.len(),
                modified
            ))
        })
        .collect();
    entries.sort();
    (!entries.is_empty()).then(|| entries.join("\n"))
}

/// The `.deb` files of `packages`, downloading into the cache those it lacks.
pub fn fetch(cache: &Cache, packages: &[Package]) -> Result<Vec<PathBuf>> {
    let dir = cache.dir("debs")?;
    let _lock = cache.lock("debs")?;
    let missing: Vec<&Package> = packages
        .iter()
        .filter(|p| !dir.join(p.file_name()).exists())
        .collect();
    if !missing.is_empty() {
        download(&dir, &missing)?;
    }
    Ok(packages.iter().map(|p| dir.join(p.file_name())).collect())
}

fn download(dir: &Path, packages: &[&Package]) -> Result<()> {
    let names: Vec<String> = packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    info!(count = names.len(), "downloading Debian packages");
    let staging = tempfile::tempdir_in(dir).map_err(|e| Error::io(dir, e))?;
    let output = Command::new("apt-get")
        .arg("download")
        .args(&names)
        .current_dir(staging.path())
        .output()
        .map_err(|e| tool_missing("apt-get", e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(apt_error(&format!(
            "apt-get download failed: {}",
            stderr.trim()
        )));
    }
    for package in packages {
        let name = package.file_name();
        let from = staging.path().join(&name);
        std::fs::rename(&from, dir.join(&name)).map_err(|e| Error::io(&from, e))?;
    }
    Ok(())
}

/// Unpacks a `.deb`'s files into `dir` with `dpkg-deb -x` (no root needed).
pub fn unpack(deb: &Path, dir: &Path) -> Result<()> {
    debug!(deb = %deb.display(), dir = %dir.display(), "dpkg-deb -x");
    let output = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(dir)
        .output()
        .map_err(|e| tool_missing("dpkg-deb", e))?;
    if !output.status.success() {
        return Err(Error::HostTool {
            program: "dpkg-deb".into(),
            message: format!(
                "cannot unpack {}: {}",
                deb.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(())
}

fn run_apt_cache(args: &[&str]) -> Result<String> {
    debug!(?args, "apt-cache");
    let output = Command::new("apt-cache")
        .args(args)
        .output()
        .map_err(|e| tool_missing("apt-cache", e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(apt_error(stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn apt_error(message: &str) -> Error {
    Error::HostTool {
        program: "apt".into(),
        message: format!("{message} (check the name; run `apt-get update` if apt's lists are old)"),
    }
}

fn tool_missing(program: &str, e: std::io::Error) -> Error {
    Error::HostTool {
        program: program.into(),
        message: format!("cannot run it ({e}); vmgate needs a Debian or Ubuntu host with apt"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_remembered_until_the_lists_change() {
        if lists_stamp().is_none() {
            eprintln!("skipped: no apt package lists on this host");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf()).unwrap();
        let calls = std::cell::Cell::new(0);
        let ask = || {
            remembered(&cache, "question", || {
                calls.set(calls.get() + 1);
                Ok(vec!["answer".to_string()])
            })
        };
        assert_eq!(ask().unwrap(), ["answer"]);
        assert_eq!(ask().unwrap(), ["answer"]);
        assert_eq!(calls.get(), 1, "the second ask came from the cache");
    }

    #[test]
    fn file_name_escapes_epoch() {
        let p = Package {
            name: "busybox-static".into(),
            version: "1:1.35.0-4+deb12u1+b1".into(),
            arch: "amd64".into(),
        };
        assert_eq!(
            p.file_name(),
            "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb"
        );
    }

    #[test]
    fn stanzas_keep_first_version_per_package() {
        let text = "Package: a\nVersion: 1\nArchitecture: all\n\n\
                    Package: b\nVersion: 2\nArchitecture: amd64\nDepends: a\n\n\
                    Package: a\nVersion: 0\nArchitecture: all\n";
        let found = parse_stanzas(text);
        assert_eq!(found.len(), 2);
        assert_eq!(found["a"].version, "1");
        assert_eq!(found["b"].arch, "amd64");
    }
}
