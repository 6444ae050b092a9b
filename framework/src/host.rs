//! The host: which QEMU, which accelerator really runs guests (proved by a
//! canary boot, since /dev/kvm can exist while guests hang), and which CPU
//! flags the guest's CPU model has.

use crate::accel::Accel;
use crate::error::{Error, Result};
use crate::machine::qemu::{self, QemuConfig};
use crate::machine::qmp::Qmp;
use crate::machine::{Machine, MachineEvent};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{debug, info, warn};

/// The `--accel` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM if a canary boot proves it works, else TCG.
    Auto,
    /// KVM or an infrastructure error.
    Kvm,
    /// Software emulation.
    Tcg,
}

/// What vmgate found out about the host.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// `qemu-system-x86_64 --version`'s first line.
    pub qemu_version: String,
    /// The accelerator guests run under.
    pub accel: Accel,
    /// Why that accelerator, in words for the report.
    pub accel_reason: String,
    /// The guest CPU model's flags, as QEMU names them.
    pub cpu_flags: BTreeSet<String>,
    /// Every flag QEMU knows for that model, enabled or not.
    #[serde(skip)]
    pub cpu_known: BTreeSet<String>,
}

/// How long a KVM canary may take to print the kernel banner.
const CANARY_DEADLINE: Duration = Duration::from_secs(8);

/// `$VMGATE_QEMU`, or `qemu-system-x86_64` on the PATH.
pub fn find_qemu() -> Result<(PathBuf, String)> {
    let binary = std::env::var_os("VMGATE_QEMU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"));
    let missing = |why: String| Error::HostTool {
        program: binary.display().to_string(),
        message: format!("{why}; install qemu-system-x86 (apt-get install qemu-system-x86)"),
    };
    let output = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .map_err(|e| missing(format!("cannot run it ({e})")))?;
    if !output.status.success() {
        return Err(missing("`--version` failed".into()));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok((binary, text.lines().next().unwrap_or_default().to_string()))
}

/// Probes the host: QEMU, the accelerator (booting `kernel` as a KVM canary
/// when asked to), and the guest CPU flags under that accelerator.
pub async fn probe(choice: AccelChoice, kernel: &Path, initrd: &Path) -> Result<Host> {
    let (qemu, qemu_version) = find_qemu()?;
    let (accel, accel_reason) = match choice {
        AccelChoice::Tcg => (Accel::Tcg, "--accel tcg".to_string()),
        AccelChoice::Kvm => match kvm_verdict(&qemu, kernel, initrd).await {
            Ok(()) => (
                Accel::Kvm,
                "--accel kvm; a canary boot printed the banner".into(),
            ),
            Err(reason) => {
                return Err(Error::AccelUnusable {
                    accel: Accel::Kvm,
                    reason,
                })
            }
        },
        AccelChoice::Auto => match kvm_verdict(&qemu, kernel, initrd).await {
            Ok(()) => (
                Accel::Kvm,
                "a KVM canary boot printed the kernel banner".into(),
            ),
            Err(reason) => {
                warn!(%reason, "KVM unusable; falling back to TCG");
                (Accel::Tcg, format!("KVM unusable: {reason}"))
            }
        },
    };
    let (cpu_flags, cpu_known) = cpu_flags(&qemu, accel).await?;
    info!(%accel, reason = %accel_reason, qemu = %qemu_version, "host probed");
    Ok(Host {
        qemu,
        qemu_version,
        accel,
        accel_reason,
        cpu_flags,
        cpu_known,
    })
}

/// Whether KVM runs a guest here; the error says why not. A canary's verdict
/// holds until the host reboots or QEMU changes, so it is kept in the cache.
async fn kvm_verdict(qemu: &Path, kernel: &Path, initrd: &Path) -> Result<(), String> {
    let remembered = verdict_file(qemu);
    if let Some(text) = remembered
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        debug!(%text, "KVM canary verdict from the cache");
        return match text.strip_prefix("unusable: ") {
            Some(reason) => Err(format!(
                "{reason} (canary verdict cached since this host booted)"
            )),
            None => Ok(()),
        };
    }
    let verdict = kvm_canary(qemu, kernel, initrd).await;
    if let Some(path) = remembered {
        let text = match &verdict {
            Ok(()) => "usable".to_string(),
            Err(reason) => format!("unusable: {reason}"),
        };
        let _ = crate::cache::write_atomic(&path, text.as_bytes());
    }
    verdict
}

/// The cache file for this host boot and QEMU binary, where there is a cache.
fn verdict_file(qemu: &Path) -> Option<PathBuf> {
    use sha2::Digest;
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let binary = std::fs::metadata(which(qemu)?).ok()?;
    let stamp = format!(
        "{}:{:?}:{}",
        boot_id.trim(),
        binary.modified().ok()?,
        binary.len()
    );
    let key = hex::encode(&sha2::Sha256::digest(stamp.as_bytes())[..8]);
    let cache = crate::cache::Cache::from_env().ok()?;
    Some(cache.dir("kvm-canary").ok()?.join(key))
}

