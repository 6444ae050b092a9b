//! Watching a running machine: folding console lines and QMP events into what
//! the boot has shown, and classifying how it ended by precedence (a guest
//! that could not be set up, then panic, then unexpected reboot, then QEMU
//! error, then hang).

use crate::console::{ConsoleEvent, ConsoleSummary};
use crate::kernel_log::{KernelEvent, KernelLog};
use crate::machine::qmp::QmpEvent;
use crate::machine::{Machine, MachineEvent};
use crate::observation::BootOutcome;
use std::time::Duration;
use tokio::time::Instant;
use tracing::debug;

/// The most kernel events one boot keeps.
pub const EVENT_LIMIT: usize = 256;

/// How long to keep reading after a panic, for the rest of its report.
const PANIC_GRACE: Duration = Duration::from_secs(3);

/// What a machine has shown so far.
#[derive(Debug, Default)]
pub struct BootWatch {
    /// The console, folded.
    pub console: ConsoleSummary,
    /// A QMP `RESET` or guest-reset `SHUTDOWN` vmgate did not ask for.
    pub reset: Option<String>,
    /// pvpanic reported a panic.
    pub guest_panicked: bool,
    /// QEMU exited, with its exit code if it had one.
    pub exited: Option<Option<i32>>,
    /// When the guest printed its readiness marker, counted from the start.
    pub ready_after: Option<Duration>,
    /// The guest's init said it has no network device, so SSH cannot work.
    pub no_network: Option<String>,
    /// The kernel could not unpack the initramfs, or init said a setup step
    /// failed: the guest is not the one the case asked for.
    pub setup_failed: Option<String>,
    /// PaX, grsecurity and fault events from the console, at most [`EVENT_LIMIT`].
    pub events: Vec<KernelEvent>,
    kernel_log: KernelLog,
    started: Option<Instant>,
}

/// Where waiting stopped.
#[derive(Debug)]
pub enum Wait {
    /// The guest printed its readiness marker.
    Ready,
    /// The machine can no longer get there; the outcome says why.
    Ended(BootOutcome),
}

impl BootWatch {
    /// A watch whose clock starts now.
    pub fn new() -> BootWatch {
        BootWatch::since(Instant::now())
    }

    /// A watch whose clock started at `launched` (when QEMU was spawned).
    pub fn since(launched: Instant) -> BootWatch {
        BootWatch {
            started: Some(launched),
            ..BootWatch::default()
        }
    }

    /// Folds one event in; returns whether the machine is finished.
    pub fn fold(&mut self, event: MachineEvent) -> bool {
        match event {
            MachineEvent::Line(line) => {
                debug!(target: "vmgate::console", "{line}");
                if let Some(ConsoleEvent::Ready) = self.console.observe(&line) {
                    self.ready_after = self.started.map(|s| s.elapsed());
                }
                if let Some(why) = line.strip_prefix("vmgate: no network device: ") {
                    self.no_network = Some(format!("the guest has no network device: {why}"));
                }
                if let Some(failure) = setup_failure(crate::console::message(&line)) {
                    self.setup_failed.get_or_insert(failure);
                }
                let events = self.kernel_log.push(crate::console::message(&line));
                self.keep(events);
            }
            MachineEvent::Qmp(QmpEvent::GuestPanicked) => self.guest_panicked = true,
            MachineEvent::Qmp(QmpEvent::Reset { guest }) => {
                self.reset
                    .get_or_insert(format!("QMP RESET (guest: {guest})"));
            }
            MachineEvent::Qmp(QmpEvent::Shutdown {
                guest: true,
                reason,
            }) => {
                if reason == "guest-reset" {
                    self.reset.get_or_insert("the guest reset itself".into());
                }
            }
            MachineEvent::Qmp(_) => {}
            MachineEvent::Exited(code) => self.exited = Some(code),
        }
        self.exited.is_some()
    }

