//! The ASA key set: every key of the keytab with its derived ticket-decryption keys cached,
//! looked up by (principal, enctype, kvno) with the fallbacks DESIGN.md §2 step 2 asks for.
//!
//! An ASA keytab (ktpass, `kedge keytab add`, or `kedge asa roll`) holds the keys of one AD
//! account under one or more SPN names, for several kvnos (Latest, Previous, older). All SPNs of
//! an ASA share one key, so a ticket for `exchangeMDB/…` decrypts with a key stored under
//! `http/…`: lookup therefore prefers the exact principal but falls back to any key of the
//! enctype, like an MIT acceptor iterating its keytab.

use std::time::SystemTime;

use super::crypto::{EncType, Key, UsageKeys};
use super::keytab::Keytab;
use super::principal::Principal;

/// RFC 4120 §7.5.1 key usage of a ticket's enc-part.
pub const USAGE_TICKET: u32 = 2;
/// MS-PAC §2.8 key usage of PAC signatures (KERB_NON_KERB_CKSUM_SALT).
pub const USAGE_PAC_CHECKSUM: u32 = 17;

/// One service key with its cached usage-2 keys.
pub struct ServiceKey {
    /// The principal the keytab filed it under.
    pub principal: Principal,
    /// Key version number.
    pub kvno: u32,
    /// The key (zeroized on drop).
    pub key: Key,
    /// Keytab timestamp of the entry (Unix seconds).
    pub timestamp: u32,
    /// After this time the key no longer decrypts tickets (set on a retired previous kvno).
    pub not_after: Option<SystemTime>,
    ticket_keys: UsageKeys,
    pac_keys: UsageKeys,
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKey")
            .field("principal", &self.principal.to_string())
            .field("kvno", &self.kvno)
            .field("etype", &self.key.etype().name())
            .finish()
    }
}

impl ServiceKey {
    /// Wraps a key, deriving its ticket keys once.
    pub fn new(principal: Principal, kvno: u32, key: Key, timestamp: u32) -> Self {
        let ticket_keys = UsageKeys::new(&key, USAGE_TICKET);
        let pac_keys = UsageKeys::new(&key, USAGE_PAC_CHECKSUM);
        // Derive Kc now rather than on the first PAC.
        let _ = pac_keys.checksum(&[]);
        Self {
            principal,
            kvno,
            key,
            timestamp,
            not_after: None,
            ticket_keys,
            pac_keys,
        }
    }
    /// The cached usage-17 keys for the PAC server signature (MS-PAC §2.8.1).
    pub fn pac_keys(&self) -> &UsageKeys {
        &self.pac_keys
    }
    /// The cached usage-2 (ticket) keys.
    pub fn ticket_keys(&self) -> &UsageKeys {
        &self.ticket_keys
    }
    /// Whether the key may still open tickets at `now` (a retired previous key may not).
    pub fn usable(&self, now: SystemTime) -> bool {
        self.not_after.is_none_or(|t| now <= t)
    }
}

/// One credential generation as the status pages show it (Latest, Previous).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Credential {
    /// Principals holding keys of this kvno.
    pub principals: Vec<String>,
    /// The key version number.
    pub kvno: u32,
    /// Enctype names.
    pub enctypes: Vec<String>,
    /// Keytab timestamp (Unix seconds) of the newest entry of this kvno.
    pub timestamp: u32,
    /// When the key set holding it was loaded (Unix seconds).
    pub loaded_at: i64,
    /// Retirement time (Unix seconds) where set.
    pub not_after: Option<i64>,
}

/// An immutable set of service keys; replaced whole on reload.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<ServiceKey>,
    /// For each key, the index of the first key with the same enctype and bytes: an ASA's one
    /// key filed under several SPN names (or kvnos) is one key to try, not several.
    first_of: Vec<usize>,
    loaded_at: i64,
    source: String,
}

