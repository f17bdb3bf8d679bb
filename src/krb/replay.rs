//! The replay cache (RFC 4120 §3.2.3, §10): an authenticator is accepted once within the skew
//! window. Keyed on a 64-bit SipHash (random key per process) of the RFC tuple — server
//! principal, client principal, ctime, cusec — plus the authenticator's integrity tag, so two
//! different authenticators that share a timestamp never collide.
//!
//! Concurrent (sharded mutexes), bounded in memory (`max_entries`; when full after purging expired
//! entries it *refuses* new ones and counts that, never forgetting live ones), and expired by time:
//! each shard keeps its entries in insertion order with a deadline of `now + 2 × skew`, which
//! outlives every authenticator time the acceptor could still accept (`ctime ≤ now + skew`).
//! One cache is shared by every listener of a process.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::principal::Principal;

const SHARDS: usize = 64;

/// Result of recording an authenticator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// First sighting: recorded.
    Fresh,
    /// Seen before within the window.
    Replay,
    /// The cache is at its bound and refuses to record (and so to accept).
    Full,
}

/// The fields that identify one authenticator.
#[derive(Clone, Copy, Debug)]
pub struct ReplayKey<'a> {
    /// Server principal (ticket sname) with its realm; hashed by components and realm (no
    /// string is built per token).
    pub server: &'a Principal,
    /// Client principal and realm.
    pub client: &'a Principal,
    /// Authenticator ctime, Unix seconds.
    pub ctime: i64,
    /// Authenticator cusec.
    pub cusec: u32,
    /// The authenticator ciphertext's integrity tag (its last bytes).
    pub tag: &'a [u8],
}

#[derive(Default)]
struct Shard {
    // fingerprint -> deadline (Unix seconds)
    map: HashMap<u64, i64, BuildHasherDefault<IdentityHasher>>,
    order: VecDeque<(i64, u64)>,
}

/// A concurrent, bounded, time-expired replay cache.
pub struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    max_per_shard: usize,
    len: AtomicUsize,
    refused_full: AtomicU64,
    replays: AtomicU64,
}

