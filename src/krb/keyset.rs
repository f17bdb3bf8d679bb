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
    fn usable(&self, now: SystemTime) -> bool {
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
    loaded_at: i64,
    source: String,
}

impl KeySet {
    /// Builds a key set from a parsed keytab.
    pub fn from_keytab(kt: &Keytab, loaded_at: SystemTime, source: &str) -> Self {
        let keys = kt
            .entries
            .iter()
            .map(|e| ServiceKey::new(e.principal.clone(), e.kvno, e.key.clone(), e.timestamp))
            .collect();
        Self {
            keys,
            loaded_at: super::time::unix_secs(loaded_at),
            source: source.to_string(),
        }
    }

    /// Builds a key set from service keys (tests, bench, reload with retirement).
    pub fn from_keys(keys: Vec<ServiceKey>, loaded_at: SystemTime, source: &str) -> Self {
        Self {
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
    /// a reset, or a keytab written with a different kvno).
    pub fn candidates(
        &self,
        sname: &Principal,
        etype: EncType,
        kvno: Option<u32>,
        now: SystemTime,
    ) -> Vec<&ServiceKey> {
        let mut list: Vec<&ServiceKey> = Vec::with_capacity(4);
        let usable = |k: &&ServiceKey| k.key.etype() == etype && k.usable(now);
        let same_name = |k: &ServiceKey| principal_matches(&k.principal, sname);
        if let Some(v) = kvno {
            list.extend(
                self.keys
                    .iter()
                    .filter(usable)
                    .filter(|k| k.kvno == v && same_name(k)),
            );
            list.extend(
                self.keys
                    .iter()
                    .filter(usable)
                    .filter(|k| k.kvno == v && !same_name(k)),
            );
        }
        // Newest kvno first among the fallbacks.
        let mut rest: Vec<&ServiceKey> = self
            .keys
            .iter()
            .filter(usable)
            .filter(|k| Some(k.kvno) != kvno)
            .collect();
        rest.sort_by_key(|k| (!same_name(k), std::cmp::Reverse(k.kvno)));
        list.extend(rest);
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
