//! Opened service tickets, kept for the client's next AP-REQ around the same ticket.
//!
//! A Kerberos client fetches a service ticket once and keeps it for its lifetime (10 hours in
//! AD); every AP-REQ it sends is that same ticket with a new authenticator (RFC 4120 §3.2.3).
//! Decrypting the ticket, decoding it and verifying its PAC is the larger part of validating a
//! token, and its outcome is a pure function of the ciphertext and the key that decrypted it.
//! So what the ticket alone establishes is kept here, keyed on the exact ciphertext (with its
//! enctype and kvno), and the next AP-REQ around that ticket skips that work.
//!
//! What is kept never decides anything on its own: every check that depends on the time or on
//! the request runs on every use (the key still usable, the ticket's start and end, the
//! authenticator, the GSS checksum and channel bindings, group rules, replay). Only tickets of
//! AP-REQs that passed every check are kept, so without a KDC-issued ticket nobody can put
//! anything here. A cache belongs to one key set: a keytab reload starts an empty one, and a
//! ticket of a key that was removed is opened (and refused) again. The cache is bounded in
//! bytes; the session keys it holds are wiped when an entry goes ([`Key`] zeroizes).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use super::aprep::USAGE_AP_REP;
use super::crypto::{Key, UsageKeys};
use super::der::EncodedPrincipal;
use super::pac_identity::PacIdentity;
use super::principal::Principal;

/// Shards of the cache (each with its own lock and an equal share of the byte budget).
const SHARDS: usize = 16;

/// What is counted against the budget for an entry besides its ciphertext and PAC.
const ENTRY_OVERHEAD: usize = 512;

/// Bytes counted per byte of encoded LOGON_INFO: a kept PAC may come to hold its decoded form
/// (about as large) and its groups as text (a domain group is 8 bytes encoded and some 46 as
/// `S-1-5-21-…-RID,`), made after the entry was counted; this bounds what it can grow to.
const PAC_WEIGHT: usize = 8;

/// What a service ticket establishes under the key that decrypted it (RFC 4120 §5.3).
#[derive(Debug)]
pub struct OpenedTicket {
    /// Index in the key set of the key that decrypted it.
    pub key_index: usize,
    /// The service name the ticket came with when it was opened (`sname@realm`, sent in clear
    /// beside the ciphertext: a later token's name is this one only where its bytes are).
    pub service: Arc<Principal>,
    /// The client, `cname@crealm` (its realm is the client realm as text).
    pub client: Principal,
    /// `cname` and `crealm` as encoded (any bytes), for the authenticator's match (RFC 4120
    /// §3.2.3).
    pub client_encoded: EncodedPrincipal,
    /// The `invalid` ticket flag.
    pub invalid: bool,
    /// Ticket times, Unix seconds (`starttime` is `authtime` where absent).
    pub authtime: i64,
    /// See `authtime`.
    pub starttime: i64,
    /// See `authtime`.
    pub endtime: i64,
    /// The ticket session key.
    pub session_key: Key,
    /// The session key's usage-11 keys (authenticators).
    pub authenticator_keys: UsageKeys,
    /// The session key's usage-12 keys (AP-REP), derived the first time one is built.
    ap_rep_keys: OnceLock<UsageKeys>,
    /// The verified PAC identity, where the ticket had a PAC (set before the ticket is kept).
    pub pac: Option<Arc<PacIdentity>>,
}

impl OpenedTicket {
    /// A ticket just opened; its PAC is checked later and set with [`OpenedTicket::pac`].
    pub fn new(
        key_index: usize,
        service: Arc<Principal>,
        client: Principal,
        client_encoded: EncodedPrincipal,
        invalid: bool,
        times: [i64; 3],
        session_key: Key,
    ) -> Self {
        let authenticator_keys = UsageKeys::new(&session_key, super::acceptor::USAGE_AUTHENTICATOR);
        let [authtime, starttime, endtime] = times;
        Self {
            key_index,
            service,
            client,
            client_encoded,
            invalid,
            authtime,
            starttime,
            endtime,
            session_key,
            authenticator_keys,
            ap_rep_keys: OnceLock::new(),
            pac: None,
        }
    }

    /// The session key's usage-12 keys, for the AP-REP.
    pub fn ap_rep_keys(&self) -> &UsageKeys {
        self.ap_rep_keys
            .get_or_init(|| UsageKeys::new(&self.session_key, USAGE_AP_REP))
    }

    fn cost(&self, cipher_len: usize) -> usize {
        let pac = self.pac.as_ref().map_or(0, |p| p.encoded_len());
        cipher_len + PAC_WEIGHT * pac + ENTRY_OVERHEAD
    }
}

/// Counters of a [`TicketCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TicketCacheStats {
    /// Tickets kept.
    pub entries: usize,
    /// Bytes counted against the budget.
    pub bytes: usize,
    /// Lookups that found the ticket.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
}

