//! Which kvnos kedge has seen and when, and the Latest/Previous policy built on it. Pure: the
//! time comes in as an argument.
//!
//! Policy (Exchange's Latest and Previous credentials):
//! - Every key in the keytab file is loaded. A key whose principal also has a newer kvno stays
//!   valid until `retire` after that newer kvno was first seen (`ServiceKey::not_after`), then
//!   stops decrypting tickets (and is left out of the next reload).
//! - A roll keeps the previous key even when the new file lacks it: if the newest kvno of a
//!   principal in the file is newer than the newest kvno loaded before, and the file dropped
//!   that previous kvno, its keys are carried over (as Previous) until their retirement.
//!   This covers tools that write only the new key (ktpass `/out`, a Secret replaced whole).
//! - Any other kvno missing from the file is dropped at once (the file is the truth; to revoke
//!   a key now, remove it and restart, or set `previous_key_retire_secs = 0`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::credentials::{Credential, CredentialStatus};
use crate::krb::keyset::{KeySet, ServiceKey};
use crate::krb::keytab::Keytab;
use crate::krb::time::unix_secs;

/// First-seen times per (principal, kvno), and the retirement delay.
#[derive(Clone, Debug)]
pub struct CredentialHistory {
    first_seen: BTreeMap<(String, u32), SystemTime>,
    retire: Duration,
}

fn pkey(k: &ServiceKey) -> String {
    k.principal.to_string().to_ascii_lowercase()
}

impl CredentialHistory {
    /// An empty history; older kvnos retire `retire` after a newer one is first seen.
    pub fn new(retire: Duration) -> Self {
        Self {
            first_seen: BTreeMap::new(),
            retire,
        }
    }

    /// The key set for a newly read keytab, given the set loaded so far: records first-seen
    /// times, carries the previous Latest over where the file dropped it, sets retirement
    /// times and leaves out keys already retired.
    pub fn merge(&mut self, kt: &Keytab, current: &KeySet, now: SystemTime, source: &str) -> KeySet {
        let mut keys: Vec<ServiceKey> = kt
            .entries
            .iter()
            .map(|e| ServiceKey::new(e.principal.clone(), e.kvno, e.key.clone(), e.timestamp))
            .collect();
        let newest_in = |ks: &[ServiceKey], p: &str| ks.iter().filter(|k| pkey(k) == p).map(|k| k.kvno).max();
        // Carry over the previous Latest of each principal whose kvno moved up without it.
        let mut carried = Vec::new();
        let mut principals: Vec<String> = current.keys().iter().map(pkey).collect();
        principals.sort();
        principals.dedup();
        for p in principals {
            let (Some(old), Some(new)) = (newest_in(current.keys(), &p), newest_in(&keys, &p)) else {
                continue;
            };
            let in_file = keys.iter().any(|k| pkey(k) == p && k.kvno == old);
            if new > old && !in_file {
                for k in current.keys().iter().filter(|k| pkey(k) == p && k.kvno == old) {
                    carried.push(ServiceKey::new(
                        k.principal.clone(),
                        k.kvno,
                        k.key.clone(),
                        k.timestamp,
                    ));
                }
            }
        }
        keys.extend(carried);
        for k in &keys {
            self.first_seen.entry((pkey(k), k.kvno)).or_insert(now);
        }
        // Retirement: `retire` after the next newer kvno of the same principal was first seen.
        let snapshot: Vec<(String, u32)> = keys.iter().map(|k| (pkey(k), k.kvno)).collect();
        for k in &mut keys {
            let p = pkey(k);
            let newer = snapshot
                .iter()
                .filter(|(q, v)| *q == p && *v > k.kvno)
                .map(|(_, v)| *v)
                .min();
            k.not_after = newer
                .and_then(|v| self.first_seen.get(&(p.clone(), v)))
                .map(|t| *t + self.retire);
        }
        keys.retain(|k| k.not_after.is_none_or(|t| now <= t));
        let live: std::collections::BTreeSet<(String, u32)> =
            keys.iter().map(|k| (pkey(k), k.kvno)).collect();
        self.first_seen.retain(|k, _| live.contains(k));
        KeySet::from_keys(keys, now, source)
    }

