//! A ticket opened once is kept for the client's next AP-REQ around it; everything bound to
//! the time or the request is still checked on every token, and nothing a client makes up
//! without the service key is ever kept.

use std::sync::Arc;

use kedge::krb::acceptor::{AcceptCtx, AcceptorConfig, GroupRules};
use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keyset::{KeySet, ServiceKey};
use kedge::krb::mint::{mint, verify_response, MintRequest, Minted};
use kedge::krb::pac::{PacBuilder, Sid};
use kedge::krb::principal::Principal;
use kedge::krb::time::system_time;

use super::fixture::*;

const DOMAIN: &str = "S-1-5-21-1004336348-1177238915-682003330";

/// A ticket for alice to `http/` under the fixture's key, with a PAC holding `groups` (signed
/// with `pac_key`; the service key for a valid one).
fn ticket_with_pac(f: &Fixture, pac_key: &Key, groups: &[u32]) -> Minted {
    let domain: Sid = DOMAIN.parse().unwrap();
    let mut b = PacBuilder::new("alice", domain, 1104).logon_time(NOW);
    for g in groups {
        b = b.group(*g, 7);
    }
    let pac = b
        .build(pac_key, &Key::random(EncType::Aes256CtsHmacSha196))
        .unwrap();
    let (c, s) = (alice(), spn("http"));
    mint(&MintRequest {
        pac: Some(pac),
        ..req(&c, &s, &f.key, 5)
    })
}

/// The next token around `t`: a new authenticator at `now` with `cusec`.
fn again(f: &Fixture, t: &Minted, now: i64, cusec: u32) -> Vec<u8> {
    let (c, s) = (alice(), spn("http"));
    t.again(&MintRequest {
        now,
        cusec,
        ..req(&c, &s, &f.key, 5)
    })
}

fn at(now: i64) -> AcceptCtx<'static> {
    AcceptCtx {
        now: system_time(now),
        ..ctx("http")
    }
}

#[test]
fn the_next_token_around_a_ticket_is_accepted_from_the_kept_ticket() {
    let f = fixture();
    let t = ticket_with_pac(&f, &f.key, &[512, 1601]);
    let first = f.acceptor.accept(&t.token, &ctx("http")).unwrap();
    let second = f
        .acceptor
        .accept(&again(&f, &t, NOW + 1, 7), &at(NOW + 1))
        .unwrap();
    let stats = f.acceptor.ticket_cache_stats();
    assert_eq!((stats.entries, stats.hits, stats.misses), (1, 1, 1));
    assert_eq!(second.client, first.client);
    assert_eq!(second.kvno, 5);
    let (a, b) = (first.pac.clone().unwrap(), second.pac.clone().unwrap());
    assert!(Arc::ptr_eq(&a, &b), "one verified PAC, shared");
    assert!(b.server_signature_verified);
    assert!(b.group_sids_joined().contains(&format!("{DOMAIN}-1601")));
    // The AP-REP of the kept ticket still completes the client's mutual authentication.
    let rep = second.response_token().expect("mutual");
    assert_eq!(verify_response(&rep, &t.session_key).unwrap(), NOW + 1);
}

#[test]
fn a_kept_ticket_is_refused_once_it_has_expired() {
    let f = fixture();
    let t = ticket_with_pac(&f, &f.key, &[]);
    f.acceptor.accept(&t.token, &ctx("http")).unwrap();
    // req() tickets live 36,000 s; past that and the 300 s skew it is refused, kept or not.
    let late = NOW + 36_000 + 301;
    let e = f.acceptor.accept(&again(&f, &t, late, 1), &at(late)).unwrap_err();
    assert_eq!(e.reason(), "KRB_AP_ERR_TKT_EXPIRED", "{e}");
    assert_eq!(
        f.acceptor.ticket_cache_stats().hits,
        1,
        "found, then refused by time"
    );
}

#[test]
fn replays_and_tampered_authenticators_around_a_kept_ticket_are_refused() {
    let f = fixture();
    let t = ticket_with_pac(&f, &f.key, &[]);
    f.acceptor.accept(&t.token, &ctx("http")).unwrap();
    let e = f.acceptor.accept(&t.token, &ctx("http")).unwrap_err();
    assert_eq!(e.reason(), "KRB_AP_ERR_REPEAT", "{e}");
    let mut bad = again(&f, &t, NOW, 9);
    let last = bad.len() - 1;
    bad[last] ^= 1; // the authenticator's HMAC
    let e = f.acceptor.accept(&bad, &ctx("http")).unwrap_err();
    assert_eq!(e.reason(), "KRB_AP_ERR_MODIFIED", "{e}");
    // An authenticator of another client around alice's ticket (RFC 4120 §3.2.3).
    let (mallory, s) = (
        Principal::parse("mallory@CONTOSO.COM", REALM).unwrap(),
        spn("http"),
    );
    let forged = t.again(&MintRequest {
        cusec: 10,
        ..req(&mallory, &s, &f.key, 5)
    });
    let e = f.acceptor.accept(&forged, &ctx("http")).unwrap_err();
    assert_eq!(e.reason(), "KRB_AP_ERR_BADMATCH", "{e}");
    assert_eq!(f.acceptor.ticket_cache_stats().hits, 3);
}

