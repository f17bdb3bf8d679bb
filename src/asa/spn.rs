//! The SPN plan of an Exchange CAS array (DESIGN.md §1) and the check that a keytab covers it.

use crate::krb::keyset::principal_matches;
use crate::krb::keytab::{Keytab, KeytabEntry};
use crate::krb::principal::Principal;

/// SPN service classes an ASA carries on the array FQDN: HTTP (Outlook Anywhere, MAPI/HTTP,
/// EWS, OAB, Autodiscover), RPC Client Access, Address Book referral, Address Book (NSPI).
pub const ASA_SERVICES: [&str; 4] = ["http", "exchangeMDB", "exchangeRFR", "exchangeAB"];

/// The four SPNs of `fqdn` (`http/outlook.contoso.com`, …), without realm.
pub fn required_spns(fqdn: &str) -> Vec<String> {
    let host = fqdn.trim_end_matches('.').to_ascii_lowercase();
    ASA_SERVICES.iter().map(|s| format!("{s}/{host}")).collect()
}

/// The realm guessed from the array FQDN: its parent domain, uppercase
/// (`outlook.contoso.com` → `CONTOSO.COM`).
pub fn realm_from_fqdn(fqdn: &str) -> String {
    fqdn.trim_end_matches('.')
        .split_once('.')
        .map(|(_, d)| d)
        .unwrap_or(fqdn)
        .to_ascii_uppercase()
}

/// The NetBIOS domain name guessed from the realm (its first label): `CONTOSO.COM` → `CONTOSO`.
pub fn netbios_from_realm(realm: &str) -> String {
    realm.split('.').next().unwrap_or(realm).to_ascii_uppercase()
}

/// How one required SPN is served by a keytab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Keys filed under the SPN itself.
    Exact { kvnos: Vec<u32>, enctypes: Vec<String> },
    /// No key under the SPN, but keys of the same account: filed under the account principal,
    /// or under another SPN on the same host (one ASA key serves all its SPNs).
    SameAccount {
        /// The principal whose keys serve the SPN.
        principal: String,
        /// `account principal` or `SPN on the same host`.
        via: &'static str,
        kvnos: Vec<u32>,
        enctypes: Vec<String>,
    },
    /// Keys exist, but only of principals that are not this account's (another host's SPN,
    /// another account): a ticket for the SPN would not decrypt with them.
    Unrelated { principals: Vec<String> },
    /// No key at all.
    Missing,
}

impl Coverage {
    /// Whether the keytab serves the SPN.
    pub fn is_covered(&self) -> bool {
        matches!(self, Self::Exact { .. } | Self::SameAccount { .. })
    }
}

/// One row of `kedge spn check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpnCheck {
    /// The SPN with realm.
    pub spn: String,
    /// How it is covered.
    pub coverage: Coverage,
    /// The principal whose newest keys serve the SPN (what `--kdc` proves).
    pub served_by: Option<Principal>,
    /// Only rc4-hmac keys (AES missing): works, but legacy.
    pub rc4_only: bool,
}

/// What to check a keytab against.
#[derive(Clone, Debug)]
pub struct CheckInput<'a> {
    /// The array names (several namespaces: HTTP names and the RPC array name).
    pub arrays: &'a [String],
    /// The AD realm.
    pub realm: &'a str,
    /// The ASA's account principal (`EXCH2010ASA$@CONTOSO.COM`), when known. Without it, the
    /// keytab's one single-component principal is taken for it (none or several: no account).
    pub account: Option<&'a Principal>,
}

/// The account principal a check uses: the given one, else the keytab's only single-component
/// principal (`keytab add` always writes one).
pub fn account_of(kt: &Keytab, given: Option<&Principal>) -> Option<Principal> {
    if let Some(p) = given {
        return Some(p.clone());
    }
    let mut singles: Vec<&Principal> = kt
        .entries
        .iter()
        .map(|e| &e.principal)
        .filter(|p| p.components.len() == 1)
        .collect();
    singles.sort_by_key(|p| p.canonical());
    singles.dedup_by_key(|p| p.canonical());
    (singles.len() == 1).then(|| singles[0].clone())
}

