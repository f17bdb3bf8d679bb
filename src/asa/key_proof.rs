//! Proving keytab keys against the KDC: an AS exchange (RFC 4120 §3.1, PA-ENC-TIMESTAMP when the
//! KDC asks for it) as the principal the keys are filed under, with its newest keys. The KDC
//! answers only if the keys are the account's current ones, so this is what `kedge spn check
//! --kdc`, `kedge asa roll prepare` and `commit` use to tell a good keytab from a stale one.

use std::time::{Duration, SystemTime};

use super::kdc_io::{self, KdcIoError};
use crate::krb::crypto::{EncType, Key};
use crate::krb::kdc_client::as_req::{AsError, AsExchange, AsStep, AsTicket};
use crate::krb::keyset::principal_matches;
use crate::krb::keytab::{Keytab, KeytabEntry};
use crate::krb::principal::Principal;

/// Why a key could not be proven. No variant carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The keytab has nothing under the principal.
    #[error("the keytab holds no key for {0}")]
    NoKeys(String),
    /// The KDC refused (wrong or stale key, unknown principal, …).
    #[error(transparent)]
    As(#[from] AsError),
    /// Network.
    #[error(transparent)]
    Io(#[from] KdcIoError),
}

/// Strongest first: the KDC picks from our list in order.
pub fn strength(e: EncType) -> u8 {
    match e {
        EncType::Aes256CtsHmacSha384192 => 0,
        EncType::Aes256CtsHmacSha196 => 1,
        EncType::Aes128CtsHmacSha256128 => 2,
        EncType::Aes128CtsHmacSha196 => 3,
        EncType::Rc4Hmac => 4,
    }
}

/// The entries of `principal` at its highest kvno, one per enctype, strongest first.
pub fn newest_entries<'a>(kt: &'a Keytab, principal: &Principal) -> Vec<&'a KeytabEntry> {
    let mine = |e: &&KeytabEntry| principal_matches(&e.principal, principal);
    let Some(kvno) = kt.entries.iter().filter(mine).map(|e| e.kvno).max() else {
        return Vec::new();
    };
    let mut es: Vec<&KeytabEntry> = kt
        .entries
        .iter()
        .filter(mine)
        .filter(|e| e.kvno == kvno)
        .collect();
    es.sort_by_key(|e| strength(e.key.etype()));
    es.dedup_by_key(|e| e.key.etype());
    es
}

/// One AS exchange for `client` to `server` with `keys`, through the KDC at `kdc` (`host:port`).
pub async fn as_exchange(
    kdc: &str,
    client: &Principal,
    server: Principal,
    keys: Vec<Key>,
    timeout: Duration,
) -> Result<AsTicket, ProofError> {
    let mut ex = AsExchange::new(client.clone(), server, keys, rand::random());
    let mut msg = ex.first_request(SystemTime::now());
    for _ in 0..3 {
        let (reply, _) = kdc_io::exchange(kdc, &msg, timeout).await?;
        match ex.handle_reply(&reply, SystemTime::now())? {
            AsStep::Retry(m) => msg = m,
            AsStep::Done(t) => return Ok(*t),
        }
    }
    Err(AsError::PreauthLoop.into())
}

/// What a successful proof showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The kvno of the keys proven (the keytab's newest for the principal).
    pub kvno: u32,
    /// The kvno the KDC stamped on its reply, when it did (AD does).
    pub kdc_kvno: Option<u32>,
    /// The enctype the KDC answered in.
    pub etype: &'static str,
    /// Whether PA-ENC-TIMESTAMP was needed.
    pub preauthenticated: bool,
}

/// Proves the newest keys the keytab holds for `principal` with an AS exchange for
/// `krbtgt/REALM` as `client`: the principal itself, or — for keys filed under an SPN — the
/// account that holds the SPN (Active Directory answers an AS-REQ naming an SPN as the client
/// with KDC_ERR_C_PRINCIPAL_UNKNOWN; the keys under the SPN are the account's).
pub async fn prove(
    kdc: &str,
    kt: &Keytab,
    principal: &Principal,
    client: &Principal,
    timeout: Duration,
) -> Result<Proof, ProofError> {
    let es = newest_entries(kt, principal);
    let Some(first) = es.first() else {
        return Err(ProofError::NoKeys(principal.to_string()));
    };
    let kvno = first.kvno;
    let keys = es.iter().map(|e| e.key.clone()).collect();
    let tgs = Principal {
        name_type: crate::krb::kdc_client::NT_SRV_INST,
        components: vec!["krbtgt".into(), principal.realm.to_ascii_uppercase()],
        realm: principal.realm.to_ascii_uppercase(),
    };
    let t = as_exchange(kdc, client, tgs, keys, timeout).await?;
    Ok(Proof {
        kvno,
        kdc_kvno: t.reply_kvno,
        etype: t.reply_etype.name(),
        preauthenticated: t.preauthenticated,
    })
}
