//! Per-thread stripes: state that every request of a worker writes is kept in the stripe of
//! the writing thread, so two workers never move one cache line between their cores per
//! request (metrics in `observe::striped`, the assert routes' idle backend connections).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Stripes per striped value; threads beyond it share stripes (which stays correct: a stripe
/// is an atomic or behind a lock, only no longer the thread's alone).
pub const STRIPES: usize = 16;

/// This thread's stripe, given out round-robin on its first use.
pub fn this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    MINE.with(|m| {
        if m.get() == usize::MAX {
            m.set(next_stripe(&NEXT));
        }
        m.get()
    })
}

/// This thread's id, kept (`std::thread::current()` clones the thread's handle, writing its
/// reference count, on every call).
pub fn thread_id() -> std::thread::ThreadId {
    thread_local! {
        static ID: std::thread::ThreadId = std::thread::current().id();
    }
    ID.with(|id| *id)
}

/// The next stripe `next` gives out: round-robin over `STRIPES`.
fn next_stripe(next: &AtomicUsize) -> usize {
    next.fetch_add(1, Ordering::Relaxed) % STRIPES
}

/// `T` alone on its cache lines (128 bytes: the pair of lines adjacent-line prefetch moves).
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_stripe() {
        let mine = this_thread();
        assert!(mine < STRIPES);
        assert_eq!(this_thread(), mine);
        let other = std::thread::spawn(|| (this_thread(), this_thread(), thread_id()))
            .join()
            .unwrap();
        assert!(other.0 < STRIPES);
        assert_eq!(other.0, other.1);
        assert_eq!(thread_id(), std::thread::current().id());
        assert_ne!(other.2, thread_id(), "each thread has its own id");
    }

    #[test]
    fn stripes_are_given_out_round_robin() {
        // A counter of its own: the process-wide one is shared with every other test's threads.
        let next = AtomicUsize::new(0);
        let first: Vec<usize> = (0..STRIPES).map(|_| next_stripe(&next)).collect();
        assert_eq!(first, (0..STRIPES).collect::<Vec<_>>());
        assert_eq!(next_stripe(&next), 0, "the 17th thread shares the first's stripe");
        assert!(std::mem::align_of::<Padded<u8>>() >= 128);
    }
}
