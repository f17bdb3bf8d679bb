//! A backend stream that fails with `TimedOut` once no byte has moved either way for the pool's
//! `idle_timeout_secs`, so a member that stalls mid-response (or an idle pooled connection
//! nobody uses) does not hold a connection and a client for ever.
//!
//! The timer is reset lazily: reads and writes only note the time; when the timer fires it is
//! moved to the last activity plus the timeout unless that has passed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::watched_io::{Watched, Watcher};

/// A backend stream with an idle timeout.
pub type IdleTimeoutIo<T> = Watched<T, IdleTimer>;

/// `inner` with an idle timeout of `timeout`; the clock starts now.
pub fn idle_timeout<T>(inner: T, timeout: Duration) -> IdleTimeoutIo<T> {
    Watched::new(inner, IdleTimer::new(timeout))
}

/// The idle timer of one backend stream: when bytes last moved, and the wake-up.
pub struct IdleTimer {
    timer: Pin<Box<Sleep>>,
    timeout: Duration,
    last: Instant,
}

impl IdleTimer {
    fn new(timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
            timeout,
            last: now,
        }
    }

    /// Whether the idle time is over; re-arms the timer when activity moved the deadline.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self.last + self.timeout;
            if Instant::now() >= due {
                return true;
            }
            self.timer.as_mut().reset(due);
        }
    }
}

impl Watcher for IdleTimer {
    fn read(&mut self, _: usize) {
        self.last = Instant::now();
    }

    fn wrote(&mut self, _: usize) {
        self.last = Instant::now();
    }

    fn pending(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.expired(cx)
            .then(|| io::Error::new(io::ErrorKind::TimedOut, "backend connection idle timeout"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const IDLE: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (a, _b) = tokio::io::duplex(64);
        let mut io = idle_timeout(a, IDLE);
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= IDLE);
    }

    #[tokio::test]
    async fn a_write_keeps_the_read_side_open() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = idle_timeout(a, IDLE);
        let mut buf = [0u8; 8];
        // Reads pending across several timeouts' worth of time, kept alive by writes.
        let mut last_write = Instant::now();
        for _ in 0..4 {
            let read = tokio::time::timeout(Duration::from_millis(120), io.read(&mut buf)).await;
            assert!(read.is_err(), "no timeout while bytes move: {read:?}");
            io.write_all(b"x").await.unwrap();
            last_write = Instant::now();
            let mut one = [0u8; 1];
            b.read_exact(&mut one).await.unwrap();
        }
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(last_write.elapsed() >= IDLE, "measured from the last byte");
    }
}
