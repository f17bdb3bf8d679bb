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
            m.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
        }
        m.get()
    })
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
    fn a_thread_keeps_its_stripe_and_threads_spread_over_them() {
        let mine = this_thread();
        assert_eq!(this_thread(), mine);
        let others: std::collections::BTreeSet<usize> = (0..STRIPES)
            .map(|_| std::thread::spawn(this_thread).join().unwrap())
            .collect();
        // Round-robin: STRIPES new threads take STRIPES different stripes.
        assert_eq!(others.len(), STRIPES);
        assert!(std::mem::align_of::<Padded<u8>>() >= 128);
    }
}
