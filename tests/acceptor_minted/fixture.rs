//! The acceptor every case starts from: one AES-256 key of `http/outlook.contoso.com`, kvno 5,
//! a clock fixed at `NOW`, and tokens minted locally with that key.

use std::sync::Arc;
use std::time::Duration;

use kedge::krb::acceptor::{AcceptCtx, Acceptor, AcceptorConfig, Framing};
use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keyset::{KeySet, ServiceKey};
use kedge::krb::mint::MintRequest;
use kedge::krb::principal::Principal;
use kedge::krb::replay::ReplayCache;
use kedge::krb::time::system_time;

pub const NOW: i64 = 1_790_000_000;
pub const REALM: &str = "CONTOSO.COM";

pub fn spn(svc: &str) -> Principal {
    Principal::parse(&format!("{svc}/outlook.contoso.com@{REALM}"), REALM).unwrap()
}

pub fn alice() -> Principal {
    Principal::parse("alice@CONTOSO.COM", REALM).unwrap()
}

pub struct Fixture {
    pub key: Key,
    pub acceptor: Acceptor,
}

pub fn fixture_with(keys: Vec<(Principal, u32, Key)>, cfg: AcceptorConfig) -> Acceptor {
    let sks = keys
        .into_iter()
        .map(|(p, kv, k)| ServiceKey::new(p, kv, k, 0))
        .collect();
    Acceptor::new(
        cfg,
        KeySet::from_keys(sks, system_time(NOW), "test"),
        Arc::new(ReplayCache::new(10_000)),
    )
}

pub fn cfg() -> AcceptorConfig {
    AcceptorConfig {
        realm: Some(REALM.into()),
        hosts: vec!["outlook.contoso.com".into()],
        skew: Duration::from_secs(300),
        ..Default::default()
    }
}

pub fn fixture() -> Fixture {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let acceptor = fixture_with(vec![(spn("http"), 5, key.clone())], cfg());
    Fixture { key, acceptor }
}

pub fn req<'a>(client: &'a Principal, service: &'a Principal, key: &'a Key, kvno: u32) -> MintRequest<'a> {
    MintRequest {
        client,
        service,
        service_key: key,
        kvno,
        now: NOW,
        cusec: 42,
        lifetime: 36_000,
        framing: Framing::Spnego { legacy_oid: false },
        gss_flags: 0x3e,
        channel_binding: None,
        pac: None,
    }
}

pub fn ctx(service: &str) -> AcceptCtx<'_> {
    AcceptCtx {
        now: system_time(NOW),
        service,
        channel_binding: None,
        groups: None,
        check_replay: true,
    }
}
