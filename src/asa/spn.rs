//! The SPN plan of an Exchange CAS array (DESIGN.md §1) and the check that a keytab covers it.

use crate::krb::keyset::principal_matches;
use crate::krb::keytab::Keytab;
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
    /// No key under the SPN, but kedge falls back to another principal's key (one ASA key
    /// serves all its SPNs): the ticket decrypts only if that principal is the same account.
    Fallback {
        principal: String,
        kvno: u32,
        enctypes: Vec<String>,
    },
    /// No key at all.
    Missing,
}

/// One row of `kedge spn check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpnCheck {
    /// The SPN with realm.
    pub spn: String,
    /// How it is covered.
    pub coverage: Coverage,
    /// Only rc4-hmac keys (AES missing): works, but legacy.
    pub rc4_only: bool,
}

/// Checks every required SPN of `fqdn` in `realm` against the keytab.
pub fn check(kt: &Keytab, fqdn: &str, realm: &str) -> Vec<SpnCheck> {
    let newest = kt.entries.iter().map(|e| e.kvno).max();
    required_spns(fqdn)
        .into_iter()
        .map(|name| {
            let spn = Principal::parse(&name, realm).unwrap_or_else(|_| Principal {
                name_type: 2,
                components: vec![name.clone()],
                realm: realm.to_string(),
            });
            let exact: Vec<_> = kt
                .entries
                .iter()
                .filter(|e| principal_matches(&e.principal, &spn))
                .collect();
            let etypes_of = |es: &[&crate::krb::keytab::KeytabEntry]| {
                let mut v: Vec<String> = es.iter().map(|e| e.key.etype().name().to_string()).collect();
                v.sort();
                v.dedup();
                v
            };
            let (coverage, enctypes) = if !exact.is_empty() {
                let mut kvnos: Vec<u32> = exact.iter().map(|e| e.kvno).collect();
                kvnos.sort_unstable();
                kvnos.dedup();
                let et = etypes_of(&exact);
                (
                    Coverage::Exact {
                        kvnos,
                        enctypes: et.clone(),
                    },
                    et,
                )
            } else if let Some(kvno) = newest {
                let same: Vec<_> = kt.entries.iter().filter(|e| e.kvno == kvno).collect();
                let et = etypes_of(&same);
                (
                    Coverage::Fallback {
                        principal: same[0].principal.to_string(),
                        kvno,
                        enctypes: et.clone(),
                    },
                    et,
                )
            } else {
                (Coverage::Missing, Vec::new())
            };
            let rc4_only = !enctypes.is_empty() && enctypes.iter().all(|e| e == "arcfour-hmac");
            SpnCheck {
                spn: spn.to_string(),
                coverage,
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

    #[test]
    fn spn_without_its_own_key_is_covered_by_fallback_and_empty_keytab_is_missing() {
        let kt = Keytab {
            entries: vec![
                e(
                    "HTTP/outlook.contoso.com@CONTOSO.COM",
                    3,
                    EncType::Aes256CtsHmacSha196,
                ),
                e("HTTP/outlook.contoso.com@CONTOSO.COM", 3, EncType::Rc4Hmac),
            ],
            skipped_unsupported: 0,
        };
        let rows = check(&kt, "outlook.contoso.com", "CONTOSO.COM");
        assert!(matches!(rows[0].coverage, Coverage::Exact { .. }));
        assert!(matches!(&rows[1].coverage, Coverage::Fallback { kvno: 3, .. }));
        assert!(!rows[0].rc4_only);
        let empty = check(&Keytab::default(), "outlook.contoso.com", "CONTOSO.COM");
        assert!(empty.iter().all(|r| r.coverage == Coverage::Missing));
    }

    #[test]
    fn rc4_only_keys_are_flagged() {
        let kt = Keytab {
            entries: vec![e("http/outlook.contoso.com@CONTOSO.COM", 1, EncType::Rc4Hmac)],
            skipped_unsupported: 0,
        };
        assert!(check(&kt, "outlook.contoso.com", "CONTOSO.COM")[0].rc4_only);
    }
}