/// [`KeySet::first_of`]: the index of each key's first identical key (compared in constant time).
fn first_of(keys: &[ServiceKey]) -> Vec<usize> {
    use subtle::ConstantTimeEq;
    (0..keys.len())
        .map(|i| {
            let k = &keys[i].key;
            (0..i)
                .find(|&j| {
                    let o = &keys[j].key;
                    o.etype() == k.etype() && bool::from(o.expose_bytes().ct_eq(k.expose_bytes()))
                })
                .unwrap_or(i)
        })
        .collect()
}

impl KeySet {
    /// Builds a key set from a parsed keytab.
    pub fn from_keytab(kt: &Keytab, loaded_at: SystemTime, source: &str) -> Self {
        let keys: Vec<ServiceKey> = kt
            .entries
            .iter()
            .map(|e| ServiceKey::new(e.principal.clone(), e.kvno, e.key.clone(), e.timestamp))
            .collect();
        Self {
            first_of: first_of(&keys),
            keys,
            loaded_at: super::time::unix_secs(loaded_at),
            source: source.to_string(),
        }
    }

    /// Builds a key set from service keys (tests, bench, reload with retirement).
    pub fn from_keys(keys: Vec<ServiceKey>, loaded_at: SystemTime, source: &str) -> Self {
        Self {
            first_of: first_of(&keys),
            keys,
            loaded_at: super::time::unix_secs(loaded_at),
            source: source.to_string(),
        }
    }

    /// Every key.
    pub fn keys(&self) -> &[ServiceKey] {
        &self.keys
    }