/// The cache; see the module documentation.
#[derive(Debug)]
pub struct TicketCache {
    shards: Box<[Mutex<Shard>]>,
    shard_budget: usize,
}

#[derive(Debug, Default)]
struct Shard {
    /// By the first 16 bytes of the ciphertext: pseudo-random for every ticket a KDC issued
    /// (the encrypted confounder for AES, the HMAC for rc4-hmac), so a client cannot crowd a
    /// bucket; the whole ciphertext is compared on a hit.
    map: HashMap<[u8; 16], Entry>,
    /// Keys in the order they were kept, with the `seq` they were kept under (a key kept again
    /// leaves a stale place behind): the oldest goes first when room is needed.
    order: VecDeque<([u8; 16], u64)>,
    next_seq: u64,
    bytes: usize,
    hits: u64,
    misses: u64,
}

impl Shard {
    /// Drops the oldest kept ticket; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|e| e.seq == seq) {
                if let Some(old) = self.map.remove(&key) {
                    self.bytes -= old.cost;
                }
                return true;
            }
        }
        false
    }
}

#[derive(Debug)]
struct Entry {
    cipher: Box<[u8]>,
    etype: i32,
    kvno: Option<u32>,
    seq: u64,
    cost: usize,
    ticket: Arc<OpenedTicket>,
}

/// Where a ciphertext goes: its bucket key and shard. `None` for a ciphertext too short to be
/// a ticket (it would not decrypt).
fn slot(cipher: &[u8]) -> Option<([u8; 16], usize)> {
    let prefix: [u8; 16] = cipher.get(..16)?.try_into().ok()?;
    Some((prefix, usize::from(prefix[0]) % SHARDS))
}

