//! The replay cache (RFC 4120 §3.2.3, §10): an authenticator is accepted once within the skew
//! window. Keyed only on what the ticket's and authenticator's encryption authenticates: the
//! client principal and realm from the *decrypted* ticket (in [`Principal::canonical`] form),
//! the authenticator's ctime and cusec, and the whole authenticator ciphertext (whose integrity
//! check covers its plaintext, so no byte of it can change and still decrypt). Nothing that
//! travels in clear — the ticket's `sname` and `realm`, the kvno, the GSS or SPNEGO framing —
//! is part of the key: a used token re-labelled `HTTP/`, re-cased, or moved from an RPC listener
//! to HTTPS is the same authenticator and a replay (DESIGN.md §2 step 5).
//!
//! The local key is a 64-bit SipHash with a random per-process key; [`ReplayKey::shared_id`]
//! is a 128-bit SHA-256 digest of the same fields that every replica computes alike, for a
//! shared store.
//!
//! Concurrent (sharded mutexes), bounded in memory (`max_entries`; when full after purging expired
//! entries it *refuses* new ones and counts that, never forgetting live ones), shared fairly
//! (with [`ReplayCache::with_principal_share`], one client principal holds at most that share of
//! the entries: a user minting thousands of fresh authenticators per second from one ticket is
//! refused beyond it, counted, instead of filling the cache for everyone), and expired by time:
//! each shard keeps its entries in insertion order with a deadline of `now + 2 × skew`, which
//! outlives every authenticator time the acceptor could still accept (`ctime ≤ now + skew`).
//! One cache is shared by every listener of a process.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::principal::Principal;

const SHARDS: usize = 64;

/// The shard of fingerprint `fp`: its top bits. The tables inside a shard index buckets by a
/// hash's low bits (the fingerprint itself, `IdentityHasher`), so choosing the shard by the low
/// bits too would leave every key of a shard the same low bits: one bucket in 64 as a probe's
/// start, long probe runs and slow inserts as a shard fills.
fn shard_of(fp: u64) -> usize {
    const BITS: u32 = SHARDS.trailing_zeros();
    (fp >> (u64::BITS - BITS)) as usize
}

/// Result of recording an authenticator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// First sighting: recorded.
    Fresh,
    /// Seen before within the window.
    Replay,
    /// The cache is at its bound and refuses to record (and so to accept).
    Full,
    /// The client principal holds its whole share of the cache; its new authenticators are
    /// refused until some of its entries expire.
    PrincipalShare,
}

/// The fields that identify one authenticator, all of them authenticated by the service key
/// or the session key.
#[derive(Clone, Copy, Debug)]
pub struct ReplayKey<'a> {
    /// Client principal and realm from the decrypted ticket; hashed in canonical form.
    pub client: &'a Principal,
    /// Authenticator ctime, Unix seconds.
    pub ctime: i64,
    /// Authenticator cusec.
    pub cusec: u32,
    /// The authenticator's ciphertext (`enc-part.cipher`), whole.
    pub authenticator: &'a [u8],
}

/// A replica-independent identity of one authenticator (for a shared replay store).
pub type ReplayId = [u8; 16];

/// Feeds `p`'s canonical characters to `write` as UTF-8, a buffer at a time (the hashes are
/// over the byte stream, so how it is cut does not change them; a write per character did).
fn feed_canonical(p: &Principal, write: &mut impl FnMut(&[u8])) {
    match p.plain_canonical_bytes() {
        Some(bytes) => feed_chars(bytes.map(char::from), write),
        None => feed_chars(p.canonical_chars(), write),
    }
}

/// `chars` as UTF-8 to `write`, 128 bytes at a time.
fn feed_chars(chars: impl Iterator<Item = char>, write: &mut impl FnMut(&[u8])) {
    let mut buf = [0u8; 128];
    let mut n = 0;
    for c in chars {
        if n + 4 > buf.len() {
            write(&buf[..n]);
            n = 0;
        }
        n += c.encode_utf8(&mut buf[n..]).len();
    }
    write(&buf[..n]);
}

