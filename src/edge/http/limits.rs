//! Per-connection clocks: the request-head timeout (slowloris), the idle timeout, and the time
//! an unauthenticated connection has left once kedge refused one of its requests.
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive connection waits for its next
//! request, which would cut Outlook's idle connections after seconds. kedge keeps its own clock
//! instead: the head timer starts with the first byte of a request head (or when the connection
//! opens) and stops when the head is parsed; the idle timer measures time without a byte in either
//! direction, so long-lived RPC channels with keep-alives stay up.
//!
//! The watchdog is woken only when it must be: a head that begins wakes it only if its wake-up is
//! armed later than that head's deadline (`armed_ms`), so a busy keep-alive connection costs it
//! one wake-up per head timeout, not one per request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::watched_io::{Watched, Watcher};
use crate::edge::metrics::ByteMeter;
use tokio::sync::Notify;
use tokio::time::Instant;

const NONE: u64 = u64::MAX;

/// Activity of one client connection, shared by its I/O wrapper, its handler and its watchdog.
#[derive(Debug)]
pub struct ConnClock {
    start: Instant,
    last_activity_ms: AtomicU64,
    head_started_ms: AtomicU64,
    unauth_deadline_ms: AtomicU64,
    in_request: AtomicBool,
    /// When the watchdog will look next (ms since `start`); `NONE` until it has armed.
    armed_ms: AtomicU64,
    /// The head timeout (ms): how long a head may take, and whether a new head's deadline comes
    /// before `armed_ms`.
    head_ms: u64,
    head_started: Notify,
    bytes_in: ByteMeter,
    bytes_out: ByteMeter,
    /// Bytes read on this connection (for its access-log lines).
    total_in: AtomicU64,
    /// `total_in` when the last exchange ended: the next request's bytes start here.
    mark_in: AtomicU64,
}

/// Why the watchdog closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// A request head took longer than `header_timeout_ms`.
    HeaderTimeout,
    /// No byte either way for `idle_timeout_secs`.
    Idle,
    /// A refused connection did not authenticate within `unauthenticated_timeout_ms`.
    Unauthenticated,
}

/// While a request is in flight past the unauthenticated deadline, the watchdog looks again
/// this often (the connection closes between requests, never under one).
const UNAUTH_RECHECK: Duration = Duration::from_millis(100);