impl TicketCache {
    /// A cache of at most `max_bytes` (0: nothing is kept).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget: max_bytes / SHARDS,
        }
    }

    /// Whether anything is ever kept.
    pub fn enabled(&self) -> bool {
        self.shard_budget > 0
    }

    fn shard(&self, i: usize) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while a shard was held leaves nothing half-done worth refusing service for.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ticket kept for exactly this ciphertext, enctype and kvno.
    pub fn get(&self, etype: i32, kvno: Option<u32>, cipher: &[u8]) -> Option<Arc<OpenedTicket>> {
        if !self.enabled() {
            return None;
        }
        let (prefix, i) = slot(cipher)?;
        let mut shard = self.shard(i);
        let found = shard
            .map
            .get(&prefix)
            .filter(|e| e.etype == etype && e.kvno == kvno && *e.cipher == *cipher)
            .map(|e| e.ticket.clone());
        match found {
            Some(_) => shard.hits += 1,
            None => shard.misses += 1,
        }
        found
    }

    /// Keeps `ticket`, opened from `cipher`, making room by dropping the tickets kept longest
    /// ago (O(1) each; a ticket past its end time is refused by the acceptor's time check
    /// until then). A ticket larger than a shard's share of the budget is not kept.
    pub fn insert(&self, etype: i32, kvno: Option<u32>, cipher: &[u8], ticket: Arc<OpenedTicket>) {
        if !self.enabled() {
            return;
        }
        let Some((prefix, i)) = slot(cipher) else {
            return;
        };
        let cost = ticket.cost(cipher.len());
        if cost > self.shard_budget {
            return;
        }
        let mut shard = self.shard(i);
        if let Some(old) = shard.map.remove(&prefix) {
            shard.bytes -= old.cost;
        }
        while shard.bytes + cost > self.shard_budget && shard.drop_oldest() {}
        // Stale places (keys kept again) never outnumber the live ones for long.
        if shard.order.len() > 2 * shard.map.len() + 16 {
            let Shard { map, order, .. } = &mut *shard;
            order.retain(|(k, seq)| map.get(k).is_some_and(|e| e.seq == *seq));
        }
        let seq = shard.next_seq;
        shard.next_seq += 1;
        shard.bytes += cost;
        shard.order.push_back((prefix, seq));
        shard.map.insert(
            prefix,
            Entry {
                cipher: cipher.into(),
                etype,
                kvno,
                seq,
                cost,
                ticket,
            },
        );
    }

    /// Entries, bytes, hits and misses, summed over the shards.
    pub fn stats(&self) -> TicketCacheStats {
        let mut s = TicketCacheStats::default();
        for i in 0..self.shards.len() {
            let shard = self.shard(i);
            s.entries += shard.map.len();
            s.bytes += shard.bytes;
            s.hits += shard.hits;
            s.misses += shard.misses;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krb::crypto::EncType;

    fn ticket(endtime: i64) -> Arc<OpenedTicket> {
        let client = Principal {
            name_type: 1,
            components: vec!["alice".into()],
            realm: "CONTOSO.COM".into(),
        };
        Arc::new(OpenedTicket::new(
            0,
            Arc::new(Principal::parse("http/outlook.contoso.com", "CONTOSO.COM").expect("spn")),
            client,
            EncodedPrincipal {
                name_type: 1,
                components: vec![Box::from(&b"alice"[..])],
                realm: Box::from(&b"CONTOSO.COM"[..]),
            },
            false,
            [0, 0, endtime],
            Key::random(EncType::Aes256CtsHmacSha196),
        ))
    }

    fn cipher(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
            .collect()
    }

    #[test]
    fn only_the_exact_ciphertext_enctype_and_kvno_find_a_ticket() {
        let cache = TicketCache::new(1 << 20);
        let c = cipher(1, 300);
        cache.insert(18, Some(3), &c, ticket(100));
        assert!(cache.get(18, Some(3), &c).is_some());
        let mut tail = c.clone();
        *tail.last_mut().unwrap() ^= 1;
        assert!(
            cache.get(18, Some(3), &tail).is_none(),
            "same prefix, other bytes"
        );
        assert!(cache.get(18, Some(3), &c[..299]).is_none(), "truncated");
        assert!(cache.get(17, Some(3), &c).is_none(), "other enctype");
        assert!(cache.get(18, Some(4), &c).is_none(), "other kvno");
        assert!(cache.get(18, None, &c).is_none(), "no kvno");
        assert!(
            cache.get(18, Some(3), &c[..15]).is_none(),
            "shorter than a bucket key"
        );
        // The too-short one is not counted as a lookup: no ticket is that short.
        let s = cache.stats();
        assert_eq!((s.entries, s.hits, s.misses), (1, 1, 5));
    }

    #[test]
    fn the_byte_budget_holds_and_the_oldest_ticket_goes_first() {
        // One shard's share fits three 1 KiB tickets.
        let cache = TicketCache::new(SHARDS * 3 * (1024 + ENTRY_OVERHEAD));
        // Same first byte: same shard.
        let cs: Vec<Vec<u8>> = (0..6u8)
            .map(|n| {
                let mut c = cipher(n + 1, 1024);
                c[0] = 0;
                c
            })
            .collect();
        for c in &cs[..3] {
            cache.insert(18, None, c, ticket(1000));
        }
        // Kept again (two misses raced): still one entry, and it now counts as the newest.
        cache.insert(18, None, &cs[0], ticket(1000));
        assert_eq!(cache.stats().entries, 3);
        cache.insert(18, None, &cs[3], ticket(1000));
        assert!(cache.get(18, None, &cs[1]).is_none(), "the oldest went");
        for c in [&cs[0], &cs[2], &cs[3]] {
            assert!(cache.get(18, None, c).is_some());
        }
        for c in &cs[4..] {
            cache.insert(18, None, c, ticket(1000));
        }
        let s = cache.stats();
        assert_eq!(s.entries, 3);
        assert_eq!(s.bytes, 3 * (1024 + ENTRY_OVERHEAD));
        for c in [&cs[3], &cs[4], &cs[5]] {
            assert!(cache.get(18, None, c).is_some());
        }
    }

    #[test]
    fn places_left_by_tickets_kept_again_do_not_pile_up() {
        let cache = TicketCache::new(SHARDS * 4 * (300 + ENTRY_OVERHEAD));
        let c = cipher(7, 300);
        for _ in 0..1000 {
            cache.insert(18, None, &c, ticket(1000));
        }
        let shard = cache.shard(usize::from(c[0]) % SHARDS);
        assert_eq!(shard.map.len(), 1);
        assert!(
            shard.order.len() <= 2 * shard.map.len() + 17,
            "{}",
            shard.order.len()
        );
    }

    #[test]
    fn a_kept_pac_is_counted_at_what_it_can_grow_to() {
        let cache = TicketCache::new(1 << 20);
        let mut t = Arc::into_inner(ticket(100)).expect("one owner");
        t.pac = Some(Arc::new(PacIdentity::from_logon_info_raw(
            Some(&[0u8; 1000]),
            true,
        )));
        cache.insert(18, None, &cipher(5, 300), Arc::new(t));
        assert_eq!(cache.stats().bytes, 300 + PAC_WEIGHT * 1000 + ENTRY_OVERHEAD);
    }

    #[test]
    fn a_ticket_over_a_shards_share_or_a_zero_budget_is_not_kept() {
        let cache = TicketCache::new(SHARDS * 1024);
        let c = cipher(3, 2048);
        cache.insert(18, None, &c, ticket(100));
        assert_eq!(cache.stats().entries, 0);
        let off = TicketCache::new(0);
        let c = cipher(4, 64);
        off.insert(18, None, &c, ticket(100));
        assert!(off.get(18, None, &c).is_none());
        assert_eq!(off.stats(), TicketCacheStats::default());
    }
}