impl ReplayKey<'_> {
    /// Feeds the key's fields to `h`, unambiguously (the principal as its canonical characters
    /// with a terminator, fixed-width numbers, the ciphertext with its length).
    fn feed(&self, mut write: impl FnMut(&[u8])) {
        feed_canonical(self.client, &mut write);
        write(&[0]);
        write(&self.ctime.to_be_bytes());
        write(&self.cusec.to_be_bytes());
        write(&(self.authenticator.len() as u64).to_be_bytes());
        write(self.authenticator);
    }

    /// `SHA-256("kedge-replay-v1" ‖ fields)[..16]`: the same on every replica, so replicas can
    /// share replay state by it; reveals nothing about the token beyond the client's ability
    /// to recompute it.
    pub fn shared_id(&self) -> ReplayId {
        use sha2::Digest;
        let mut d = sha2::Sha256::new();
        d.update(b"kedge-replay-v1");
        self.feed(|b| d.update(b));
        let full = d.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&full[..16]);
        id
    }
}

type FingerprintMap<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

#[derive(Default)]
struct Shard {
    // fingerprint -> deadline (Unix seconds)
    map: FingerprintMap<i64>,
    // (deadline, fingerprint, principal fingerprint), in insertion order
    order: VecDeque<(i64, u64, u64)>,
}

