//! `vmgate repro`: boot exactly the VM a run boots for one case, stream its
//! console, and open an interactive SSH shell in it; or print the commands.

use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::machine::qemu::shell_line;
use crate::machine::{free_port, Machine, MachineEvent};
use crate::run::{self, RunOptions};
use crate::runner::{qemu_config, RunContext};
use crate::scenario::Case;
use std::path::Path;
use std::time::Duration;

/// What `repro` does once it has the case's VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReproMode {
    /// Print the QEMU and SSH commands and keep their files; boot nothing.
    Print,
    /// Boot, open a shell, stop the VM when the shell ends.
    Shell,
    /// Boot, open a shell, keep the VM until Ctrl-C.
    Keep,
}

/// Reproduces `name` (an exact case name); returns the shell's exit code.
pub async fn repro(options: &RunOptions, name: &str, mode: ReproMode) -> Result<i32> {
    let cases = run::load_cases(&options.scenarios, None, None)?;
    let case = cases
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::HostTool {
            program: "vmgate repro".into(),
            message: format!("no case named {name}; `vmgate list` prints them"),
        })?;
    let kernel = match &options.kernel {
        Some(path) => Kernel::from_path(path, options.modules.clone())?,
        None => Kernel::default_kernel(&crate::cache::Cache::from_env()?)?,
    };
    let (dir, context) = run::prepare(options, kernel).await?;
    let port = free_port().map_err(|e| Error::io("127.0.0.1", e))?;
    if mode == ReproMode::Print {
        let kept = dir.keep();
        print_commands(&context, &case, &kept, port);
        return Ok(0);
    }
    let config = qemu_config(&context, &case, dir.path(), port);
    let mut machine = Machine::start(&config, &dir.path().join("serial.log"))
        .await
        .map_err(|e| Error::HostTool {
            program: "qemu".into(),
            message: e.to_string(),
        })?;
    let host_key = stream_until_ready(&mut machine).await?;
    let known_hosts = dir.path().join("known_hosts");
    let entry = format!("[127.0.0.1]:{port} {host_key}\n");
    std::fs::write(&known_hosts, entry).map_err(|e| Error::io(&known_hosts, e))?;
    let status = shell(&context, port, &known_hosts).await?;
    if mode == ReproMode::Keep {
        println!("vmgate: the VM keeps running (ssh port {port}); Ctrl-C stops it");
        let _ = tokio::signal::ctrl_c().await;
    }
    machine.shutdown(Duration::from_secs(5)).await;
    Ok(status)
}

fn ssh_args(context: &RunContext, port: u16, known_hosts: &Path) -> Vec<String> {
    vec![
        "ssh".into(),
        "-t".into(),
        "-i".into(),
        context.key.private_path.display().to_string(),
        "-p".into(),
        port.to_string(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "root@127.0.0.1".into(),
    ]
}

fn print_commands(context: &RunContext, case: &Case, dir: &Path, port: u16) {
    let config = qemu_config(context, case, dir, port);
    println!("# boot (the console is this terminal; Ctrl-A X quits QEMU):");
    println!("{}", shell_line(&config.binary, &by_hand(config.args())));
    println!("# then, once the console prints `vmgate: ready`, in another terminal:");
    let mut ssh = ssh_args(context, port, &dir.join("known_hosts"));
    let strict = ssh.iter().position(|a| a == "StrictHostKeyChecking=yes");
    if let Some(at) = strict {
        ssh[at] = "StrictHostKeyChecking=accept-new".into();
    }
    println!("{}", shell_words::join(ssh));
    println!(
        "# the key and initramfs stay in {} until you remove it",
        dir.display()
    );
}

/// The argv for a person at a terminal: running at once, console multiplexed
/// with QEMU's monitor so Ctrl-A X quits.
fn by_hand(args: Vec<String>) -> Vec<String> {
    let console = crate::machine::qemu::console_args();
    let mut out = Vec::new();
    let mut rest = args.into_iter().filter(|a| a != "-S").peekable();
    while let Some(arg) = rest.next() {
        let pair = rest.peek().map(|next| [arg.clone(), next.clone()]);
        if pair.is_some_and(|p| console.windows(2).any(|w| w == p)) {
            rest.next();
            continue;
        }
        out.push(arg);
    }
    out.extend(["-serial".to_string(), "mon:stdio".to_string()]);
    out
}

/// Prints console lines until the readiness marker; returns the host key.
async fn stream_until_ready(machine: &mut Machine) -> Result<String> {
    let mut console = crate::console::ConsoleSummary::default();
    while let Some(event) = machine.next_event().await {
        match event {
            MachineEvent::Line(line) => {
                println!("{line}");
                console.observe(&line);
                if console.ready {
                    return console.host_key.ok_or_else(|| Error::HostTool {
                        program: "guest".into(),
                        message: "printed no host key before its readiness marker".into(),
                    });
                }
                if let Some(panic) = &console.panic {
                    return Err(Error::HostTool {
                        program: "guest".into(),
                        message: panic.clone(),
                    });
                }
            }
            MachineEvent::Exited(code) => {
                let message = format!("QEMU exited ({code:?}): {}", machine.stderr().trim());
                return Err(Error::HostTool {
                    program: "qemu".into(),
                    message,
                });
            }
            MachineEvent::Qmp(_) => {}
        }
    }
    Err(Error::HostTool {
        program: "qemu".into(),
        message: "the console closed".into(),
    })
}

async fn shell(context: &RunContext, port: u16, known_hosts: &Path) -> Result<i32> {
    let args = ssh_args(context, port, known_hosts);
    let status = tokio::process::Command::new(&args[0])
        .args(&args[1..])
        .status()
        .await
        .map_err(|e| Error::HostTool {
            program: "ssh".into(),
            message: format!("cannot run it ({e}); apt-get install openssh-client"),
        })?;
    Ok(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_by_hand_run_at_once_on_this_terminal() {
        let mut args = vec!["-S".to_string(), "-m".into(), "512M".into()];
        args.extend(crate::machine::qemu::console_args());
        let out = by_hand(args);
        assert_eq!(out, ["-m", "512M", "-serial", "mon:stdio"]);
    }
}
