//! The service key to mint with: the ASA key for an SPN, picked out of an MIT keytab.
//!
//! An ASA keytab files one key under several SPNs (and kvnos); all SPNs of an ASA share it, so
//! when the SPN asked for has no entry of its own, any entry of the same realm will do — the same
//! fallback the acceptor applies (`krb::keyset`).

use std::path::Path;

use crate::krb::crypto::{EncType, Key};
use crate::krb::keytab::{Keytab, KeytabEntry};
use crate::krb::principal::Principal;

use super::BenchError;

/// Enctypes in order of preference when none is asked for (what an AD KDC picks for an ASA).
const PREFERENCE: [EncType; 5] = [
    EncType::Aes256CtsHmacSha196,
    EncType::Aes128CtsHmacSha196,
    EncType::Aes256CtsHmacSha384192,
    EncType::Aes128CtsHmacSha256128,
    EncType::Rc4Hmac,
];

/// A service principal with the key (and kvno) tickets for it are minted in.
#[derive(Clone, Debug)]
pub struct ServiceCredential {
    /// The SPN tickets are issued for.
    pub spn: Principal,
    /// The key (zeroized on drop).
    pub key: Key,
    /// The kvno stamped on tickets.
    pub kvno: u32,
    /// The keytab principal the key was filed under (differs from `spn` on fallback).
    pub filed_under: Principal,
}

/// Parses `spn` (`http/outlook.contoso.com@CONTOSO.COM`); it must name a realm and have the
/// `service/host` shape.
pub fn parse_spn(spn: &str) -> Result<Principal, BenchError> {
    let p = Principal::parse(spn, "").map_err(|e| BenchError::Principal {
        name: spn.into(),
        msg: e.to_string(),
    })?;
    if p.realm.is_empty() || p.service().is_none() {
        return Err(BenchError::Principal {
            name: spn.into(),
            msg: "want service/host@REALM".into(),
        });
    }
    Ok(p)
}

fn same_principal(a: &Principal, b: &Principal) -> bool {
    a.realm == b.realm
        && a.components.len() == b.components.len()
        && a.components
            .iter()
            .zip(&b.components)
            .all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Reads `path` and picks the key for `spn` (see [`select`]).
pub fn load(
    path: &Path,
    spn: &Principal,
    kvno: Option<u32>,
    etype: Option<EncType>,
) -> Result<ServiceCredential, BenchError> {
    let bytes = std::fs::read(path).map_err(|e| BenchError::Keytab {
        path: path.into(),
        msg: e.to_string(),
    })?;
    let kt = Keytab::parse(&bytes).map_err(|e| BenchError::Keytab {
        path: path.into(),
        msg: e.to_string(),
    })?;
    select(&kt, spn, kvno, etype)
}

/// Picks the key for `spn`: entries filed under the SPN itself (service and host compared
/// case-insensitively, as AD does), else any entry of the SPN's realm; then the kvno asked for
/// (default: the highest), then the enctype asked for (default: aes256 first).
pub fn select(
    kt: &Keytab,
    spn: &Principal,
    kvno: Option<u32>,
    etype: Option<EncType>,
) -> Result<ServiceCredential, BenchError> {
    let own: Vec<&KeytabEntry> = kt
        .entries
        .iter()
        .filter(|e| same_principal(&e.principal, spn))
        .collect();
    let pool: Vec<&KeytabEntry> = if own.is_empty() {
        kt.entries
            .iter()
            .filter(|e| e.principal.realm == spn.realm)
            .collect()
    } else {
        own
    };
    let no_key = |detail: String| BenchError::NoKey {
        spn: spn.to_string(),
        detail,
    };
    if pool.is_empty() {
        return Err(no_key(format!(" (nor any key of realm {})", spn.realm)));
    }
    let want_kvno = match kvno {
        Some(k) => k,
        None => pool.iter().map(|e| e.kvno).max().unwrap_or(0),
    };
    let at_kvno: Vec<&KeytabEntry> = pool.into_iter().filter(|e| e.kvno == want_kvno).collect();
    if at_kvno.is_empty() {
        return Err(no_key(format!(" at kvno {want_kvno}")));
    }
    let order: Vec<EncType> = match etype {
        Some(t) => vec![t],
        None => PREFERENCE.to_vec(),
    };
    let entry = order
        .iter()
        .find_map(|t| at_kvno.iter().find(|e| e.key.etype() == *t))
        .ok_or_else(|| {
            no_key(format!(
                " at kvno {want_kvno} with enctype {:?}",
                etype.map(|t| t.name())
            ))
        })?;
    Ok(ServiceCredential {
        spn: spn.clone(),
        key: entry.key.clone(),
        kvno: entry.kvno,
        filed_under: entry.principal.clone(),
    })
}