    /// Completes the kernel events still waiting for their last line.
    pub fn finish(&mut self) {
        let events = self.kernel_log.finish();
        self.keep(events);
    }

    fn keep(&mut self, events: Vec<KernelEvent>) {
        let room = EVENT_LIMIT.saturating_sub(self.events.len());
        self.events.extend(events.into_iter().take(room));
    }

    /// Whether something already decides the outcome, whatever comes next.
    pub fn fatal(&self) -> bool {
        self.console.panic.is_some()
            || self.setup_failed.is_some()
            || self.guest_panicked
            || self.reset.is_some()
            || self.console.rebooted
            || self.exited.is_some()
    }

    /// Waits until the readiness marker, a fatal event, or a deadline: the
    /// kernel banner must come by `banner`, readiness by `deadline`.
    pub async fn until_ready(
        &mut self,
        machine: &mut Machine,
        banner: Instant,
        deadline: Instant,
    ) -> Wait {
        loop {
            if self.fatal() {
                self.settle(machine).await;
                return Wait::Ended(self.ended(machine, "readiness marker"));
            }
            if self.console.ready {
                return Wait::Ready;
            }
            let until = if self.console.banners == 0 {
                banner.min(deadline)
            } else {
                deadline
            };
            match tokio::time::timeout_at(until, machine.next_event()).await {
                Ok(Some(event)) => {
                    self.fold(event);
                }
                Ok(None) => self.exited = Some(None),
                Err(_) => return Wait::Ended(self.ended(machine, self.stage())),
            }
        }
    }

    /// Follows the machine until a fatal event; never returns otherwise.
    pub async fn until_fatal(&mut self, machine: &mut Machine) {
        while !self.fatal() {
            match machine.next_event().await {
                Some(event) => {
                    self.fold(event);
                }
                None => self.exited = Some(None),
            }
        }
        self.settle(machine).await;
    }

    /// Takes every event already queued, without waiting.
    pub fn drain(&mut self, machine: &mut Machine) {
        while let Some(event) = machine.queued_event() {
            self.fold(event);
        }
    }

    /// After a panic, reads on briefly so the log holds the whole report.
    async fn settle(&mut self, machine: &mut Machine) {
        let deadline = Instant::now() + PANIC_GRACE;
        while self.exited.is_none() {
            match tokio::time::timeout_at(deadline, machine.next_event()).await {
                Ok(Some(event)) => {
                    self.fold(event);
                }
                _ => break,
            }
        }
    }

    /// The stage the boot had not finished.
    pub fn stage(&self) -> &'static str {
        if self.console.banners == 0 {
            "kernel banner"
        } else if !self.console.init_started {
            "userspace"
        } else {
            "readiness marker"
        }
    }

    /// The outcome of a boot that did not get to `goal`, by precedence.
    pub fn ended(&self, machine: &Machine, goal: &str) -> BootOutcome {
        if let Some(message) = &self.setup_failed {
            let message = message.clone();
            return BootOutcome::SetupFailed { message };
        }
        if let Some(line) = &self.console.panic {
            return BootOutcome::Panic { line: line.clone() };
        }
        if self.guest_panicked {
            let line = "the guest reported a panic through pvpanic".to_string();
            return BootOutcome::Panic { line };
        }
        if self.console.rebooted {
            let evidence = "a second kernel banner after init started".to_string();
            return BootOutcome::UnexpectedReboot { evidence };
        }
        if let Some(evidence) = &self.reset {
            return BootOutcome::UnexpectedReboot {
                evidence: evidence.clone(),
            };
        }
        if let Some(code) = self.exited {
            return BootOutcome::QemuError {
                message: qemu_message(code, &machine.stderr()),
            };
        }
        BootOutcome::Hang {
            stage: format!("{} (waiting for the {goal})", self.stage()),
        }
    }
}