#[test]
fn group_rules_are_applied_to_every_token_of_a_kept_ticket() {
    let f = fixture();
    let t = ticket_with_pac(&f, &f.key, &[1601]);
    f.acceptor.accept(&t.token, &ctx("http")).unwrap();
    let rules = GroupRules {
        allow: vec![],
        deny: vec![format!("{DOMAIN}-1601")],
    };
    let denied = AcceptCtx {
        groups: Some(&rules),
        ..ctx("http")
    };
    let e = f.acceptor.accept(&again(&f, &t, NOW, 2), &denied).unwrap_err();
    assert_eq!(e.reason(), "group_denied", "{e}");
    assert_eq!(f.acceptor.ticket_cache_stats().hits, 1);
}

#[test]
fn a_ticket_whose_pac_does_not_verify_is_never_kept() {
    let f = fixture();
    let forged = Key::random(EncType::Aes256CtsHmacSha196);
    let t = ticket_with_pac(&f, &forged, &[512]);
    for cusec in [1, 2] {
        let e = f
            .acceptor
            .accept(&again(&f, &t, NOW, cusec), &ctx("http"))
            .unwrap_err();
        assert_eq!(e.reason(), "pac_invalid", "{e}");
    }
    let stats = f.acceptor.ticket_cache_stats();
    assert_eq!((stats.entries, stats.hits, stats.misses), (0, 0, 2));
}

#[test]
fn a_keytab_reload_drops_what_was_opened_with_the_old_keys() {
    let f = fixture();
    let t = ticket_with_pac(&f, &f.key, &[]);
    f.acceptor.accept(&t.token, &ctx("http")).unwrap();
    // The ASA password was reset and kvno 5 is gone from the new keytab.
    let new_key = Key::random(EncType::Aes256CtsHmacSha196);
    f.acceptor.set_keys(KeySet::from_keys(
        vec![ServiceKey::new(spn("http"), 6, new_key, 0)],
        system_time(NOW),
        "reloaded",
    ));
    let e = f
        .acceptor
        .accept(&again(&f, &t, NOW, 3), &ctx("http"))
        .unwrap_err();
    assert_eq!(e.reason(), "KRB_AP_ERR_BADKEYVER", "{e}");
    let stats = f.acceptor.ticket_cache_stats();
    assert_eq!(
        (stats.entries, stats.hits, stats.misses),
        (0, 0, 2),
        "a new key set starts empty"
    );
}

#[test]
fn a_kept_ticket_of_a_retired_key_is_refused() {
    // kvno 5 retires (one hour after kvno 6 was loaded); its kept tickets go with it.
    let old = Key::random(EncType::Aes256CtsHmacSha196);
    let mut retiring = ServiceKey::new(spn("http"), 5, old.clone(), 0);
    retiring.not_after = Some(system_time(NOW + 3600));
    let sks = vec![
        retiring,
        ServiceKey::new(spn("http"), 6, Key::random(EncType::Aes256CtsHmacSha196), 0),
    ];
    let f = Fixture {
        acceptor: kedge::krb::acceptor::Acceptor::new(
            cfg(),
            KeySet::from_keys(sks, system_time(NOW), "test"),
            Arc::new(kedge::krb::replay::ReplayCache::new(1000)),
        ),
        key: old,
    };
    let t = ticket_with_pac(&f, &f.key, &[]);
    f.acceptor.accept(&t.token, &ctx("http")).unwrap();
    let later = NOW + 3601;
    let e = f
        .acceptor
        .accept(&again(&f, &t, later, 4), &at(later))
        .unwrap_err();
    assert!(
        matches!(e.reason(), "KRB_AP_ERR_MODIFIED" | "KRB_AP_ERR_BADKEYVER"),
        "{e}"
    );
}

#[test]
fn with_no_budget_nothing_is_kept() {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let f = Fixture {
        acceptor: fixture_with(
            vec![(spn("http"), 5, key.clone())],
            AcceptorConfig {
                ticket_cache_bytes: 0,
                ..cfg()
            },
        ),
        key,
    };
    let t = ticket_with_pac(&f, &f.key, &[]);
    f.acceptor.accept(&t.token, &ctx("http")).unwrap();
    f.acceptor.accept(&again(&f, &t, NOW, 5), &ctx("http")).unwrap();
    assert_eq!(f.acceptor.ticket_cache_stats(), Default::default());
}
