//! An assert route's pooled backend connections: kept per worker thread and member, taken for
//! a request and given back once its response body has been read to the end.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::ThreadId;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::backend::Backend;
use super::body::BoxError;
use super::error::EdgeError;
use super::wire_exchange::WireBody;
use super::wire_link::{Checkout, WireLink};
use crate::stripes::{self, Padded, STRIPES};

/// Idle connections kept per member.
const MAX_IDLE_PER_MEMBER: usize = 64;

/// Pooled backend connections of one pool for assert routes, kept per worker thread and member.
///
/// A pooled connection is registered with the reactor of the worker thread that opened it, and
/// its watcher runs there; handing it to a request on another worker would make every exchange
/// on it cross threads (wake-ups through another thread's reactor, and the tail latency of
/// whichever thread is busier). So each worker keeps its own idle connections and only ever
/// takes back what it opened. kedge speaks HTTP/1.1 on them itself (`wire_exchange.rs`).
/// The idle lists are in the stripe of the thread that keeps them (`crate::stripes`): a
/// request's checkout and check-in lock a mutex no other worker normally touches.
#[derive(Debug)]
pub struct AssertPool {
    backend: Backend,
    idle: Box<[IdleStripe]>,
}

/// Idle connections of one stripe by worker thread (the one whose reactor has them; a stripe
/// normally has one), then by member (a pool has a handful; its key's pointer is compared
/// before its text). Lists, not hash maps: a lookup on every request hashed twice.
#[derive(Debug)]
struct IdleLists<T = WireLink>(Vec<(ThreadId, MemberLists<T>)>);

/// One thread's idle lists, by member key.
type MemberLists<T> = Vec<(Arc<str>, Vec<T>)>;

impl<T> Default for IdleLists<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> IdleLists<T> {
    /// The idle list of `member` on `thread`; made where there is none yet if `make`.
    fn list(&mut self, thread: ThreadId, member: &Arc<str>, make: bool) -> Option<&mut Vec<T>> {
        let threads = &mut self.0;
        let t = match threads.iter().position(|(t, _)| *t == thread) {
            Some(t) => t,
            None if make => {
                threads.push((thread, Vec::new()));
                threads.len() - 1
            }
            None => return None,
        };
        let members = &mut threads[t].1;
        let same = |k: &Arc<str>| Arc::ptr_eq(k, member) || **k == **member;
        let m = match members.iter().position(|(k, _)| same(k)) {
            Some(m) => m,
            None if make => {
                members.push((member.clone(), Vec::new()));
                members.len() - 1
            }
            None => return None,
        };
        Some(&mut members[m].1)
    }
}

/// One stripe of a pool's idle lists. A response body holds its thread's stripe to give its
/// connection back (the count of that `Arc` is the thread's too, unlike the pool's).
type IdleStripe = Arc<Padded<Mutex<IdleLists>>>;

impl AssertPool {
    /// An empty pool over `backend`.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            idle: (0..STRIPES).map(|_| Arc::new(Padded::default())).collect(),
        }
    }

    /// The backend (pool and member settings) its connections go to.
    pub(super) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// This thread's stripe of the idle lists.
    fn idle_here(&self) -> &IdleStripe {
        &self.idle[stripes::this_thread()]
    }

    fn take_idle(&self, member: &Arc<str>) -> Option<(WireLink, Checkout)> {
        let mut idle = lock(self.idle_here());
        let list = idle.list(stripes::thread_id(), member, false)?;
        while let Some(link) = list.pop() {
            if let Some(conn) = link.checkout() {
                return Some((link, conn));
            }
        }
        None
    }

    /// An idle connection to the member `key` goes to, or a new one.
    pub(super) async fn checkout(&self, key: Option<&str>) -> Result<(WireLink, Checkout), EdgeError> {
        let pool = &self.backend.pool;
        if let Some(idle) = pool
            .with_preferred(key, |member| self.take_idle(member.key()))
            .flatten()
        {
            return Ok(idle);
        }
        self.backend.open_wire(key, "assert").await
    }
}

fn lock(stripe: &Mutex<IdleLists>) -> std::sync::MutexGuard<'_, IdleLists> {
    stripe.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps `link` in `stripe` (the stripe of the thread that took it out) for its thread's next
/// request to the same member, unless it has closed or the list is full.
fn checkin(stripe: &Mutex<IdleLists>, link: WireLink) {
    if link.is_closed() {
        return;
    }
    let mut idle = lock(stripe);
    let Some(list) = idle.list(stripes::thread_id(), link.member_ref().key(), true) else {
        return;
    };
    if list.len() < MAX_IDLE_PER_MEMBER {
        list.push(link);
    }
}

/// A backend response body that gives its connection back to the pool once read to the end
/// (and closes it when dropped before).
pub(super) struct PooledBody {
    inner: WireBody<Incoming>,
    checkin: Option<(IdleStripe, WireLink)>,
}

impl PooledBody {
    /// `inner`, whose connection `link` goes back to `pool`'s idle list of this thread.
    pub(super) fn new(inner: WireBody<Incoming>, pool: &AssertPool, link: WireLink) -> Self {
        Self {
            inner,
            checkin: Some((pool.idle_here().clone(), link)),
        }
    }

    fn give_back(&mut self) {
        if let Some((stripe, link)) = self.checkin.take() {
            checkin(&stripe, link);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        match &res {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.checkin = None,
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_and_member_has_its_own_list_found_by_key_text_too() {
        let mut idle = IdleLists::<u32>::default();
        let (cas1, cas2) = (Arc::<str>::from("cas1"), Arc::<str>::from("cas2"));
        let here = stripes::thread_id();
        let there = std::thread::spawn(stripes::thread_id).join().expect("thread");
        assert!(
            idle.list(here, &cas1, false).is_none(),
            "nothing made by a lookup"
        );
        assert!(idle.0.is_empty());
        idle.list(here, &cas1, true).expect("made").push(1);
        idle.list(here, &cas2, true).expect("made").push(2);
        idle.list(there, &cas1, true).expect("made").push(3);
        // Another Arc with the same text (a reloaded pool's member) finds the same list.
        let cas1_again = Arc::<str>::from("cas1");
        assert_eq!(
            idle.list(here, &cas1_again, false).map(|l| l.clone()),
            Some(vec![1])
        );
        assert_eq!(idle.list(here, &cas2, false).map(|l| l.clone()), Some(vec![2]));
        assert_eq!(idle.list(there, &cas1, false).map(|l| l.clone()), Some(vec![3]));
        assert!(idle.list(there, &cas2, false).is_none());
        assert!(idle.list(here, &Arc::from("cas3"), false).is_none());
        assert!(
            idle.list(here, &Arc::from("cas"), false).is_none(),
            "a prefix is another member"
        );
        assert_eq!(idle.0.len(), 2, "one entry per thread");
    }
}