    /// Consumes the set, returning its keys.
    pub fn into_keys(self) -> Vec<ServiceKey> {
        self.keys
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Where the keys came from (the keytab path).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// When the set was loaded (Unix seconds).
    pub fn loaded_at(&self) -> i64 {
        self.loaded_at
    }

    /// Distinct kvnos, ascending.
    pub fn kvnos(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.keys.iter().map(|k| k.kvno).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Keys that may have encrypted a ticket for `sname` with `etype` and `kvno`, best first:
    /// exact principal and kvno; same kvno under another principal (one ASA, many SPN names);
    /// then other kvnos of the enctype (a ticket whose kvno the keytab lacks, e.g. AD's kvno after
    /// a reset, or a keytab written with a different kvno). Each distinct key appears once, in
    /// its best place: a junk ticket costs at most one decryption per distinct key.
    pub fn candidates(
        &self,
        sname: &Principal,
        etype: EncType,
        kvno: Option<u32>,
        now: SystemTime,
    ) -> Vec<&ServiceKey> {
        let usable = |i: &usize| self.keys[*i].key.etype() == etype && self.keys[*i].usable(now);
        let same_name = |i: usize| principal_matches(&self.keys[i].principal, sname);
        let kv = |i: usize| self.keys[i].kvno;
        let mut order: Vec<usize> = Vec::with_capacity(4);
        if let Some(v) = kvno {
            let at_kvno = (0..self.keys.len()).filter(usable).filter(|&i| kv(i) == v);
            order.extend(at_kvno.clone().filter(|&i| same_name(i)));
            order.extend(at_kvno.filter(|&i| !same_name(i)));
        }
        // Newest kvno first among the fallbacks.
        let mut rest: Vec<usize> = (0..self.keys.len())
            .filter(usable)
            .filter(|&i| Some(kv(i)) != kvno)
            .collect();
        rest.sort_by_key(|&i| (!same_name(i), std::cmp::Reverse(kv(i))));
        order.extend(rest);
        let mut list: Vec<&ServiceKey> = Vec::with_capacity(order.len());
        let mut tried: Vec<usize> = Vec::with_capacity(order.len());
        for i in order {
            let id = self.first_of.get(i).copied().unwrap_or(i);
            if !tried.contains(&id) {
                tried.push(id);
                list.push(&self.keys[i]);
            }
        }
        list
    }

    /// Whether any usable key of `etype` exists.
    pub fn has_etype(&self, etype: EncType, now: SystemTime) -> bool {
        self.keys.iter().any(|k| k.key.etype() == etype && k.usable(now))
    }

    /// Credential generations, newest kvno first (index 0 = Latest, 1 = Previous, …).
    pub fn credentials(&self) -> Vec<Credential> {
        let mut out: Vec<Credential> = Vec::new();
        for kv in self.kvnos().into_iter().rev() {
            let ks: Vec<&ServiceKey> = self.keys.iter().filter(|k| k.kvno == kv).collect();
            let mut principals: Vec<String> = ks.iter().map(|k| k.principal.to_string()).collect();
            principals.sort();
            principals.dedup();
            let mut enctypes: Vec<String> = ks.iter().map(|k| k.key.etype().name().to_string()).collect();
            enctypes.sort();
            enctypes.dedup();
            out.push(Credential {
                principals,
                kvno: kv,
                enctypes,
                timestamp: ks.iter().map(|k| k.timestamp).max().unwrap_or(0),
                loaded_at: self.loaded_at,
                not_after: ks
                    .iter()
                    .filter_map(|k| k.not_after)
                    .map(super::time::unix_secs)
                    .max(),
            });
        }
        out
    }
}

/// AD compares SPNs case-insensitively (`HTTP/` = `http/`); realms compare case-insensitively here
/// too, since AD realms are the uppercase DNS domain and clients vary.
pub fn principal_matches(a: &Principal, b: &Principal) -> bool {
    a.components.len() == b.components.len()
        && a.components
            .iter()
            .zip(&b.components)
            .all(|(x, y)| x.eq_ignore_ascii_case(y))
        && a.realm.eq_ignore_ascii_case(&b.realm)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    fn p(s: &str) -> Principal {
        Principal::parse(s, "CONTOSO.COM").unwrap()
    }

    /// An ASA keytab as ktpass and `kedge keytab add` write it: the one key of each kvno filed
    /// under every SPN of the array.
    fn asa(latest: &Key, previous: &Key) -> KeySet {
        let spns = ["http", "exchangeMDB", "exchangeRFR", "exchangeAB"];
        let mut keys = Vec::new();
        for (kvno, key) in [(6, latest), (5, previous)] {
            for s in spns {
                keys.push(ServiceKey::new(
                    p(&format!("{s}/outlook.contoso.com")),
                    kvno,
                    key.clone(),
                    0,
                ));
            }
        }
        KeySet::from_keys(keys, NOW, "test")
    }

    #[test]
    fn each_distinct_key_is_a_candidate_once() {
        let (latest, previous) = (
            Key::random(EncType::Aes256CtsHmacSha196),
            Key::random(EncType::Aes256CtsHmacSha196),
        );
        let set = asa(&latest, &previous);
        let http = p("http/outlook.contoso.com");
        // A junk ticket with an unknown kvno: two distinct keys, two decryptions at most.
        let c = set.candidates(&http, EncType::Aes256CtsHmacSha196, Some(99), NOW);
        assert_eq!(c.len(), 2, "not one per SPN name");
        assert_eq!((c[0].kvno, c[1].kvno), (6, 5), "newest first");
        // A ticket at kvno 5 for exchangeMDB: its exact entry first, then the Latest key once.
        let mdb = p("exchangeMDB/outlook.contoso.com");
        let c = set.candidates(&mdb, EncType::Aes256CtsHmacSha196, Some(5), NOW);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].kvno, c[0].principal.name()), (5, mdb.name()));
        assert_eq!(c[1].kvno, 6);
        // Without a kvno: every distinct key once, the ticket's own name first.
        let c = set.candidates(&mdb, EncType::Aes256CtsHmacSha196, None, NOW);
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|k| k.principal.name() == mdb.name()));
    }

    #[test]
    fn one_key_under_two_kvnos_is_tried_once() {
        let key = Key::random(EncType::Aes256CtsHmacSha196);
        let set = asa(&key, &key);
        let c = set.candidates(
            &p("http/outlook.contoso.com"),
            EncType::Aes256CtsHmacSha196,
            Some(6),
            NOW,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kvno, 6);
    }

    #[test]
    fn keys_of_another_enctype_are_not_candidates() {
        let key = Key::random(EncType::Aes256CtsHmacSha196);
        let set = asa(&key, &key);
        let c = set.candidates(
            &p("http/outlook.contoso.com"),
            EncType::Aes128CtsHmacSha196,
            None,
            NOW,
        );
        assert!(c.is_empty());
    }
}
