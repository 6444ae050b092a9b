//! `vmgate doctor`: checks what a run needs on this host and says what to fix.

use crate::cache::Cache;
use crate::host;
use std::path::Path;
use std::process::Command;

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was checked.
    pub subject: String,
    /// Whether it is fine.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do about it, when it is not fine.
    pub fix: Option<String>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{mark} {}: {}", self.subject, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n     fix: {fix}")?;
        }
        Ok(())
    }
}

fn finding(subject: &str, result: Result<String, (String, String)>) -> Finding {
    match result {
        Ok(detail) => Finding {
            subject: subject.into(),
            ok: true,
            detail,
            fix: None,
        },
        Err((detail, fix)) => Finding {
            subject: subject.into(),
            ok: false,
            detail,
            fix: Some(fix),
        },
    }
}

/// The host checks that need no kernel: QEMU, /dev/kvm, the image tools, the cache.
pub fn static_checks() -> Vec<Finding> {
    let mut findings = vec![finding("qemu", qemu())];
    findings.push(finding("/dev/kvm", kvm_device()));
    for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
        findings.push(finding(tool, program(tool)));
    }
    findings.push(finding("cache", cache()));
    findings
}

/// Boots a KVM canary with `kernel` (ignoring any remembered verdict).
pub async fn kvm_canary(kernel: &Path, initrd: &Path) -> Finding {
    let result = match host::find_qemu() {
        Ok((qemu, _)) => host::kvm_canary(&qemu, kernel, initrd).await,
        Err(e) => Err(e.to_string()),
    };
    let result = result
        .map(|()| "a canary boot under KVM printed the kernel banner".to_string())
        .map_err(|why| {
            (
                why,
                "run with --accel tcg (vmgate auto does this for you)".to_string(),
            )
        });
    finding("kvm canary", result)
}

fn qemu() -> Result<String, (String, String)> {
    host::find_qemu()
        .map(|(binary, version)| format!("{} ({version})", binary.display()))
        .map_err(|e| (e.to_string(), "apt-get install qemu-system-x86".into()))
}

fn kvm_device() -> Result<String, (String, String)> {
    let path = Path::new("/dev/kvm");
    if !path.exists() {
        let fix = "enable virtualisation in firmware or load kvm_intel/kvm_amd; TCG still works";
        return Err(("absent".into(), fix.into()));
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(_) => Ok("present and writable (only a canary boot proves guests run)".into()),
        Err(e) => Err((
            format!("present but not usable by this user ({e})"),
            "add the user to the kvm group (usermod -aG kvm $USER) or a udev rule".into(),
        )),
    }
}

fn program(name: &str) -> Result<String, (String, String)> {
    match Command::new(name).arg("--version").output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            Ok(text.lines().next().unwrap_or(name).trim().to_string())
        }
        Ok(out) => Err((
            format!("`{name} --version` exited {}", out.status),
            "reinstall apt/dpkg".into(),
        )),
        Err(e) => Err((
            format!("cannot run it ({e})"),
            "vmgate builds its kernel and image from Debian packages: use a Debian-based host, \
             or pass --kernel"
                .into(),
        )),
    }
}

fn cache() -> Result<String, (String, String)> {
    let fix = "set VMGATE_CACHE_DIR to a writable directory".to_string();
    let cache = Cache::from_env().map_err(|e| (e.to_string(), fix.clone()))?;
    let probe = cache.root().join(".doctor");
    std::fs::write(&probe, b"ok").map_err(|e| (format!("{}: {e}", cache.root().display()), fix))?;
    let _ = std::fs::remove_file(&probe);
    Ok(format!("{} is writable", cache.root().display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_print_their_fix() {
        let bad = finding("x", Err(("broken".into(), "mend it".into())));
        assert_eq!(bad.to_string(), "FAIL x: broken\n     fix: mend it");
        let good = finding("y", Ok("fine".into()));
        assert_eq!(good.to_string(), "ok   y: fine");
    }
}
