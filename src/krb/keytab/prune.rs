//! Key housekeeping on a parsed keytab: removing a kvno or a principal, and keeping only the
//! newest kvnos of each principal (what `kedge keytab remove|prune` write back).

use super::{Keytab, KeytabEntry};
use crate::krb::principal::Principal;

/// A group of entries taken out: one principal at one kvno.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The principal.
    pub principal: String,
    /// The kvno.
    pub kvno: u32,
    /// How many entries (one per enctype).
    pub entries: usize,
}

fn record(out: &mut Vec<Removed>, e: &KeytabEntry) {
    let principal = e.principal.to_string();
    match out
        .iter_mut()
        .find(|r| r.principal == principal && r.kvno == e.kvno)
    {
        Some(r) => r.entries += 1,
        None => out.push(Removed {
            principal,
            kvno: e.kvno,
            entries: 1,
        }),
    }
}

impl Keytab {
    /// Removes the entries that match `kvno` (when given) and `principal` (when given; compared
    /// as AD does, case-insensitively). With neither, removes nothing.
    pub fn remove(&mut self, kvno: Option<u32>, principal: Option<&Principal>) -> Vec<Removed> {
        let mut out = Vec::new();
        if kvno.is_none() && principal.is_none() {
            return out;
        }
        self.entries.retain(|e| {
            let hit = kvno.is_none_or(|k| e.kvno == k)
                && principal.is_none_or(|p| crate::krb::keyset::principal_matches(&e.principal, p));
            if hit {
                record(&mut out, e);
            }
            !hit
        });
        out
    }

    /// Keeps the newest `keep` kvnos of each principal (at least one) and removes the rest.
    pub fn prune(&mut self, keep: usize) -> Vec<Removed> {
        let keep = keep.max(1);
        let mut kept: Vec<(String, Vec<u32>)> = Vec::new();
        for e in &self.entries {
            let name = e.principal.canonical();
            match kept.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(e.kvno),
                None => kept.push((name, vec![e.kvno])),
            }
        }
        for (_, v) in &mut kept {
            v.sort_unstable_by(|a, b| b.cmp(a));
            v.dedup();
            v.truncate(keep);
        }
        let mut out = Vec::new();
        self.entries.retain(|e| {
            let name = e.principal.canonical();
            let keepit = kept.iter().any(|(n, v)| *n == name && v.contains(&e.kvno));
            if !keepit {
                record(&mut out, e);
            }
            keepit
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krb::crypto::{EncType, Key};

    fn kt(spec: &[(&str, u32)]) -> Keytab {
        let mut entries = Vec::new();
        for (p, kvno) in spec {
            for et in [EncType::Aes256CtsHmacSha196, EncType::Aes128CtsHmacSha196] {
                entries.push(KeytabEntry {
                    principal: Principal::parse(p, "").unwrap(),
                    timestamp: 0,
                    kvno: *kvno,
                    key: Key::random(et),
                });
            }
        }
        Keytab {
            entries,
            skipped_unsupported: 0,
        }
    }

    fn left(k: &Keytab) -> Vec<(String, u32)> {
        let mut v: Vec<_> = k
            .entries
            .iter()
            .map(|e| (e.principal.to_string(), e.kvno))
            .collect();
        v.dedup();
        v
    }

    #[test]
    fn remove_by_kvno_takes_every_principal_at_that_kvno() {
        let mut k = kt(&[("A$@R", 3), ("http/h@R", 3), ("A$@R", 4)]);
        let r = k.remove(Some(3), None);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].entries, 2);
        assert_eq!(left(&k), [("A$@R".to_string(), 4)]);
        assert!(k.remove(None, None).is_empty(), "nothing without a filter");
    }

    #[test]
    fn remove_by_principal_ignores_case() {
        let mut k = kt(&[("HTTP/h@R", 3), ("A$@R", 3)]);
        let p = Principal::parse("http/H@r", "").unwrap();
        assert_eq!(k.remove(None, Some(&p)).len(), 1);
        assert_eq!(left(&k), [("A$@R".to_string(), 3)]);
    }

    #[test]
    fn prune_keeps_the_newest_kvnos_of_each_principal() {
        let mut k = kt(&[
            ("A$@R", 2),
            ("A$@R", 3),
            ("A$@R", 4),
            ("http/h@R", 4),
            ("old@R", 1),
        ]);
        let r = k.prune(2);
        assert_eq!(
            r,
            [Removed {
                principal: "A$@R".into(),
                kvno: 2,
                entries: 2
            }]
        );
        assert_eq!(
            left(&k),
            [
                ("A$@R".to_string(), 3),
                ("A$@R".to_string(), 4),
                ("http/h@R".to_string(), 4),
                ("old@R".to_string(), 1)
            ]
        );
        assert_eq!(k.prune(0).len(), 1, "keep 0 means keep 1");
    }
}
