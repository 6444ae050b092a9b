//! SSH into the guest with ssh2: a per-run ed25519 key, the guest's host key
//! checked against the one its console printed, one session reused for every
//! command, each command under a timeout.

use serde::Serialize;
use ssh_key::{rand_core::OsRng, Algorithm, LineEnding, PrivateKey, PublicKey};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::debug;

/// Why an SSH step failed.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The TCP connection or the SSH handshake failed.
    #[error("connect to 127.0.0.1:{port}: {message}")]
    Connect {
        /// The forwarded host port.
        port: u16,
        /// What failed.
        message: String,
    },
    /// The guest presented a host key other than the one its console printed.
    #[error("the guest's host key does not match the one its console printed")]
    HostKeyMismatch,
    /// The guest refused the run's key.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A command could not be run or its output read.
    #[error("command failed to run: {0}")]
    Exec(String),
    /// A step took longer than its deadline.
    #[error("timed out after {}s", .0.as_secs_f64().round())]
    Timeout(Duration),
    /// The key could not be made or written.
    #[error("client key: {0}")]
    Key(String),
}

/// A fresh ed25519 key pair for one run, its private half in a 0700 directory.
#[derive(Debug, Clone)]
pub struct ClientKey {
    /// The private key file (OpenSSH format, mode 0600).
    pub private_path: PathBuf,
    /// The public key line for `authorized_keys`.
    pub public_line: String,
}

impl ClientKey {
    /// Generates a key and writes its private half to `dir/id_ed25519`.
    pub fn generate(dir: &Path) -> Result<ClientKey, SshError> {
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
            .map_err(|e| SshError::Key(e.to_string()))?;
        let pem = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| SshError::Key(e.to_string()))?;
        let private_path = dir.join("id_ed25519");
        write_private(&private_path, pem.as_bytes()).map_err(|e| SshError::Key(e.to_string()))?;
        let public_line = key
            .public_key()
            .to_openssh()
            .map_err(|e| SshError::Key(e.to_string()))?;
        Ok(ClientKey {
            private_path,
            public_line,
        })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// What a guest command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandOutput {
    /// The exit status; -1 when the guest reported none.
    pub status: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// One authenticated SSH session with the guest.
#[derive(Clone)]
pub struct Ssh {
    session: Arc<Mutex<ssh2::Session>>,
}

impl Ssh {
    /// Connects once: TCP, handshake, host key check, public key login as root.
    pub async fn connect(
        port: u16,
        key: &ClientKey,
        host_key: &str,
        timeout: Duration,
    ) -> Result<Ssh, SshError> {
        let key = key.clone();
        let host_key = host_key.to_string();
        let work = move || connect_blocking(port, &key, &host_key, timeout);
        let session = blocking(work, timeout).await?;
        Ok(Ssh {
            session: Arc::new(Mutex::new(session)),
        })
    }

    /// Runs `command` through the guest's shell and returns its status and output.
    pub async fn exec(&self, command: &str, timeout: Duration) -> Result<CommandOutput, SshError> {
        debug!(command, "ssh exec");
        let session = self.session.clone();
        let command = command.to_string();
        let work = move || {
            let session = session
                .lock()
                .map_err(|_| SshError::Exec("session poisoned".into()))?;
            session.set_timeout(timeout.as_millis().min(u32::MAX as u128) as u32);
            exec_blocking(&session, &command)
        };
        let output = blocking(work, timeout + Duration::from_secs(1)).await?;
        debug!(
            status = output.status,
            stdout_bytes = output.stdout.len(),
            "ssh exec done"
        );
        Ok(output)
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SshError> + Send + 'static,
    timeout: Duration,
) -> Result<T, SshError> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(SshError::Exec(join.to_string())),
        Err(_) => Err(SshError::Timeout(timeout)),
    }
}

fn connect_blocking(
    port: u16,
    key: &ClientKey,
    host_key: &str,
    timeout: Duration,
) -> Result<ssh2::Session, SshError> {
    let connect = |message: String| SshError::Connect { port, message };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| connect(e.to_string()))?;
    let mut session = ssh2::Session::new().map_err(|e| connect(e.to_string()))?;
    session.set_timeout(timeout.as_millis().min(u32::MAX as u128) as u32);
    session.set_tcp_stream(tcp);
    session.handshake().map_err(|e| connect(e.to_string()))?;
    check_host_key(&session, host_key)?;
    session
        .userauth_pubkey_file("root", None, &key.private_path, None)
        .map_err(|e| SshError::Auth(e.to_string()))?;
    Ok(session)
}

fn check_host_key(session: &ssh2::Session, expected: &str) -> Result<(), SshError> {
    let expected = PublicKey::from_openssh(expected)
        .and_then(|key| key.to_bytes())
        .map_err(|_| SshError::HostKeyMismatch)?;
    match session.host_key() {
        Some((presented, _)) if presented == expected.as_slice() => Ok(()),
        _ => Err(SshError::HostKeyMismatch),
    }
}

fn exec_blocking(session: &ssh2::Session, command: &str) -> Result<CommandOutput, SshError> {
    let exec = |e: ssh2::Error| match e.code() {
        ssh2::ErrorCode::Session(-9) => {
            SshError::Timeout(Duration::from_millis(session.timeout() as u64))
        }
        _ => SshError::Exec(e.to_string()),
    };
    let mut channel = session.channel_session().map_err(exec)?;
    channel.exec(command).map_err(exec)?;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let io = |e: std::io::Error| SshError::Exec(e.to_string());
    channel.read_to_end(&mut stdout).map_err(io)?;
    channel.stderr().read_to_end(&mut stderr).map_err(io)?;
    channel.wait_close().map_err(exec)?;
    Ok(CommandOutput {
        status: channel.exit_status().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}