impl ConnClock {
    /// A clock for a connection that opens now; every head (the first from now) is due within
    /// `head`, the listener's head timeout.
    pub fn new(head: Duration, bytes_in: ByteMeter, bytes_out: ByteMeter) -> Self {
        Self {
            start: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            unauth_deadline_ms: AtomicU64::new(NONE),
            in_request: AtomicBool::new(false),
            armed_ms: AtomicU64::new(NONE),
            head_ms: u64::try_from(head.as_millis()).unwrap_or(u64::MAX),
            head_started: Notify::new(),
            bytes_in,
            bytes_out,
            total_in: AtomicU64::new(0),
            mark_in: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn on_read(&self, n: usize) {
        self.on_read_at(n, self.now_ms())
    }

    fn on_read_at(&self, n: usize, now: u64) {
        self.last_activity_ms.store(now, Ordering::Relaxed);
        self.bytes_in.add(n as u64);
        self.total_in.fetch_add(n as u64, Ordering::Relaxed);
        if !self.in_request.load(Ordering::Acquire)
            && self
                .head_started_ms
                .compare_exchange(NONE, now, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            && self.armed_ms.load(Ordering::SeqCst) > now.saturating_add(self.head_ms)
        {
            // The watchdog would look after this head is due: wake it to arm earlier. (It
            // re-reads the clock after arming, so a head that begins meanwhile is never missed.)
            self.head_started.notify_one();
        }
    }

    /// The watchdog will look next at `at` (after [`check`](Self::check) gave it).
    pub fn arm(&self, at: Instant) {
        let ms = at.saturating_duration_since(self.start).as_millis();
        // Rounded up: a head due before the armed instant always wakes the watchdog.
        let ms = u64::try_from(ms)
            .unwrap_or(NONE - 1)
            .saturating_add(1)
            .min(NONE - 1);
        self.armed_ms.store(ms, Ordering::SeqCst);
    }

    fn on_write(&self, n: usize) {
        self.last_activity_ms.store(self.now_ms(), Ordering::Relaxed);
        self.bytes_out.add(n as u64);
    }

    /// A request head was parsed: the head timer stops until this exchange is over.
    pub fn request_started(&self) {
        self.in_request.store(true, Ordering::Release);
        self.head_started_ms.store(NONE, Ordering::Release);
    }

    /// The response has been written: the connection waits for the next head.
    pub fn request_finished(&self) {
        self.request_finished_at(self.now_ms())
    }

    fn request_finished_at(&self, now: u64) {
        self.last_activity_ms.store(now, Ordering::Relaxed);
        self.mark_in
            .store(self.total_in.load(Ordering::Relaxed), Ordering::Relaxed);
        self.in_request.store(false, Ordering::Release);
    }

    /// A request of this unauthenticated connection was refused: unless the deadline is
    /// already running, the connection must authenticate within `budget`.
    pub fn start_unauthenticated_deadline(&self, budget: Duration) {
        self.start_unauthenticated_deadline_at(budget, self.now_ms())
    }

    fn start_unauthenticated_deadline_at(&self, budget: Duration, now: u64) {
        let at = now.saturating_add(budget.as_millis() as u64);
        if self
            .unauth_deadline_ms
            .compare_exchange(NONE, at, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // Wake the watchdog to arm the new deadline.
            self.head_started.notify_one();
        }
    }

    /// The connection authenticated: no deadline.
    pub fn clear_unauthenticated_deadline(&self) {
        self.unauth_deadline_ms.store(NONE, Ordering::Release);
    }

    /// Expired now, or the instant of the next check.
    pub fn check(&self, now: Instant, idle: Duration) -> Result<Instant, Expiry> {
        let idle_at = self.at(self.last_activity_ms.load(Ordering::Relaxed)) + idle;
        if now >= idle_at {
            return Err(Expiry::Idle);
        }
        let mut next = idle_at;
        match self.unauth_deadline_ms.load(Ordering::Acquire) {
            NONE => {}
            ms => {
                let at = self.at(ms);
                if now < at {
                    next = next.min(at);
                } else if self.in_request.load(Ordering::Acquire) {
                    next = next.min(now + UNAUTH_RECHECK);
                } else {
                    return Err(Expiry::Unauthenticated);
                }
            }
        }
        match self.head_started_ms.load(Ordering::SeqCst) {
            NONE => Ok(next),
            started => {
                let head_at = self.at(started) + Duration::from_millis(self.head_ms);
                if now >= head_at {
                    Err(Expiry::HeaderTimeout)
                } else {
                    Ok(head_at.min(next))
                }
            }
        }
    }

    /// The watchdog's next look: [`check`](Self::check), [`arm`](Self::arm), then check again,
    /// so a head that began while it armed (without waking it) is seen now.
    pub fn look(&self, now: Instant, idle: Duration) -> Result<Instant, Expiry> {
        let first = self.check(now, idle)?;
        self.arm(first);
        let second = self.check(now, idle)?;
        if second < first {
            self.arm(second);
        }
        Ok(first.min(second))
    }

    /// Bytes the connection had read when its last exchange ended: the current request's
    /// bytes (head included) are counted from here.
    pub fn request_mark(&self) -> u64 {
        self.mark_in.load(Ordering::Relaxed)
    }

    /// Bytes read on the connection so far.
    pub fn total_in(&self) -> u64 {
        self.total_in.load(Ordering::Relaxed)
    }

    /// Resolves when a new request head begins before the armed wake-up could see it in time,
    /// or the unauthenticated deadline starts (so the watchdog re-arms its deadline).
    pub async fn head_began(&self) {
        self.head_started.notified().await
    }
}

/// Marks the end of an exchange when dropped (held by the response body).
#[derive(Debug)]
pub struct ExchangeGuard {
    clock: std::sync::Arc<ConnClock>,
}

impl ExchangeGuard {
    /// Starts an exchange on `clock`.
    pub fn start(clock: std::sync::Arc<ConnClock>) -> Self {
        clock.request_started();
        Self { clock }
    }
}

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        self.clock.request_finished();
    }
}

/// A client stream that reports its reads and writes to its [`ConnClock`].
pub type WatchedIo<T> = Watched<T, Arc<ConnClock>>;

impl Watcher for Arc<ConnClock> {
    fn read(&mut self, n: usize) {
        self.on_read(n);
    }

