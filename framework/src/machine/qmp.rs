//! Our one wrapper over the qapi crate: connect to QEMU's QMP socket while QEMU
//! lives, negotiate, send commands, and drain events without pause.

use futures::StreamExt;
use qapi::futures::{QapiService, QmpStreamTokio};
use qapi::qmp;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;
use tokio::io::WriteHalf;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tracing::debug;

type Writer = QmpStreamTokio<WriteHalf<UnixStream>>;

/// The QMP events vmgate acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum QmpEvent {
    /// The machine shut down; `reason` is QEMU's cause, e.g. `guest-reset`.
    Shutdown {
        /// Whether the guest asked for it.
        guest: bool,
        /// QEMU's shutdown cause.
        reason: String,
    },
    /// The machine reset.
    Reset {
        /// Whether the guest asked for it.
        guest: bool,
    },
    /// The guest reported a panic through pvpanic.
    GuestPanicked,
    /// The machine stopped running.
    Stop,
}

/// A negotiated QMP connection's command side.
pub struct Qmp {
    service: QapiService<Writer>,
}

impl Qmp {
    /// Connects to `socket`, retrying with backoff while `alive` says QEMU runs,
    /// and forwards every event to `events` from a task that never pauses.
    pub async fn connect(
        socket: &Path,
        alive: impl Fn() -> bool,
        deadline: Duration,
        events: mpsc::UnboundedSender<QmpEvent>,
    ) -> std::io::Result<Qmp> {
        let stream = wait_for_socket(socket, alive, deadline).await?;
        let negotiation = QmpStreamTokio::open(stream).await?;
        let (service, mut incoming) = negotiation.negotiate().await?.into_parts();
        tokio::spawn(async move {
            while let Some(Ok(event)) = incoming.next().await {
                debug!(?event, "qmp event");
                if let Some(event) = convert(event) {
                    if events.send(event).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Qmp { service })
    }

    /// Starts the paused guest's CPUs.
    pub async fn cont(&self) -> std::io::Result<()> {
        debug!("qmp cont");
        self.service
            .execute(qmp::cont {})
            .await
            .map(drop)
            .map_err(to_io)
    }

    /// Asks QEMU to exit.
    pub async fn quit(&self) -> std::io::Result<()> {
        debug!("qmp quit");
        self.service
            .execute(qmp::quit {})
            .await
            .map(drop)
            .map_err(to_io)
    }

    /// The raw service, for other commands.
    pub fn service(&self) -> &QapiService<Writer> {
        &self.service
    }
}

async fn wait_for_socket(
    socket: &Path,
    alive: impl Fn() -> bool,
    deadline: Duration,
) -> std::io::Result<UnixStream> {
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if !alive() {
            return Err(std::io::Error::other(
                "QEMU exited before its QMP socket answered",
            ));
        }
        match UnixStream::connect(socket).await {
            Ok(stream) => return Ok(stream),
            Err(e) if start.elapsed() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(pause).await,
        }
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn to_io(e: qapi::ExecuteError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn convert(event: qmp::Event) -> Option<QmpEvent> {
    Some(match event {
        qmp::Event::SHUTDOWN { data, .. } => QmpEvent::Shutdown {
            guest: data.guest,
            reason: serde_json::to_value(data.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        },
        qmp::Event::RESET { data, .. } => QmpEvent::Reset { guest: data.guest },
        qmp::Event::GUEST_PANICKED { .. } => QmpEvent::GuestPanicked,
        qmp::Event::STOP { .. } => QmpEvent::Stop,
        _ => return None,
    })
}