/// Identity hasher for the already-hashed fingerprints.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl ReplayCache {
    /// A cache holding at most `max_entries` live entries.
    pub fn new(max_entries: usize) -> Self {
        let max_per_shard = max_entries.div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            max_per_shard,
            len: AtomicUsize::new(0),
            refused_full: AtomicU64::new(0),
            replays: AtomicU64::new(0),
        }
    }

    fn fingerprint(&self, k: &ReplayKey<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        // Vec<String> hashes its length and each string with a terminator: unambiguous.
        k.server.components.hash(&mut h);
        k.server.realm.hash(&mut h);
        k.client.components.hash(&mut h);
        k.client.realm.hash(&mut h);
        k.ctime.hash(&mut h);
        k.cusec.hash(&mut h);
        k.tag.hash(&mut h);
        h.finish()
    }

    /// Records the authenticator seen at `now` (Unix seconds) unless it was seen before.
    /// `window_secs` is how long the entry must live (2 × skew).
    pub fn check_and_insert(&self, key: &ReplayKey<'_>, now: i64, window_secs: i64) -> ReplayVerdict {
        let fp = self.fingerprint(key);
        let shard = &self.shards[(fp as usize) % SHARDS];
        let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
        // Purge expired entries at the head (deadlines are non-decreasing per shard as long as
        // `now` is; an out-of-order `now` only keeps entries longer, never shorter).
        let mut purged = 0usize;
        while let Some(&(deadline, f)) = s.order.front() {
            if deadline > now {
                break;
            }
            s.order.pop_front();
            if s.map.get(&f) == Some(&deadline) {
                s.map.remove(&f);
                purged += 1;
            }
        }
        if purged > 0 {
            self.len.fetch_sub(purged, Ordering::Relaxed);
        }
        if let Some(&deadline) = s.map.get(&fp) {
            if deadline > now {
                self.replays.fetch_add(1, Ordering::Relaxed);
                return ReplayVerdict::Replay;
            }
        }
        if s.map.len() >= self.max_per_shard {
            self.refused_full.fetch_add(1, Ordering::Relaxed);
            return ReplayVerdict::Full;
        }
        let deadline = now.saturating_add(window_secs.max(1));
        s.map.insert(fp, deadline);
        s.order.push_back((deadline, fp));
        self.len.fetch_add(1, Ordering::Relaxed);
        ReplayVerdict::Fresh
    }

    /// Live entries (approximate under concurrency).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configured bound.
    pub fn capacity(&self) -> usize {
        self.max_per_shard * SHARDS
    }

    /// How many insertions were refused because the cache was full.
    pub fn refused_full(&self) -> u64 {
        self.refused_full.load(Ordering::Relaxed)
    }

    /// How many replays were detected.
    pub fn replays(&self) -> u64 {
        self.replays.load(Ordering::Relaxed)
    }

    /// Drops every entry (tests and benchmarks).
    pub fn clear(&self) {
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
            s.map.clear();
            s.order.clear();
        }
        self.len.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SERVER: std::sync::LazyLock<Principal> =
        std::sync::LazyLock::new(|| Principal::parse("http/outlook.contoso.com@R", "R").unwrap());
    static CLIENT: std::sync::LazyLock<Principal> =
        std::sync::LazyLock::new(|| Principal::parse("alice@R", "R").unwrap());

    fn key(i: u32) -> ReplayKey<'static> {
        ReplayKey {
            server: &SERVER,
            client: &CLIENT,
            ctime: 1000,
            cusec: i,
            tag: b"tagtagtagtag",
        }
    }

    #[test]
    fn second_sighting_is_a_replay() {
        let c = ReplayCache::new(100);
        assert_eq!(c.check_and_insert(&key(1), 1000, 600), ReplayVerdict::Fresh);
        assert_eq!(c.check_and_insert(&key(1), 1001, 600), ReplayVerdict::Replay);
        assert_eq!(c.check_and_insert(&key(2), 1001, 600), ReplayVerdict::Fresh);
        assert_eq!(c.replays(), 1);
    }

    #[test]
    fn entries_expire_after_the_window() {
        let c = ReplayCache::new(100);
        assert_eq!(c.check_and_insert(&key(1), 1000, 600), ReplayVerdict::Fresh);
        assert_eq!(c.check_and_insert(&key(1), 1599, 600), ReplayVerdict::Replay);
        assert_eq!(c.check_and_insert(&key(1), 1600, 600), ReplayVerdict::Fresh);
    }

    #[test]
    fn full_cache_refuses_rather_than_forgets() {
        let c = ReplayCache::new(64); // one entry per shard
        let mut full = 0;
        for i in 0..1000 {
            if c.check_and_insert(&key(i), 1000, 600) == ReplayVerdict::Full {
                full += 1;
            }
        }
        assert!(full > 0);
        assert!(c.len() <= 64);
        assert_eq!(c.refused_full(), full);
        // Every recorded entry is still a replay.
        let recorded: Vec<u32> = (0..1000)
            .filter(|i| c.check_and_insert(&key(*i), 1001, 600) == ReplayVerdict::Replay)
            .collect();
        assert_eq!(recorded.len(), c.len());
        // After the window everything is accepted again.
        assert_eq!(c.check_and_insert(&key(5000), 1601, 600), ReplayVerdict::Fresh);
    }

    #[test]
    fn tag_distinguishes_authenticators_with_equal_times() {
        let c = ReplayCache::new(100);
        let mut k = key(1);
        assert_eq!(c.check_and_insert(&k, 1000, 600), ReplayVerdict::Fresh);
        k.tag = b"othertagxxxx";
        assert_eq!(c.check_and_insert(&k, 1000, 600), ReplayVerdict::Fresh);
    }

    #[test]
    fn concurrent_inserts_of_one_key_admit_exactly_one() {
        let c = std::sync::Arc::new(ReplayCache::new(10_000));
        let fresh = std::sync::Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let (c, fresh) = (c.clone(), fresh.clone());
                std::thread::spawn(move || {
                    for i in 0..500 {
                        if c.check_and_insert(&key(i), 1000, 600) == ReplayVerdict::Fresh {
                            fresh.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(fresh.load(Ordering::Relaxed), 500);
    }
}
