//! A member connection that kedge speaks HTTP/1.1 on itself (`wire_exchange.rs`): a
//! passthrough pin or an assert route's pooled connection. Between requests it waits parked,
//! watched; it is checked out for one exchange at a time and given back only when that exchange
//! left it clean.
//!
//! While parked, a watcher (on the client connection's task for a pin, on a task of its own for
//! a pooled connection) closes it as soon as the member closes it, sends bytes nobody asked for,
//! or it idles past the pool's `idle_timeout_secs` (the stream is an `IdleTimeoutIo`). A
//! connection that is not given back (an exchange dropped mid-way, an error, a response that
//! ends the connection) is closed, and the next request opens a new one.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::pool::{Member, MemberLease};

/// A member's stream: TCP or TLS over TCP, with the pool's idle timeout.
pub trait BackendIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> BackendIo for T {}

/// The stream and its buffers, kept from one exchange to the next.
pub struct WireConn {
    /// The stream.
    pub io: Box<dyn BackendIo>,
    /// Bytes read and not yet used.
    pub rbuf: BytesMut,
    /// Where request heads are written (its allocation is reused).
    pub wbuf: BytesMut,
    /// The response-head timer, kept from one exchange to the next: moving a registered timer
    /// later is an atomic store, where a new one per request is a timer-wheel insert and
    /// removal.
    head_timer: Option<Pin<Box<Sleep>>>,
}

impl WireConn {
    fn new(io: Box<dyn BackendIo>) -> Self {
        Self {
            io,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: BytesMut::with_capacity(4 * 1024),
            head_timer: None,
        }
    }

    /// Whether `at` has passed; when not, `cx` is woken when it does.
    pub fn head_timer_expired(&mut self, at: Instant, cx: &mut Context<'_>) -> bool {
        let timer = self
            .head_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// Whether a connection nobody is using has ended: the member sent something (an EOF, a
    /// byte nobody asked for), it failed, or it idled out. When not, `cx` is woken at the next
    /// of these.
    fn has_ended(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.rbuf.is_empty() {
            return true;
        }
        let mut one = [0u8; 1];
        let mut buf = ReadBuf::new(&mut one);
        Pin::new(&mut *self.io).poll_read(cx, &mut buf).is_ready()
    }
}

#[derive(Default)]
struct ParkState {
    conn: Option<WireConn>,
    closed: bool,
    watcher: Option<Waker>,
}

/// Where the connection waits between exchanges.
#[derive(Default)]
struct Park(Mutex<ParkState>);

impl Park {
    fn lock(&self) -> MutexGuard<'_, ParkState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks `conn`, watched from now on with the watcher's waker (no wake-up of its own).
    fn put(&self, mut conn: WireConn) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let ended = match &st.watcher {
            Some(w) => conn.has_ended(&mut Context::from_waker(w)),
            // Not polled yet: it looks when it first is.
            None => !conn.rbuf.is_empty(),
        };
        if ended {
            drop(conn);
            Self::closed(&mut st);
        } else {
            st.conn = Some(conn);
        }
    }

    fn close(&self) {
        Self::closed(&mut self.lock());
    }

    fn closed(st: &mut ParkState) {
        st.closed = true;
        st.conn = None;
        if let Some(w) = st.watcher.take() {
            w.wake();
        }
    }

    /// The watcher: ends when the connection does.
    fn watch(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if st.closed {
            return Poll::Ready(());
        }
        if st.conn.as_mut().is_some_and(|c| c.has_ended(cx)) {
            st.conn = None;
            st.closed = true;
            return Poll::Ready(());
        }
        if !st.watcher.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.watcher = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A member connection (pinned to one client connection, or pooled). Dropping it closes the
/// connection.
pub struct WireLink {
    lease: MemberLease,
    park: Arc<Park>,
}

impl std::fmt::Debug for WireLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireLink")
            .field("member", &self.lease.member().name)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl WireLink {
    /// A link over `io` (connected to the lease's member), checked out at once for its first
    /// exchange, and its watcher: on the client connection's task when `local` (and there is
    /// one), else on a task of its own.
    pub fn new(io: Box<dyn BackendIo>, lease: MemberLease, local: bool) -> (Self, Checkout) {
        let park = Arc::new(Park::default());
        let watched = park.clone();
        super::backend::drive(std::future::poll_fn(move |cx| watched.watch(cx)), local);
        let first = Checkout {
            conn: Some(WireConn::new(io)),
            park: park.clone(),
        };
        (Self { lease, park }, first)
    }

    /// The member.
    pub fn member_ref(&self) -> &Arc<Member> {
        self.lease.member()
    }

    /// Whether the connection has ended (or is out on an exchange that has not given it back).
    pub fn is_closed(&self) -> bool {
        let st = self.park.lock();
        st.closed || st.conn.is_none()
    }

    /// The connection, for one exchange; `None` when it has ended.
    pub fn checkout(&self) -> Option<Checkout> {
        let mut st = self.park.lock();
        if st.closed {
            return None;
        }
        let conn = st.conn.take()?;
        Some(Checkout {
            conn: Some(conn),
            park: self.park.clone(),
        })
    }
}

impl Drop for WireLink {
    fn drop(&mut self) {
        self.park.close();
    }
}

/// The connection, out on one exchange. Dropped without [`Checkout::finish`], it is closed.
pub struct Checkout {
    conn: Option<WireConn>,
    park: Arc<Park>,
}

impl Checkout {
    /// The connection; `None` once finished.
    pub fn conn(&mut self) -> Option<&mut WireConn> {
        self.conn.as_mut()
    }

    /// Whether the exchange is over (the connection given back or closed).
    pub fn is_finished(&self) -> bool {
        self.conn.is_none()
    }

    /// Ends the exchange: the connection goes back to the park when `reusable`, else closes.
    pub fn finish(&mut self, reusable: bool) {
        if let Some(conn) = self.conn.take() {
            if reusable {
                self.park.put(conn);
            } else {
                drop(conn);
                self.park.close();
            }
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        self.finish(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    async fn link() -> (WireLink, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1024);
        let lease = crate::pool::MemberLease::for_tests("m1");
        let (link, mut first) = WireLink::new(Box::new(ours), lease, false);
        first.finish(true);
        (link, theirs)
    }

    async fn until_closed(link: &WireLink) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !link.is_closed() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the watcher closed the link");
    }

    #[tokio::test]
    async fn a_parked_connection_is_checked_out_once_and_given_back() {
        let (link, _member) = link().await;
        let mut out = link.checkout().expect("parked");
        assert!(link.checkout().is_none(), "one exchange at a time");
        assert!(link.is_closed(), "out on an exchange: not there for another");
        out.finish(true);
        assert!(!link.is_closed());
        assert!(link.checkout().is_some());
    }

    #[tokio::test]
    async fn an_exchange_dropped_mid_way_closes_the_connection() {
        let (link, _member) = link().await;
        drop(link.checkout().expect("parked"));
        assert!(link.is_closed());
        assert!(link.checkout().is_none());
    }

    #[tokio::test]
    async fn a_member_that_closes_a_parked_connection_ends_it() {
        let (link, member) = link().await;
        tokio::task::yield_now().await;
        drop(member);
        until_closed(&link).await;
    }

    #[tokio::test]
    async fn bytes_nobody_asked_for_end_a_parked_connection() {
        let (link, mut member) = link().await;
        let mut out = link.checkout().expect("parked");
        out.finish(true);
        member.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        until_closed(&link).await;
    }
}
