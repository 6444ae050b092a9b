//! One QEMU virtual machine: started paused in a private directory, its serial
//! console, QMP events and exit merged into one stream, and killed with its
//! process group whenever the handle drops.

pub mod qemu;
pub mod qmp;
pub mod ssh;

use crate::console::LineAssembler;
use qemu::QemuConfig;
use qmp::{Qmp, QmpEvent};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tracing::debug;

/// Something that happened to a running machine.
#[derive(Debug, Clone, PartialEq)]
pub enum MachineEvent {
    /// A clean line from the serial console.
    Line(String),
    /// A QMP event.
    Qmp(QmpEvent),
    /// The QEMU process ended, with its exit code if it had one.
    Exited(Option<i32>),
}

/// Why a machine could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The QEMU binary could not be run.
    #[error("cannot run {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: String,
        /// The failure.
        source: std::io::Error,
    },
    /// QEMU is alive but its QMP socket did not answer in time (stopped or stuck).
    #[error("QEMU did not answer on QMP: {message}")]
    Unresponsive {
        /// What the QMP side saw.
        message: String,
    },
    /// QEMU ran but QMP never answered because QEMU exited: see `stderr`.
    #[error("QEMU did not start: {message}")]
    Qmp {
        /// What the QMP side saw.
        message: String,
        /// QEMU's standard error so far.
        stderr: String,
    },
}

/// A running QEMU.
pub struct Machine {
    pid: i32,
    qmp: Qmp,
    events: mpsc::UnboundedReceiver<MachineEvent>,
    alive: Arc<AtomicBool>,
    stderr: Arc<Mutex<String>>,
    argv: Vec<String>,
    serial_log: PathBuf,
    ssh_port: u16,
    console_done: Option<tokio::task::JoinHandle<()>>,
}

/// The longest QEMU standard error kept.
const STDERR_LIMIT: usize = 16 * 1024;

impl Machine {
    /// Starts QEMU paused, attaches QMP, and lets the guest run.
    pub async fn start(config: &QemuConfig, serial_log: &Path) -> Result<Machine, StartError> {
        let argv = config.args();
        debug!(argv = %qemu::shell_line(&config.binary, &argv), "starting QEMU");
        let mut child = spawn(&config.binary, &argv).map_err(|source| StartError::Spawn {
            binary: config.binary.display().to_string(),
            source,
        })?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let (tx, events) = mpsc::unbounded_channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let alive = Arc::new(AtomicBool::new(true));
        let console_done = read_console(child.stdout.take(), serial_log, tx.clone());
        let stderr_done = read_stderr(child.stderr.take(), stderr.clone());
        let exited = Arc::new(tokio::sync::Notify::new());
        watch_exit(child, (alive.clone(), exited.clone()), tx.clone());
        let qmp = match attach_qmp(config, &alive, tx).await {
            Ok(qmp) => qmp,
            // QMP often fails because QEMU is exiting: give its exit a moment to
            // land, so its own words are reported rather than the socket error.
            Err(StartError::Qmp { message, .. }) if !exits_soon(&alive, &exited).await => {
                kill_group(pid);
                return Err(StartError::Unresponsive { message });
            }
            Err(StartError::Qmp { message, .. }) => {
                kill_group(pid);
                let _ = tokio::time::timeout(Duration::from_secs(2), stderr_done).await;
                let stderr = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                return Err(StartError::Qmp { message, stderr });
            }
            Err(e) => return Err(e),
        };
        let mut machine = Machine {
            pid,
            qmp,
            events,
            alive,
            stderr,
            argv,
            serial_log: serial_log.to_path_buf(),
            ssh_port: config.ssh_port,
            console_done: Some(console_done),
        };
        machine.resume().await?;
        Ok(machine)
    }

    async fn resume(&mut self) -> Result<(), StartError> {
        self.qmp.cont().await.map_err(|e| StartError::Qmp {
            message: format!("cont: {e}"),
            stderr: self.stderr(),
        })
    }

    /// The next event, or `None` once every source has closed.
    pub async fn next_event(&mut self) -> Option<MachineEvent> {
        self.events.recv().await
    }

    /// An event already queued, without waiting.
    pub fn queued_event(&mut self) -> Option<MachineEvent> {
        self.events.try_recv().ok()
    }

