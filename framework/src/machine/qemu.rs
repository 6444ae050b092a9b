//! The QEMU command line, built from small pure functions so each part is
//! tested without starting QEMU.

use crate::accel::Accel;
use std::path::{Path, PathBuf};

/// Parameters vmgate puts before a case's own: the serial console, and a reboot
/// on panic that `-no-reboot` turns into QEMU exiting at once.
pub const BASE_CMDLINE: [&str; 2] = ["console=ttyS0", "panic=-1"];

/// Everything that decides one VM's command line.
#[derive(Debug, Clone, PartialEq)]
pub struct QemuConfig {
    /// The QEMU binary.
    pub binary: PathBuf,
    /// The accelerator.
    pub accel: Accel,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub cpus: u32,
    /// The bzImage.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The case's kernel parameters, after [`BASE_CMDLINE`].
    pub params: Vec<String>,
    /// The QMP unix socket.
    pub qmp_socket: PathBuf,
    /// The host port forwarded to the guest's port 22, on 127.0.0.1 only.
    pub ssh_port: u16,
}

impl QemuConfig {
    /// The whole kernel command line.
    pub fn cmdline(&self) -> String {
        let base = BASE_CMDLINE.iter().map(|s| s.to_string());
        base.chain(self.params.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The argument vector, without the binary.
    pub fn args(&self) -> Vec<String> {
        [
            machine_args(self.accel),
            cpu_args(self.accel, self.cpus),
            memory_args(self.memory_mib),
            boot_args(&self.kernel, &self.initrd, &self.cmdline()),
            console_args(),
            qmp_args(&self.qmp_socket),
            network_args(self.ssh_port),
            panic_args(),
        ]
        .concat()
    }
}

fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A paused machine that exits instead of rebooting, with no default devices.
pub fn machine_args(accel: Accel) -> Vec<String> {
    let mut args = strings(["-machine", "pc", "-accel", accel.as_str()]);
    args.extend(strings([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
    ]));
    args.extend(strings(["-S", "-no-reboot"]));
    args
}

/// The host's CPU under KVM; QEMU's `max` model under TCG.
pub fn cpu_args(accel: Accel, cpus: u32) -> Vec<String> {
    let model = match accel {
        Accel::Kvm => "host",
        Accel::Tcg => "max",
    };
    vec!["-cpu".into(), model.into(), "-smp".into(), cpus.to_string()]
}

/// Guest memory.
pub fn memory_args(memory_mib: u32) -> Vec<String> {
    vec!["-m".into(), format!("{memory_mib}M")]
}

/// Direct kernel boot with an initramfs and a command line.
pub fn boot_args(kernel: &Path, initrd: &Path, cmdline: &str) -> Vec<String> {
    vec![
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        cmdline.into(),
    ]
}

/// The first serial port on QEMU's standard output, which vmgate reads.
pub fn console_args() -> Vec<String> {
    strings([
        "-chardev",
        "stdio,id=console,signal=off",
        "-serial",
        "chardev:console",
    ])
}

/// A QMP server on a unix socket that QEMU does not wait on.
pub fn qmp_args(socket: &Path) -> Vec<String> {
    vec![
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", socket.display()),
    ]
}

/// User-mode networking; the guest's port 22 is reachable on 127.0.0.1 only.
pub fn network_args(ssh_port: u16) -> Vec<String> {
    let netdev = format!("user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22");
    let device = "virtio-net-pci,netdev=net0,romfile=".to_string();
    vec!["-netdev".into(), netdev, "-device".into(), device]
}

/// A pvpanic device, so a guest panic arrives as a QMP `GUEST_PANICKED` event.
pub fn panic_args() -> Vec<String> {
    strings(["-device", "pvpanic"])
}

/// The argv as one line a person can paste into a shell.
pub fn shell_line(binary: &Path, args: &[String]) -> String {
    let mut words = vec![binary.display().to_string()];
    words.extend(args.iter().cloned());
    shell_words::join(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QemuConfig {
        QemuConfig {
            binary: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            memory_mib: 512,
            cpus: 1,
            kernel: "/k/bzImage".into(),
            initrd: "/run/initrd.img".into(),
            params: vec!["pax_sanitize_slab=full".into(), "pax_nouderef".into()],
            qmp_socket: "/run/qmp.sock".into(),
            ssh_port: 40022,
        }
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        let pairs = args.windows(2).filter(|w| w[0] == flag);
        pairs.map(|w| w[1].as_str()).collect()
    }

    #[test]
    fn the_command_line_puts_vmgate_parameters_first() {
        let cmdline = config().cmdline();
        assert_eq!(
            cmdline,
            "console=ttyS0 panic=-1 pax_sanitize_slab=full pax_nouderef"
        );
        assert_eq!(value_after(&config().args(), "-append"), [cmdline.as_str()]);
    }

    #[test]
    fn machine_starts_paused_and_never_reboots() {
        let args = config().args();
        for flag in ["-S", "-no-reboot", "-nodefaults"] {
            assert!(args.iter().any(|a| a == flag), "{flag} missing");
        }
    }

    #[test]
    fn cpu_model_follows_the_accelerator() {
        assert_eq!(cpu_args(Accel::Kvm, 2), ["-cpu", "host", "-smp", "2"]);
        assert_eq!(cpu_args(Accel::Tcg, 1), ["-cpu", "max", "-smp", "1"]);
        assert_eq!(value_after(&machine_args(Accel::Kvm), "-accel"), ["kvm"]);
    }

    #[test]
    fn the_forward_binds_loopback_only() {
        let netdev = value_after(&network_args(2222), "-netdev")[0].to_string();
        assert!(
            netdev.contains("hostfwd=tcp:127.0.0.1:2222-:22"),
            "{netdev}"
        );
    }

    #[test]
    fn qmp_and_panic_devices_are_present() {
        let args = config().args();
        assert_eq!(
            value_after(&args, "-qmp"),
            ["unix:/run/qmp.sock,server=on,wait=off"]
        );
        assert!(value_after(&args, "-device").contains(&"pvpanic"));
    }

    #[test]
    fn shell_line_quotes_the_command_line() {
        let args = boot_args(Path::new("/k"), Path::new("/i"), "console=ttyS0 a=b");
        let line = shell_line(Path::new("qemu"), &args);
        assert_eq!(
            line,
            "qemu -kernel /k -initrd /i -append 'console=ttyS0 a=b'"
        );
    }
}