/// A console message saying the guest cannot be the one vmgate built: the
/// kernel could not unpack the initramfs, or init could not set something up.
fn setup_failure(message: &str) -> Option<String> {
    if let Some(why) = message.strip_prefix("Initramfs unpacking failed:") {
        return Some(format!(
            "the kernel could not unpack the initramfs: {}",
            why.trim()
        ));
    }
    let why = message.strip_prefix("vmgate: setup failed:")?;
    Some(format!("the guest's init failed: {}", why.trim()))
}

fn qemu_message(code: Option<i32>, stderr: &str) -> String {
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let status = match code {
        Some(code) => format!("QEMU exited with status {code}"),
        None => "QEMU was killed by a signal".to_string(),
    };
    match said.last() {
        Some(last) => format!("{status}: {last}"),
        None => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(watch: &mut BootWatch, lines: &[&str]) {
        for line in lines {
            watch.fold(MachineEvent::Line(line.to_string()));
        }
    }

    #[test]
    fn a_second_banner_after_init_is_fatal() {
        let mut watch = BootWatch::new();
        lines(
            &mut watch,
            &[
                "[    0.000000] Linux version 6.1.0-57-cloud-amd64 (x@y) #1 SMP",
                "[    0.500000] Run /init as init process",
            ],
        );
        assert!(!watch.fatal());
        lines(
            &mut watch,
            &["[    0.000000] Linux version 6.1.0-57-cloud-amd64 (x@y) #1 SMP"],
        );
        assert!(watch.fatal());
        lines(&mut watch, &["vmgate: ready"]);
        assert!(
            watch.fatal(),
            "a later success marker must not hide the reboot"
        );
    }

    #[test]
    fn an_initramfs_the_kernel_cannot_unpack_ends_the_boot_at_once() {
        let mut watch = BootWatch::new();
        lines(
            &mut watch,
            &["[    0.912345] Initramfs unpacking failed: invalid magic at start of compressed"],
        );
        assert!(watch.fatal());
        let said = watch.setup_failed.as_deref().unwrap_or_default();
        assert_eq!(
            said,
            "the kernel could not unpack the initramfs: invalid magic at start of compressed"
        );
        let mut watch = BootWatch::new();
        lines(
            &mut watch,
            &["vmgate: setup failed: dropbear did not start"],
        );
        assert!(watch.fatal());
        lines(&mut watch, &["Initramfs unpacking failed: later"]);
        let said = watch.setup_failed.as_deref().unwrap_or_default();
        assert_eq!(said, "the guest's init failed: dropbear did not start");
    }

    #[test]
    fn unrequested_resets_are_fatal_and_plain_shutdowns_are_not() {
        let mut watch = BootWatch::new();
        let quit = QmpEvent::Shutdown {
            guest: false,
            reason: "host-qmp-quit".into(),
        };
        watch.fold(MachineEvent::Qmp(quit));
        assert!(!watch.fatal());
        let reset = QmpEvent::Shutdown {
            guest: true,
            reason: "guest-reset".into(),
        };
        watch.fold(MachineEvent::Qmp(reset));
        assert!(watch.fatal());
    }

    #[test]
    fn stages_follow_the_milestones() {
        let mut watch = BootWatch::new();
        assert_eq!(watch.stage(), "kernel banner");
        lines(&mut watch, &["Linux version 6.1.0 (x@y) #1"]);
        assert_eq!(watch.stage(), "userspace");
        lines(&mut watch, &["Run /init as init process"]);
        assert_eq!(watch.stage(), "readiness marker");
    }

    #[test]
    fn qemu_messages_keep_status_and_last_words() {
        let said = "qemu-system-x86_64: -netdev user: Could not set up host forwarding rule\n";
        assert_eq!(
            qemu_message(Some(1), said),
            "QEMU exited with status 1: qemu-system-x86_64: -netdev user: Could not set up \
             host forwarding rule"
        );
        assert_eq!(qemu_message(None, ""), "QEMU was killed by a signal");
    }
}