fn summary(es: &[&KeytabEntry]) -> (Vec<u32>, Vec<String>) {
    let mut kvnos: Vec<u32> = es.iter().map(|e| e.kvno).collect();
    kvnos.sort_unstable();
    kvnos.dedup();
    let mut et: Vec<String> = es.iter().map(|e| e.key.etype().name().to_string()).collect();
    et.sort();
    et.dedup();
    (kvnos, et)
}

/// Checks every required SPN of every array against the keytab. An SPN is covered only by a key
/// of the same account: filed under the SPN, the account principal, or another SPN on the host.
pub fn check(kt: &Keytab, input: &CheckInput<'_>) -> Vec<SpnCheck> {
    let account = account_of(kt, input.account);
    let mut names: Vec<String> = input.arrays.iter().flat_map(|a| required_spns(a)).collect();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.to_ascii_lowercase()));
    names
        .into_iter()
        .map(|name| {
            let spn = Principal::parse(&name, input.realm).unwrap_or_else(|_| Principal {
                name_type: 2,
                components: vec![name.clone()],
                realm: input.realm.to_string(),
            });
            let host = spn.host().unwrap_or_default().to_string();
            let of = |pred: &dyn Fn(&Principal) -> bool| -> Vec<&KeytabEntry> {
                kt.entries.iter().filter(|e| pred(&e.principal)).collect()
            };
            let exact = of(&|p| principal_matches(p, &spn));
            let by_account = match &account {
                Some(a) => of(&|p| principal_matches(p, a)),
                None => Vec::new(),
            };
            let sibling = of(&|p| {
                p.host().is_some_and(|h| h.eq_ignore_ascii_case(&host))
                    && p.realm.eq_ignore_ascii_case(&spn.realm)
            });
            let (coverage, served_by, enctypes) = if !exact.is_empty() {
                let (kvnos, et) = summary(&exact);
                (
                    Coverage::Exact {
                        kvnos,
                        enctypes: et.clone(),
                    },
                    Some(spn.clone()),
                    et,
                )
            } else if let Some((via, es)) = [
                ("account principal", by_account),
                ("SPN on the same host", sibling),
            ]
            .into_iter()
            .find(|(_, es)| !es.is_empty())
            {
                let newest = es.iter().max_by_key(|e| e.kvno).expect("not empty");
                let principal = newest.principal.clone();
                let mine: Vec<&KeytabEntry> =
                    es.iter().copied().filter(|e| e.principal == principal).collect();
                let (kvnos, et) = summary(&mine);
                (
                    Coverage::SameAccount {
                        principal: principal.to_string(),
                        via,
                        kvnos,
                        enctypes: et.clone(),
                    },
                    Some(principal),
                    et,
                )
            } else if kt.entries.is_empty() {
                (Coverage::Missing, None, Vec::new())
            } else {
                let mut principals: Vec<String> =
                    kt.entries.iter().map(|e| e.principal.to_string()).collect();
                principals.sort();
                principals.dedup();
                (Coverage::Unrelated { principals }, None, Vec::new())
            };
            let rc4_only = !enctypes.is_empty() && enctypes.iter().all(|e| e == "arcfour-hmac");
            SpnCheck {
                spn: spn.to_string(),
                coverage,
                served_by,
                rc4_only,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krb::crypto::{EncType, Key};
    use crate::krb::keytab::KeytabEntry;

    fn e(p: &str, kvno: u32, et: EncType) -> KeytabEntry {
        KeytabEntry {
            principal: Principal::parse(p, "").unwrap(),
            timestamp: 0,
            kvno,
            key: Key::random(et),
        }
    }

    #[test]
    fn realm_and_domain_are_guessed_from_the_array_name() {
        assert_eq!(realm_from_fqdn("outlook.contoso.com"), "CONTOSO.COM");
        assert_eq!(netbios_from_realm("CONTOSO.COM"), "CONTOSO");
        assert_eq!(
            required_spns("Outlook.Contoso.com")[1],
            "exchangeMDB/outlook.contoso.com"
        );
    }

    fn kt(entries: Vec<KeytabEntry>) -> Keytab {
        Keytab {
            entries,
            skipped_unsupported: 0,
        }
    }

    fn run(kt: &Keytab, arrays: &[&str], account: Option<&str>) -> Vec<SpnCheck> {
        let arrays: Vec<String> = arrays.iter().map(|s| s.to_string()).collect();
        let account = account.map(|a| Principal::parse(a, "").unwrap());
        check(
            kt,
            &CheckInput {
                arrays: &arrays,
                realm: "CONTOSO.COM",
                account: account.as_ref(),
            },
        )
    }

    const AES: EncType = EncType::Aes256CtsHmacSha196;

    #[test]
    fn spn_without_its_own_key_is_covered_by_a_sibling_spn_and_empty_keytab_is_missing() {
        let k = kt(vec![
            e("HTTP/outlook.contoso.com@CONTOSO.COM", 3, AES),
            e("HTTP/outlook.contoso.com@CONTOSO.COM", 3, EncType::Rc4Hmac),
        ]);
        let rows = run(&k, &["outlook.contoso.com"], None);
        assert!(matches!(rows[0].coverage, Coverage::Exact { .. }));
        assert!(matches!(
            &rows[1].coverage,
            Coverage::SameAccount {
                via: "SPN on the same host",
                ..
            }
        ));
        assert!(rows.iter().all(|r| r.coverage.is_covered()));
        assert!(!rows[0].rc4_only);
        let empty = run(&Keytab::default(), &["outlook.contoso.com"], None);
        assert!(empty.iter().all(|r| r.coverage == Coverage::Missing));
    }

    #[test]
    fn key_of_another_host_does_not_cover_the_array() {
        let k = kt(vec![e("http/mail.fabrikam.com@CONTOSO.COM", 2, AES)]);
        let rows = run(&k, &["outlook.contoso.com"], None);
        assert_eq!(rows.len(), 4);
        for r in &rows {
            assert_eq!(
                r.coverage,
                Coverage::Unrelated {
                    principals: vec!["http/mail.fabrikam.com@CONTOSO.COM".into()]
                }
            );
            assert!(!r.coverage.is_covered());
        }
    }

    #[test]
    fn account_principal_covers_every_namespace() {
        let k = kt(vec![
            e("EXCHASA$@CONTOSO.COM", 4, AES),
            e("EXCHASA$@CONTOSO.COM", 5, AES),
        ]);
        let rows = run(&k, &["outlook.contoso.com", "mail.contoso.com"], None);
        assert_eq!(rows.len(), 8);
        for r in &rows {
            assert!(
                matches!(&r.coverage, Coverage::SameAccount { via: "account principal", kvnos, .. } if kvnos == &[4, 5]),
                "{r:?}"
            );
            assert_eq!(r.served_by.as_ref().unwrap().to_string(), "EXCHASA$@CONTOSO.COM");
        }
        // Another account named on the command line: the keytab's account does not count.
        let rows = run(&k, &["outlook.contoso.com"], Some("OTHERASA$@CONTOSO.COM"));
        assert!(rows
            .iter()
            .all(|r| matches!(r.coverage, Coverage::Unrelated { .. })));
    }

    #[test]
    fn rc4_only_keys_are_flagged() {
        let kt = Keytab {
            entries: vec![e("http/outlook.contoso.com@CONTOSO.COM", 1, EncType::Rc4Hmac)],
            skipped_unsupported: 0,
        };
        assert!(run(&kt, &["outlook.contoso.com"], None)[0].rc4_only);
    }
}