    /// Whether the QEMU process still runs.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// QEMU's standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The argument vector QEMU was started with.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The raw serial log file.
    pub fn serial_log(&self) -> &Path {
        &self.serial_log
    }

    /// The host port forwarded to the guest's SSH port.
    pub fn ssh_port(&self) -> u16 {
        self.ssh_port
    }

    /// QEMU's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Shuts down in order: QMP `quit`, wait up to `grace`, then kill.
    pub async fn shutdown(mut self, grace: Duration) {
        if self.is_alive() {
            let _ = tokio::time::timeout(grace, self.qmp.quit()).await;
            let deadline = tokio::time::Instant::now() + grace;
            while self.is_alive() {
                match tokio::time::timeout_at(deadline, self.events.recv()).await {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }
        self.kill();
        // The serial log is complete once the reader has drained QEMU's pipe.
        if let Some(reader) = self.console_done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
    }

    fn kill(&self) {
        if self.is_alive() {
            kill_group(self.pid);
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}

fn kill_group(pid: i32) {
    if pid > 0 {
        // SAFETY: signalling the process group QEMU leads; it is ours.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

fn spawn(binary: &Path, argv: &[String]) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(binary);
    command
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; QEMU dies with vmgate, however vmgate dies.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command.spawn()
}

async fn attach_qmp(
    config: &QemuConfig,
    alive: &Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<MachineEvent>,
) -> Result<Qmp, StartError> {
    let (qmp_tx, mut qmp_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = qmp_rx.recv().await {
            if tx.send(MachineEvent::Qmp(event)).is_err() {
                break;
            }
        }
    });
    let alive_now = {
        let alive = alive.clone();
        move || alive.load(Ordering::SeqCst)
    };
    let deadline = Duration::from_secs(10);
    let connect = Qmp::connect(&config.qmp_socket, alive_now, deadline, qmp_tx);
    let answered = tokio::time::timeout(deadline, connect)
        .await
        .unwrap_or_else(|_| {
            let message = format!("no QMP greeting within {}s", deadline.as_secs());
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, message))
        });
    match answered {
        Ok(qmp) => Ok(qmp),
        Err(e) => Err(StartError::Qmp {
            message: e.to_string(),
            stderr: String::new(),
        }),
    }
}

fn read_console(
    stdout: Option<tokio::process::ChildStdout>,
    serial_log: &Path,
    tx: mpsc::UnboundedSender<MachineEvent>,
) -> tokio::task::JoinHandle<()> {
    let mut log = std::fs::File::create(serial_log).ok();
    tokio::spawn(async move {
        let Some(mut stdout) = stdout else { return };
        let mut lines = LineAssembler::new();
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(n) = stdout.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            if let Some(file) = log.as_mut() {
                let _ = file.write_all(&buffer[..n]);
            }
            for line in lines.push(&buffer[..n]) {
                let _ = tx.send(MachineEvent::Line(line));
            }
        }
        if let Some(line) = lines.finish() {
            let _ = tx.send(MachineEvent::Line(line));
        }
    })
}

fn read_stderr(
    stderr: Option<tokio::process::ChildStderr>,
    into: Arc<Mutex<String>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(mut stderr) = stderr else { return };
        let mut buffer = vec![0u8; 4096];
        while let Ok(n) = stderr.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            if let Ok(mut text) = into.lock() {
                if text.len() < STDERR_LIMIT {
                    text.push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            }
        }
    })
}

fn watch_exit(
    mut child: tokio::process::Child,
    (alive, exited): (Arc<AtomicBool>, Arc<tokio::sync::Notify>),
    tx: mpsc::UnboundedSender<MachineEvent>,
) {
    tokio::spawn(async move {
        let status = child.wait().await.ok().and_then(|s| s.code());
        alive.store(false, Ordering::SeqCst);
        exited.notify_one();
        debug!(?status, "QEMU exited");
        let _ = tx.send(MachineEvent::Exited(status));
    });
}

/// Whether QEMU has exited or does within a second.
async fn exits_soon(alive: &AtomicBool, exited: &tokio::sync::Notify) -> bool {
    if !alive.load(Ordering::SeqCst) {
        return true;
    }
    let waited = tokio::time::timeout(Duration::from_secs(1), exited.notified()).await;
    waited.is_ok() || !alive.load(Ordering::SeqCst)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