    fn wrote(&mut self, n: usize) {
        self.on_write(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> ConnClock {
        let (i, o) = crate::edge::metrics::bytes_counters("test");
        ConnClock::new(HEAD, i, o)
    }

    fn woken(c: &ConnClock) -> bool {
        use futures_util::FutureExt as _;
        c.head_began().now_or_never().is_some()
    }

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(1200);

    fn ms(c: &ConnClock, at: u64) -> Instant {
        c.at(at)
    }

    #[test]
    fn a_silent_new_connection_hits_the_head_timeout() {
        let c = clock();
        assert!(c.check(ms(&c, 0), IDLE).is_ok());
        assert_eq!(c.check(ms(&c, 10_001), IDLE), Err(Expiry::HeaderTimeout));
    }

    #[test]
    fn a_keep_alive_connection_between_requests_only_idles() {
        let c = clock();
        c.request_started();
        c.request_finished_at(1_000);
        assert!(c.check(ms(&c, 100_000), IDLE).is_ok());
        assert_eq!(c.check(ms(&c, 1_201_000), IDLE), Err(Expiry::Idle));
    }

    #[test]
    fn the_first_byte_of_a_new_head_starts_the_head_timer() {
        let c = clock();
        c.request_started();
        c.request_finished_at(1_000);
        c.on_read_at(3, 60_000);
        c.on_read_at(3, 65_000);
        assert!(c.check(ms(&c, 69_000), IDLE).is_ok());
        assert_eq!(c.check(ms(&c, 70_001), IDLE), Err(Expiry::HeaderTimeout));
    }

    #[test]
    fn body_bytes_during_an_exchange_do_not_start_the_head_timer() {
        let c = clock();
        c.request_started();
        c.on_read_at(100, 1_000);
        c.on_read_at(100, 40_000);
        assert!(c.check(ms(&c, 45_000), IDLE).is_ok());
    }

    #[test]
    fn a_refused_connection_closes_between_requests_once_its_budget_is_spent() {
        let c = clock();
        c.request_started();
        c.start_unauthenticated_deadline_at(Duration::from_secs(5), 1_000);
        c.start_unauthenticated_deadline_at(Duration::from_secs(5), 3_000);
        assert_eq!(
            c.check(ms(&c, 2_000), IDLE),
            Ok(ms(&c, 6_000)),
            "the first refusal starts it"
        );
        assert_eq!(
            c.check(ms(&c, 6_000), IDLE),
            Ok(ms(&c, 6_000) + UNAUTH_RECHECK),
            "never under a request"
        );
        c.request_finished_at(6_050);
        assert_eq!(c.check(ms(&c, 6_100), IDLE), Err(Expiry::Unauthenticated));
    }

    #[test]
    fn authenticating_ends_the_unauthenticated_deadline() {
        let c = clock();
        c.start_unauthenticated_deadline_at(Duration::from_secs(5), 0);
        c.request_started();
        c.clear_unauthenticated_deadline();
        c.request_finished_at(100);
        assert!(c.check(ms(&c, 60_000), IDLE).is_ok());
    }

    #[test]
    fn the_next_deadline_is_the_nearer_one() {
        let c = clock();
        assert_eq!(c.check(ms(&c, 0), IDLE), Ok(ms(&c, 10_000)));
        c.request_started();
        assert_eq!(c.check(ms(&c, 0), IDLE), Ok(ms(&c, 1_200_000)));
    }

    #[test]
    fn a_head_wakes_the_watchdog_only_when_its_deadline_comes_before_the_armed_look() {
        let c = clock();
        c.request_started();
        c.request_finished_at(1_000);
        // Between requests the watchdog sleeps until the idle timeout: a new head must wake it.
        let next = c.check(ms(&c, 1_000), IDLE).unwrap();
        assert_eq!(next, ms(&c, 1_201_000));
        c.arm(next);
        c.on_read_at(40, 2_000);
        assert!(
            woken(&c),
            "the head is due at 12 s, the watchdog would look at 1201 s"
        );
        let next = c.check(ms(&c, 2_000), IDLE).unwrap();
        assert_eq!(next, ms(&c, 12_000));
        c.arm(next);
        // The next requests of a busy connection begin before that look: no wake-up each.
        c.request_started();
        c.request_finished_at(2_100);
        c.on_read_at(40, 2_200);
        assert!(
            !woken(&c),
            "the armed look at 12 s comes before this head's deadline"
        );
        c.request_started();
        c.request_finished_at(2_300);
        assert_eq!(
            c.check(ms(&c, 12_000), IDLE),
            Ok(ms(&c, 1_202_300)),
            "at the armed look, nothing is due: it re-arms for idleness"
        );
    }

    #[test]
    fn a_watchdog_that_never_armed_is_always_woken() {
        let c = clock();
        c.request_started();
        c.request_finished_at(0);
        c.on_read_at(10, 5);
        assert!(woken(&c));
    }

    #[test]
    fn a_head_that_begins_while_the_watchdog_arms_is_seen_on_its_second_look() {
        // The watchdog checked (no head), a head began without waking it (the old armed look
        // came first), then the watchdog armed for idleness: its look after arming sees the head.
        let c = clock();
        c.request_started();
        c.request_finished_at(0);
        c.arm(ms(&c, 5_000));
        let first = c.check(ms(&c, 100), IDLE).unwrap();
        c.on_read_at(10, 100);
        assert!(!woken(&c));
        c.arm(first);
        let second = c.check(ms(&c, 100), IDLE).unwrap();
        assert_eq!(second, ms(&c, 10_100), "the head's deadline");
    }
}
