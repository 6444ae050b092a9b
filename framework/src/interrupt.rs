//! A request to stop a run early (SIGINT or SIGTERM), seen by every part of
//! the run so that it can stop its VMs and still report what it finished.

use std::sync::Arc;
use tokio::sync::watch;

/// Whether, and by what, the run was asked to stop. Clones share the request.
#[derive(Debug, Clone)]
pub struct Interrupt {
    seen: watch::Receiver<Option<&'static str>>,
    // Kept so that `never` and hand-made interrupts stay open.
    _sender: Arc<watch::Sender<Option<&'static str>>>,
}

impl Interrupt {
    /// An interrupt that only [`Interrupt::request`] triggers.
    pub fn new() -> Interrupt {
        let (sender, seen) = watch::channel(None);
        Interrupt {
            seen,
            _sender: Arc::new(sender),
        }
    }

    /// An interrupt triggered by SIGINT or SIGTERM; the handlers are in place
    /// when this returns.
    pub fn on_signals() -> std::io::Result<Interrupt> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let interrupt = Interrupt::new();
        let sender = interrupt._sender.clone();
        tokio::spawn(async move {
            let by = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            sender.send_replace(Some(by));
        });
        Ok(interrupt)
    }

    /// Asks the run to stop, naming why.
    pub fn request(&self, by: &'static str) {
        self._sender.send_replace(Some(by));
    }

    /// What asked the run to stop, if anything has.
    pub fn requested(&self) -> Option<&'static str> {
        *self.seen.borrow()
    }

    /// Waits until the run is asked to stop; returns what asked.
    pub async fn wait(&self) -> &'static str {
        let mut seen = self.seen.clone();
        loop {
            if let Some(by) = *seen.borrow_and_update() {
                return by;
            }
            if seen.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_wakes_every_clone() {
        let interrupt = Interrupt::new();
        let waiter = interrupt.clone();
        let waiting = tokio::spawn(async move { waiter.wait().await });
        assert_eq!(interrupt.requested(), None);
        interrupt.request("SIGTERM");
        assert_eq!(waiting.await.unwrap(), "SIGTERM");
        assert_eq!(interrupt.clone().wait().await, "SIGTERM");
    }
}