    /// When kvno `kvno` was first loaded (earliest over its principals).
    pub fn loaded_at(&self, kvno: u32) -> Option<SystemTime> {
        self.first_seen
            .iter()
            .filter(|((_, v), _)| *v == kvno)
            .map(|(_, t)| *t)
            .min()
    }

    /// Latest and Previous credentials of `keys` in the `/status` model, with the time each
    /// kvno was first loaded.
    pub fn credential_status(&self, keys: &KeySet) -> (Option<Credential>, Option<Credential>) {
        let mut creds = keys.credentials().into_iter().map(|c| Credential {
            principal: c.principals.join(", "),
            kvno: c.kvno,
            enctypes: c.enctypes,
            loaded_at: self
                .loaded_at(c.kvno)
                .map(|t| unix_secs(t).max(0) as u64)
                .unwrap_or(c.loaded_at.max(0) as u64),
        });
        (creds.next(), creds.next())
    }

    /// [`Self::credential_status`] as the admin status struct.
    pub fn status(&self, keys: &KeySet) -> CredentialStatus {
        let (latest, previous) = self.credential_status(keys);
        CredentialStatus { latest, previous }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krb::crypto::{EncType, Key};
    use crate::krb::keytab::KeytabEntry;
    use crate::krb::principal::Principal;

    fn entry(p: &str, kvno: u32) -> KeytabEntry {
        KeytabEntry {
            principal: Principal::parse(p, "").unwrap(),
            timestamp: 0,
            kvno,
            key: Key::random(EncType::Aes256CtsHmacSha196),
        }
    }
    fn kt(entries: Vec<KeytabEntry>) -> Keytab {
        Keytab {
            entries,
            skipped_unsupported: 0,
        }
    }
    const HTTP: &str = "http/outlook.contoso.com@CONTOSO.COM";
    const MDB: &str = "exchangeMDB/outlook.contoso.com@CONTOSO.COM";
    fn t(s: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    #[test]
    fn previous_kvno_retires_after_the_delay_from_when_the_newer_was_first_seen() {
        let mut h = CredentialHistory::new(Duration::from_secs(100));
        let one = kt(vec![entry(HTTP, 5)]);
        let ks = h.merge(&one, &KeySet::default(), t(0), "f");
        let both = kt(vec![one.entries[0].clone(), entry(HTTP, 6)]);
        let ks = h.merge(&both, &ks, t(10), "f");
        let old = ks.keys().iter().find(|k| k.kvno == 5).unwrap();
        assert_eq!(old.not_after, Some(t(110)));
        assert!(ks
            .keys()
            .iter()
            .find(|k| k.kvno == 6)
            .unwrap()
            .not_after
            .is_none());
        // A later reload of the same file keeps the first-seen time of kvno 6.
        let ks = h.merge(&both, &ks, t(50), "f");
        assert_eq!(
            ks.keys().iter().find(|k| k.kvno == 5).unwrap().not_after,
            Some(t(110))
        );
        let (latest, previous) = h.credential_status(&ks);
        assert_eq!(latest.unwrap().kvno, 6);
        assert_eq!(previous.unwrap().loaded_at, unix_secs(t(0)) as u64);
        // After retirement the old key is left out.
        let ks = h.merge(&both, &ks, t(111), "f");
        assert_eq!(ks.kvnos(), vec![6]);
    }

    #[test]
    fn previous_latest_is_carried_over_when_the_new_file_holds_only_the_new_kvno() {
        let mut h = CredentialHistory::new(Duration::from_secs(100));
        let ks = h.merge(&kt(vec![entry(HTTP, 5)]), &KeySet::default(), t(0), "f");
        let ks = h.merge(&kt(vec![entry(HTTP, 6)]), &ks, t(1), "f");
        assert_eq!(ks.kvnos(), vec![5, 6]);
        // A file that drops a kvno without bringing a newer one is the truth.
        let ks = h.merge(&kt(vec![entry(HTTP, 5)]), &ks, t(2), "f");
        assert_eq!(ks.kvnos(), vec![5]);
    }

    #[test]
    fn principals_with_their_own_kvnos_do_not_retire_each_other() {
        let mut h = CredentialHistory::new(Duration::from_secs(100));
        let ks = h.merge(
            &kt(vec![entry(HTTP, 2), entry(MDB, 1)]),
            &KeySet::default(),
            t(0),
            "f",
        );
        assert!(ks.keys().iter().all(|k| k.not_after.is_none()));
    }
}