/// A concurrent, bounded, time-expired replay cache.
pub struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    max_per_shard: usize,
    /// Live entries one principal may hold (`usize::MAX`: no share is kept).
    max_per_principal: usize,
    /// Live entries per principal fingerprint, sharded like the entries.
    principals: Vec<Mutex<FingerprintMap<u32>>>,
    refused_full: AtomicU64,
    refused_share: AtomicU64,
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
    /// A cache holding at most `max_entries` live entries, with no per-principal share.
    pub fn new(max_entries: usize) -> Self {
        Self::with_max_per_principal(max_entries, usize::MAX)
    }

    /// A cache holding at most `max_entries` live entries, of which one client principal may
    /// hold at most `share` (a fraction, `0 < share ≤ 1`; at least one entry).
    pub fn with_principal_share(max_entries: usize, share: f64) -> Self {
        let per = (max_entries as f64 * share.clamp(0.0, 1.0)).ceil() as usize;
        Self::with_max_per_principal(max_entries, per.max(1))
    }

    /// A cache holding at most `max_entries` live entries, at most `max_per_principal` of them
    /// for one client principal.
    pub fn with_max_per_principal(max_entries: usize, max_per_principal: usize) -> Self {
        let max_per_shard = max_entries.div_ceil(SHARDS).max(1);
        let sharing = max_per_principal < max_entries;
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            max_per_shard,
            max_per_principal: if sharing { max_per_principal } else { usize::MAX },
            principals: (0..if sharing { SHARDS } else { 0 })
                .map(|_| Mutex::new(FingerprintMap::default()))
                .collect(),
            refused_full: AtomicU64::new(0),
            refused_share: AtomicU64::new(0),
            replays: AtomicU64::new(0),
        }
    }

    fn fingerprint(&self, k: &ReplayKey<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        k.feed(|b| h.write(b));
        h.finish()
    }

    /// Whether a per-principal share is kept.
    fn sharing(&self) -> bool {
        !self.principals.is_empty()
    }

    fn principal_fingerprint(&self, p: &Principal) -> u64 {
        let mut h = self.hasher.build_hasher();
        feed_canonical(p, &mut |b| h.write(b));
        h.finish()
    }

    fn principal_shard(&self, pfp: u64) -> std::sync::MutexGuard<'_, FingerprintMap<u32>> {
        self.principals[shard_of(pfp)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// One entry of principal `pfp` expired.
    fn principal_released(&self, pfp: u64) {
        let mut counts = self.principal_shard(pfp);
        if let Some(n) = counts.get_mut(&pfp) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&pfp);
            }
        }
    }

    /// Records the authenticator seen at `now` (Unix seconds) unless it was seen before.
    /// `window_secs` is how long the entry must live (2 × skew).
    pub fn check_and_insert(&self, key: &ReplayKey<'_>, now: i64, window_secs: i64) -> ReplayVerdict {
        let fp = self.fingerprint(key);
        let pfp = if self.sharing() {
            self.principal_fingerprint(key.client)
        } else {
            0
        };
        let shard = &self.shards[shard_of(fp)];
        let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
        // Purge expired entries at the head (deadlines are non-decreasing per shard as long as
        // `now` is; an out-of-order `now` only keeps entries longer, never shorter).
        while let Some(&(deadline, f, p)) = s.order.front() {
            if deadline > now {
                break;
            }
            s.order.pop_front();
            if s.map.get(&f) == Some(&deadline) {
                s.map.remove(&f);
                if self.sharing() {
                    self.principal_released(p);
                }
            }
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
        if self.sharing() {
            // Lock order: entry shard, then principal shard (never the other way round).
            let mut counts = self.principal_shard(pfp);
            let n = counts.entry(pfp).or_insert(0);
            if *n as usize >= self.max_per_principal {
                drop(counts);
                self.refused_share.fetch_add(1, Ordering::Relaxed);
                return ReplayVerdict::PrincipalShare;
            }
            *n += 1;
        }
        let deadline = now.saturating_add(window_secs.max(1));
        s.map.insert(fp, deadline);
        s.order.push_back((deadline, fp, pfp));
        ReplayVerdict::Fresh
    }

    /// Live entries (approximate under concurrency).
    pub fn len(&self) -> usize {
        // Summed over the shards (no counter shared by every insert: the workers would bounce
        // its cache line between cores on each token).
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len())
            .sum()
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

    /// How many insertions were refused because their principal held its whole share.
    pub fn refused_share(&self) -> u64 {
        self.refused_share.load(Ordering::Relaxed)
    }

    /// Live entries one principal may hold (`None`: no share is kept).
    pub fn max_per_principal(&self) -> Option<usize> {
        self.sharing().then_some(self.max_per_principal)
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
        for p in &self.principals {
            p.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_chosen_by_top_bits_and_cover_every_shard() {
        assert!(SHARDS.is_power_of_two());
        assert_eq!(shard_of(0), 0);
        assert_eq!(shard_of(u64::MAX), SHARDS - 1);
        // Keys that differ only in their low bits (what the tables index by) share a shard.
        assert_eq!(shard_of(0xABCD_0000_0000_0000), shard_of(0xABCD_0000_0000_003F));
        let seen: std::collections::HashSet<usize> = (0..SHARDS as u64)
            .map(|i| shard_of(i << (64 - SHARDS.trailing_zeros())))
            .collect();
        assert_eq!(seen.len(), SHARDS);
    }

    #[test]
    fn the_principal_is_fed_as_its_canonical_form_whatever_its_length() {
        let long = format!("{}@contoso.com", "X".repeat(300));
        for s in [
            "Alice@contoso.com",
            "HTTP/Outlook.Contoso.com@r",
            "a\\/b@R",
            "Émile@contoso.com",
            "Weiß@kedge.test",
            "Рябов@KEDGE.TEST",
            &long,
        ] {
            let p = Principal::parse(s, "").unwrap();
            let mut fed = Vec::new();
            feed_canonical(&p, &mut |b| fed.extend_from_slice(b));
            assert_eq!(fed, p.canonical().as_bytes(), "{s}");
        }
    }

    static CLIENT: std::sync::LazyLock<Principal> =
        std::sync::LazyLock::new(|| Principal::parse("alice@R", "R").unwrap());

    fn key(i: u32) -> ReplayKey<'static> {
        ReplayKey {
            client: &CLIENT,
            ctime: 1000,
            cusec: i,
            authenticator: b"ciphertext-of-the-authenticator",
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
    fn ciphertext_distinguishes_authenticators_with_equal_times() {
        let c = ReplayCache::new(100);
        let mut k = key(1);
        assert_eq!(c.check_and_insert(&k, 1000, 600), ReplayVerdict::Fresh);
        k.authenticator = b"another-authenticator-same-time";
        assert_eq!(c.check_and_insert(&k, 1000, 600), ReplayVerdict::Fresh);
    }

    #[test]
    fn client_name_case_is_one_principal() {
        let c = ReplayCache::new(100);
        let upper = Principal::parse("ALICE@r", "R").unwrap();
        let k = key(1);
        assert_eq!(c.check_and_insert(&k, 1000, 600), ReplayVerdict::Fresh);
        let recased = ReplayKey { client: &upper, ..k };
        assert_eq!(c.check_and_insert(&recased, 1000, 600), ReplayVerdict::Replay);
        assert_eq!(k.shared_id(), recased.shared_id());
    }

    #[test]
    fn shared_id_is_deterministic_and_covers_every_field() {
        let base = key(1);
        let id = base.shared_id();
        assert_eq!(id, key(1).shared_id(), "the same on every replica");
        let bob = Principal::parse("bob@R", "R").unwrap();
        let others = [
            ReplayKey { client: &bob, ..base },
            ReplayKey { ctime: 1001, ..base },
            ReplayKey { cusec: 2, ..base },
            ReplayKey {
                authenticator: b"ciphertext-of-the-authenticatoR",
                ..base
            },
        ];
        for o in others {
            assert_ne!(o.shared_id(), id);
        }
    }

    /// Replicas of different versions share one store during an upgrade: the id is a fixed
    /// function of the fields (this vector is computed outside kedge, with Python's hashlib).
    #[test]
    fn shared_id_is_the_documented_digest() {
        let alice = Principal::parse("Alice@contoso.com", "").unwrap();
        let k = ReplayKey {
            client: &alice,
            ctime: 1_790_000_000,
            cusec: 42,
            authenticator: &[1, 2, 3, 4, 5],
        };
        let hex: String = k.shared_id().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "8e04c588f8488163694f19b557784604");
    }

    fn key_of(client: &Principal, i: u32) -> ReplayKey<'_> {
        ReplayKey {
            client,
            ctime: 1000,
            cusec: i,
            authenticator: b"ciphertext-of-the-authenticator",
        }
    }

    #[test]
    fn one_principal_cannot_take_more_than_its_share() {
        let c = ReplayCache::with_principal_share(6_400, 0.01); // 64 entries per principal
        assert_eq!(c.max_per_principal(), Some(64));
        let (mallory, alice) = (
            Principal::parse("mallory@R", "R").unwrap(),
            Principal::parse("alice@R", "R").unwrap(),
        );
        let verdicts: Vec<_> = (0..1000)
            .map(|i| c.check_and_insert(&key_of(&mallory, i), 1000, 600))
            .collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == ReplayVerdict::Fresh).count(),
            64
        );
        assert_eq!(c.refused_share(), 936, "counted");
        assert_eq!(
            c.check_and_insert(&key_of(&mallory, 3), 1001, 600),
            ReplayVerdict::Replay,
            "a replay is still a replay"
        );
        for i in 0..64 {
            assert_eq!(
                c.check_and_insert(&key_of(&alice, i), 1001, 600),
                ReplayVerdict::Fresh
            );
        }
        // The share is canonical: re-cased names are the same principal.
        let recased = Principal::parse("MALLORY@r", "R").unwrap();
        assert_eq!(
            c.check_and_insert(&key_of(&recased, 5000), 1001, 600),
            ReplayVerdict::PrincipalShare
        );
    }

    #[test]
    fn a_principals_share_frees_up_as_its_entries_expire() {
        let c = ReplayCache::with_max_per_principal(10_000, 2);
        let bob = Principal::parse("bob@R", "R").unwrap();
        assert_eq!(
            c.check_and_insert(&key_of(&bob, 1), 1000, 600),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            c.check_and_insert(&key_of(&bob, 2), 1000, 600),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            c.check_and_insert(&key_of(&bob, 3), 1100, 600),
            ReplayVerdict::PrincipalShare
        );
        // Expiry is purged per shard as the shard is touched: touch them all after the window.
        let other = Principal::parse("carol@R", "R").unwrap();
        for i in 0..2_000 {
            c.check_and_insert(&key_of(&other, 10_000 + i), 1600, 600);
        }
        assert_eq!(
            c.check_and_insert(&key_of(&bob, 3), 1600, 600),
            ReplayVerdict::Fresh
        );
    }

    #[test]
    fn a_full_share_is_no_share() {
        let c = ReplayCache::with_principal_share(100, 1.0);
        assert_eq!(c.max_per_principal(), None, "nothing extra kept");
    }

    #[test]
    fn concurrent_inserts_of_one_key_admit_exactly_one() {
        let c = std::sync::Arc::new(ReplayCache::new(10_000));
        let fresh = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
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
