//! Background minting: a few OS threads mint tokens in batches into a bounded queue, so the load
//! loops only pop ready tokens and minting never paces the measured traffic.
//!
//! Consumers keep a local batch and take a new one from the queue when it runs dry; if the queue is
//! empty too (the mint threads fell behind) they mint inline and that is counted, so a report
//! shows whether minting kept up. Items older than [`MAX_AGE`] are dropped (and counted) rather
//! than sent, so a slow run never sends an authenticator near the edge of the clock skew.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Oldest a queued token may be when sent (well inside the 5-minute skew of acceptors).
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Counters of a feed, for the report.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct FeedStats {
    /// Mint threads.
    pub threads: usize,
    /// Items minted by the threads.
    pub minted_background: u64,
    /// Items minted inline because the queue was empty.
    pub minted_inline: u64,
    /// Items dropped for age.
    pub dropped_stale: u64,
}

struct Shared {
    stop: AtomicBool,
    /// Batches queued (signed: a consumer may take a batch before its sender counts it).
    queued_batches: AtomicI64,
    minted: AtomicU64,
    inline: AtomicU64,
    stale: AtomicU64,
}

type Batch<T> = Vec<(Instant, T)>;

/// A bounded queue of ready items fed by mint threads.
pub struct Feed<T: Send + 'static> {
    make: Arc<dyn Fn() -> T + Send + Sync>,
    rx: Mutex<Option<Receiver<Batch<T>>>>,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    thread_count: usize,
    depth: usize,
}

/// A consumer's local batch.
pub struct Local<T> {
    items: Batch<T>,
}

impl<T> Default for Local<T> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

impl<T: Send + 'static> Feed<T> {
    /// Starts `threads` mint threads (0: every item is minted inline) producing batches of
    /// `batch` items, at most `depth` batches queued.
    pub fn start(threads: usize, batch: usize, depth: usize, make: Arc<dyn Fn() -> T + Send + Sync>) -> Self {
        let batch = batch.max(1);
        let depth = depth.max(1);
        let (tx, rx) = sync_channel::<Batch<T>>(depth);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            queued_batches: AtomicI64::new(0),
            minted: AtomicU64::new(0),
            inline: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        });
        let mut handles = Vec::new();
        for i in 0..threads {
            let tx = tx.clone();
            let make = make.clone();
            let shared = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("kedge-bench-mint-{i}"))
                .spawn(move || {
                    while !shared.stop.load(Ordering::Relaxed) {
                        let items: Batch<T> = (0..batch).map(|_| (Instant::now(), make())).collect();
                        shared.minted.fetch_add(items.len() as u64, Ordering::Relaxed);
                        // Blocks while the queue is full; fails once `stop` drops the receiver.
                        if tx.send(items).is_err() {
                            return;
                        }
                        shared.queued_batches.fetch_add(1, Ordering::Relaxed);
                    }
                });
            if let Ok(h) = h {
                handles.push(h);
            }
        }
        let thread_count = handles.len();
        Self {
            make,
            rx: Mutex::new(Some(rx)),
            shared,
            threads: Mutex::new(handles),
            thread_count,
            depth,
        }
    }

    /// Waits (at most `limit`) until the queue is full, so a run starts with tokens ready.
    pub fn wait_full(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.thread_count > 0
            && self.shared.queued_batches.load(Ordering::Relaxed) < self.depth as i64
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The next item: from the local batch, else a queued batch, else minted inline.
    pub fn next(&self, local: &mut Local<T>) -> T {
        loop {
            while let Some((made, item)) = local.items.pop() {
                if made.elapsed() <= MAX_AGE {
                    return item;
                }
                self.shared.stale.fetch_add(1, Ordering::Relaxed);
            }
            let batch = match self.rx.lock() {
                Ok(rx) => rx.as_ref().and_then(|r| r.try_recv().ok()),
                Err(_) => None,
            };
            match batch {
                Some(b) => {
                    self.shared.queued_batches.fetch_sub(1, Ordering::Relaxed);
                    local.items = b;
                }
                None => {
                    self.shared.inline.fetch_add(1, Ordering::Relaxed);
                    return (self.make)();
                }
            }
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> FeedStats {
        FeedStats {
            threads: self.thread_count,
            minted_background: self.shared.minted.load(Ordering::Relaxed),
            minted_inline: self.shared.inline.load(Ordering::Relaxed),
            dropped_stale: self.shared.stale.load(Ordering::Relaxed),
        }
    }

    /// Stops and joins the mint threads; later `next` calls mint inline.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Ok(mut rx) = self.rx.lock() {
            rx.take();
        }
        if let Ok(mut threads) = self.threads.lock() {
            for h in threads.drain(..) {
                let _ = h.join();
            }
        }
    }
}

impl<T: Send + 'static> Drop for Feed<T> {
    fn drop(&mut self) {
        self.stop();
    }
}
