//! Graceful shutdown of a listener: stop accepting, tell every connection to finish what it
//! is doing, wait up to a grace period, then cut what is left.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};

/// The listener's side: tells connections to drain.
#[derive(Debug)]
pub struct Drain {
    tx: watch::Sender<bool>,
}

/// A connection's side: resolves once draining has begun.
#[derive(Clone, Debug)]
pub struct DrainSignal {
    rx: watch::Receiver<bool>,
}

impl Drain {
    /// A new drain switch, off.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(false);
        Self { tx }
    }

    /// A signal for one connection.
    pub fn signal(&self) -> DrainSignal {
        DrainSignal {
            rx: self.tx.subscribe(),
        }
    }

    /// Asks every connection to finish its current exchange and close.
    pub fn start(&self) {
        self.tx.send_replace(true);
    }
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl DrainSignal {
    /// Resolves when draining starts (at once if it already has).
    pub async fn draining(&mut self) {
        // An error means the listener is gone, which is a drain too.
        let _ = self.rx.wait_for(|d| *d).await;
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        *self.rx.borrow()
    }
}

/// Waits for every task up to `grace`, then aborts the rest; returns how many were cut.
/// `on_done` sees how each task ended (a panic, say), the cut ones included.
pub async fn finish(
    tasks: &mut JoinSet<()>,
    grace: Duration,
    mut on_done: impl FnMut(Result<(), JoinError>),
) -> usize {
    let waited = tokio::time::timeout(grace, async {
        while let Some(done) = tasks.join_next().await {
            on_done(done);
        }
    })
    .await;
    if waited.is_ok() {
        return 0;
    }
    let cut = tasks.len();
    tasks.abort_all();
    while let Some(done) = tasks.join_next().await {
        on_done(done);
    }
    cut
}
