// Unsafe code is refused everywhere but in `hold_freed_memory`'s one call into the allocator.
#![deny(unsafe_code)]

use std::ffi::{c_int, c_long};

// mimalloc: the edge allocates and frees small buffers per request on every worker thread;
// glibc's malloc spent ~6% of kedge's CPU there under the HTTP benchmark (scripts/bench-http).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (`mimalloc.h`; the 16th entry, between
/// `mi_option_eager_commit_delay` = 14 and `mi_option_use_numa_nodes` = 16, which
/// libmimalloc-sys names). mimalloc 2 calls the same entry `reset_delay`.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// How long freed memory stays mapped before mimalloc hands it back to the kernel, unless the
/// environment says otherwise (`MIMALLOC_PURGE_DELAY`, in milliseconds; -1 never).
///
/// mimalloc's own default is 1 s. Under fresh-token load the replay cache's tables grow and free
/// their old arrays, and every purge one second later is an `madvise(MADV_DONTNEED)`: a TLB
/// shootdown that interrupts the other workers, then page faults and zeroing when the memory
/// is used again. Measured (`perf stat` over 12 s of `kedge-bench --mode fresh` at ~30k req/s
/// on an assert route): 59 purges, 246 TLB flushes, 1,793 page faults at 1 s; 7, 25 and 460 at
/// 10 s, with ~1 µs less kedge CPU per request. Ten seconds is jemalloc's default decay too:
/// memory a burst used still goes back, ten seconds later.
const PURGE_DELAY_MS: c_long = 10_000;

fn hold_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return; // the operator's choice, already read by mimalloc at start-up
    }
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` takes an option index and a value and only stores the value in
    // mimalloc's option table (it may be called at any time, from any thread); the index is
    // mimalloc 3's purge delay (above), whose values are milliseconds.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS)
    }
}

#[allow(unsafe_code)]
extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

fn main() -> std::process::ExitCode {
    hold_freed_memory();
    kedge::cli::main()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn freed_memory_is_held_for_ten_seconds() {
        // SAFETY: reads an option by index (see `hold_freed_memory`).
        let get = || unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc 3's own default: the index is the purge delay's.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(), 1000, "mimalloc's default purge delay");
        }
        hold_freed_memory();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(), PURGE_DELAY_MS);
        }
    }
}