fn which(binary: &Path) -> Option<PathBuf> {
    if binary.components().count() > 1 {
        return Some(binary.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// Boots `kernel` under KVM and waits for its banner; the error says why not.
pub async fn kvm_canary(qemu: &Path, kernel: &Path, initrd: &Path) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("cannot open /dev/kvm read-write ({e})"))?;
    let dir = private_dir().map_err(|e| e.to_string())?;
    let config = QemuConfig {
        binary: qemu.to_path_buf(),
        accel: Accel::Kvm,
        memory_mib: 256,
        cpus: 1,
        kernel: kernel.to_path_buf(),
        initrd: initrd.to_path_buf(),
        params: vec!["rdinit=/vmgate-canary".into()],
        qmp_socket: dir.path().join("qmp.sock"),
        ssh_port: crate::machine::free_port().map_err(|e| e.to_string())?,
    };
    let log = dir.path().join("serial.log");
    let mut machine = Machine::start(&config, &log).await.map_err(|e| match e {
        crate::machine::StartError::Qmp { stderr, .. } => qemu_said(&stderr),
        other => other.to_string(),
    })?;
    let verdict = watch_canary(&mut machine).await;
    machine.shutdown(Duration::from_millis(500)).await;
    verdict
}

async fn watch_canary(machine: &mut Machine) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + CANARY_DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, machine.next_event()).await {
            Ok(Some(MachineEvent::Line(line))) if line.contains("Linux version") => return Ok(()),
            Ok(Some(MachineEvent::Exited(_))) | Ok(None) => {
                return Err(qemu_said(&machine.stderr()));
            }
            Ok(Some(_)) => continue,
            Err(_) => {
                return Err(format!(
                    "a canary boot printed no kernel banner in {}s (the guest stalls)",
                    CANARY_DEADLINE.as_secs()
                ))
            }
        }
    }
}

fn qemu_said(stderr: &str) -> String {
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    format!("QEMU exited during a canary boot: {}", last.trim())
}

/// The flags QEMU enables for the guest CPU model under `accel`, and every flag
/// it knows for that model.
async fn cpu_flags(qemu: &Path, accel: Accel) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let model = match accel {
        Accel::Kvm => "host",
        Accel::Tcg => "max",
    };
    let dir = private_dir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let socket = dir.path().join("qmp.sock");
    let mut child = tokio::process::Command::new(qemu)
        .args([
            "-machine",
            "none",
            "-accel",
            accel.as_str(),
            "-nodefaults",
            "-display",
        ])
        .args(["none", "-S"])
        .args(qemu::qmp_args(&socket))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::HostTool {
            program: qemu.display().to_string(),
            message: format!("cannot run it: {e}"),
        })?;
    let deadline = Duration::from_secs(20);
    let flags = match tokio::time::timeout(deadline, expand_cpu(&socket, model)).await {
        Ok(flags) => flags,
        Err(_) => Err(format!(
            "QEMU did not answer within {}s",
            deadline.as_secs()
        )),
    };
    let _ = child.kill().await;
    flags.map_err(|message| Error::HostTool {
        program: qemu.display().to_string(),
        message: format!("cannot list the {model} CPU's flags: {message}"),
    })
}

async fn expand_cpu(
    socket: &Path,
    model: &str,
) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let qmp = Qmp::connect(socket, || true, Duration::from_secs(10), tx)
        .await
        .map_err(|e| e.to_string())?;
    let command = CpuModelExpansion {
        kind: "full",
        model: CpuModel {
            name: model.to_string(),
        },
    };
    let reply = qmp
        .service()
        .execute(command)
        .await
        .map_err(|e| e.to_string())?;
    debug!(%reply, "cpu model expansion");
    Ok((flags(&reply, Some(true)), flags(&reply, None)))
}

/// The boolean properties of a CPU model expansion, those with `value` or all.
fn flags(reply: &serde_json::Value, value: Option<bool>) -> BTreeSet<String> {
    let props = reply.pointer("/model/props").and_then(|p| p.as_object());
    props
        .into_iter()
        .flatten()
        .filter(|(_, v)| {
            v.as_bool().is_some() && value.is_none_or(|want| v.as_bool() == Some(want))
        })
        .map(|(k, _)| k.replace('-', "_"))
        .collect()
}

/// `query-cpu-model-expansion` with an untyped reply, which differs across
/// QEMU versions.
#[derive(Debug, serde::Serialize)]
struct CpuModelExpansion {
    #[serde(rename = "type")]
    kind: &'static str,
    model: CpuModel,
}

#[derive(Debug, serde::Serialize)]
struct CpuModel {
    name: String,
}

impl qapi::Command for CpuModelExpansion {
    type Ok = serde_json::Value;
    const NAME: &'static str = "query-cpu-model-expansion";
    const ALLOW_OOB: bool = false;
}

impl qapi::qmp::QmpCommand for CpuModelExpansion {}

/// A temporary directory only this user can enter.
pub fn private_dir() -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("vmgate-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_enabled_props_are_flags() {
        let reply = serde_json::json!({
            "model": {"name": "max", "props": {"pcid": false, "smap": true, "lm": true,
                "model-id": "QEMU TCG CPU", "avx512-fp16": true}}
        });
        let enabled: Vec<String> = flags(&reply, Some(true)).into_iter().collect();
        assert_eq!(enabled, ["avx512_fp16", "lm", "smap"]);
        let known: Vec<String> = flags(&reply, None).into_iter().collect();
        assert_eq!(known, ["avx512_fp16", "lm", "pcid", "smap"]);
        assert!(flags(&serde_json::json!({}), None).is_empty());
    }

    #[test]
    fn qemu_said_keeps_the_last_line() {
        let stderr = "qemu: warning\nerror: failed to set MSR 0x10a to 0x1\n\n";
        assert!(qemu_said(stderr).ends_with("failed to set MSR 0x10a to 0x1"));
        assert!(qemu_said("").ends_with("no message"));
    }
}
