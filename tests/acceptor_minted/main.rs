//! Acceptor behaviour on tokens minted locally with a service key (corner cases a KDC will not
//! produce on demand). Real-KDC acceptance lives in `acceptor_mit.rs`.

mod fixture;
mod kept_tickets;

use std::sync::Arc;

use fixture::*;
use kedge::krb::acceptor::{Acceptor, AcceptorConfig, ChannelBindingPolicy, Framing};
use kedge::krb::crypto::{EncType, Key};
use kedge::krb::error::AuthError;
use kedge::krb::keyset::{KeySet, ServiceKey};
use kedge::krb::mint::{mint, verify_response, MintRequest};
use kedge::krb::principal::Principal;
use kedge::krb::replay::ReplayCache;
use kedge::krb::time::system_time;

#[test]
fn every_framing_is_accepted_with_the_right_principal() {
    let f = fixture();
    let (c, s) = (alice(), spn("http"));
    for framing in [
        Framing::Spnego { legacy_oid: false },
        Framing::Spnego { legacy_oid: true },
        Framing::Gss,
        Framing::Bare,
    ] {
        let m = mint(&MintRequest {
            framing,
            ..req(&c, &s, &f.key, 5)
        });
        let a = f
            .acceptor
            .accept(&m.token, &ctx("http"))
            .unwrap_or_else(|e| panic!("{framing:?}: {e}"));
        assert_eq!(a.client.to_string(), "alice@CONTOSO.COM");
        assert_eq!(a.framing, framing);
        assert_eq!(a.kvno, 5);
        assert!(a.mutual);
    }
}

#[test]
fn ap_rep_completes_the_clients_mutual_authentication() {
    let f = fixture();
    let (c, s) = (alice(), spn("http"));
    for framing in [Framing::Spnego { legacy_oid: false }, Framing::Gss] {
        let m = mint(&MintRequest {
            framing,
            ..req(&c, &s, &f.key, 5)
        });
        let a = f.acceptor.accept(&m.token, &ctx("http")).unwrap();
        let resp = a.response_token().expect("mutual auth asked, AP-REP expected");
        assert_eq!(verify_response(&resp, &m.session_key).unwrap(), NOW);
        let other = Key::random(EncType::Aes256CtsHmacSha196);
        assert!(verify_response(&resp, &other).is_err());
    }
}

#[test]
fn spn_service_compares_case_insensitively_like_ad() {
    let f = fixture();
    let (c, s) = (alice(), spn("HTTP"));
    let m = mint(&req(&c, &s, &f.key, 5));
    assert!(f.acceptor.accept(&m.token, &ctx("http")).is_ok());
}

#[test]
fn ticket_for_other_spn_is_refused() {
    let f = fixture();
    let (c, s) = (alice(), spn("exchangeMDB"));
    let m = mint(&req(&c, &s, &f.key, 5));
    let e = f.acceptor.accept(&m.token, &ctx("http")).unwrap_err();
    assert!(matches!(e, AuthError::WrongSpn { .. }), "{e}");
    let other_host = Principal::parse("http/mail.fabrikam.com@CONTOSO.COM", REALM).unwrap();
    let m = mint(&req(&c, &other_host, &f.key, 5));
    assert!(matches!(
        f.acceptor.accept(&m.token, &ctx("http")).unwrap_err(),
        AuthError::WrongSpn { .. }
    ));
}

#[test]
fn ticket_of_other_realm_is_refused() {
    let f = fixture();
    let s = Principal::parse("http/outlook.contoso.com@FABRIKAM.COM", REALM).unwrap();
    let c = alice();
    let m = mint(&req(&c, &s, &f.key, 5));
    assert!(matches!(
        f.acceptor.accept(&m.token, &ctx("http")).unwrap_err(),
        AuthError::WrongRealm { .. }
    ));
}

/// Locates the ticket and authenticator ciphertexts in a bare AP-REQ by decoding it.
fn cipher_offsets(token: &[u8]) -> (usize, usize) {
    let req: rasn_kerberos::ApReq = rasn::der::decode(token).unwrap();
    let find = |needle: &[u8]| token.windows(needle.len()).position(|w| w == needle).unwrap();
    (find(&req.ticket.enc_part.cipher), find(&req.authenticator.cipher))
}

#[test]
fn flipped_byte_in_ticket_or_authenticator_is_modified() {
    let f = fixture();
    let (c, s) = (alice(), spn("http"));
    let m = mint(&MintRequest {
        framing: Framing::Bare,
        ..req(&c, &s, &f.key, 5)
    });
    let (t, a) = cipher_offsets(&m.token);
    let mut bad = m.token.clone();
    bad[t + 20] ^= 0x01;
    let e = f.acceptor.accept(&bad, &ctx("http")).unwrap_err();
    assert_eq!(e, AuthError::Modified { part: "ticket" });
    let mut bad = m.token.clone();
    bad[a + 20] ^= 0x80;
    let e = f.acceptor.accept(&bad, &ctx("http")).unwrap_err();
    assert_eq!(
        e,
        AuthError::Modified {
            part: "authenticator"
        }
    );
}

#[test]
fn expired_and_future_tickets_are_refused_by_time() {
    let f = fixture();
    let (c, s) = (alice(), spn("http"));
    let m = mint(&req(&c, &s, &f.key, 5));
    let mut late = ctx("http");
    late.now = system_time(NOW + 36_000 + 301);
    let e = f.acceptor.accept(&m.token, &late).unwrap_err();
    assert!(matches!(e, AuthError::TicketExpired { .. }), "{e}");
    let mut early = ctx("http");
    early.now = system_time(NOW - 301);
    let e = f.acceptor.accept(&m.token, &early).unwrap_err();
    assert!(matches!(e, AuthError::TicketNotYetValid { .. }), "{e}");
}

#[test]
fn authenticator_outside_skew_is_refused() {
    let f = fixture();
    let (c, s) = (alice(), spn("http"));
    // Ticket valid for 10 h, authenticator made at NOW: checking at NOW + 301 s is skew.
    let m = mint(&req(&c, &s, &f.key, 5));
    let mut later = ctx("http");
    later.now = system_time(NOW + 301);
    let e = f.acceptor.accept(&m.token, &later).unwrap_err();
    assert!(matches!(e, AuthError::Skew { .. }), "{e}");
    later.now = system_time(NOW + 299);
    assert!(f.acceptor.accept(&m.token, &later).is_ok());
}

#[test]
fn same_token_twice_is_a_replay() {
    let f = fixture();
    let (c, s) = (alice(), spn("http"));
    let m = mint(&req(&c, &s, &f.key, 5));
    assert!(f.acceptor.accept(&m.token, &ctx("http")).is_ok());
    let e = f.acceptor.accept(&m.token, &ctx("http")).unwrap_err();
    assert!(matches!(e, AuthError::Replay { .. }), "{e}");
    assert_eq!(e.reason(), "KRB_AP_ERR_REPEAT");
}

#[test]
fn keys_of_kvno_n_and_n_plus_one_both_accept() {
    let old = Key::random(EncType::Aes256CtsHmacSha196);
    let new = Key::random(EncType::Aes256CtsHmacSha196);
    let acc = fixture_with(
        vec![(spn("http"), 5, old.clone()), (spn("http"), 6, new.clone())],
        cfg(),
    );
    let (c, s) = (alice(), spn("http"));
    for (k, kv) in [(&old, 5), (&new, 6)] {
        let m = mint(&req(&c, &s, k, kv));
        assert_eq!(acc.accept(&m.token, &ctx("http")).unwrap().kvno, kv);
    }
}

#[test]
fn missing_kvno_falls_back_to_other_keys_of_the_enctype() {
    let k = Key::random(EncType::Aes256CtsHmacSha196);
    let acc = fixture_with(vec![(spn("http"), 3, k.clone())], cfg());
    let (c, s) = (alice(), spn("http"));
    let m = mint(&req(&c, &s, &k, 9));
    assert_eq!(acc.accept(&m.token, &ctx("http")).unwrap().kvno, 3);
}

#[test]
fn one_asa_key_under_another_spn_name_decrypts() {
    // ktpass writes the ASA key under one SPN; tickets for the other SPNs use the same key.
    let k = Key::random(EncType::Aes256CtsHmacSha196);
    let acc = fixture_with(vec![(spn("http"), 4, k.clone())], cfg());
    let (c, s) = (alice(), spn("exchangeMDB"));
    let m = mint(&req(&c, &s, &k, 4));
    assert!(acc.accept(&m.token, &ctx("exchangeMDB")).is_ok());
}

#[test]
fn ticket_newer_than_the_keytab_says_the_keytab_is_stale() {
    let k5 = Key::random(EncType::Aes256CtsHmacSha196);
    let k6 = Key::random(EncType::Aes256CtsHmacSha196);
    let acc = fixture_with(vec![(spn("http"), 5, k5), (spn("http"), 6, k6)], cfg());
    let rolled = Key::random(EncType::Aes256CtsHmacSha196);
    let (c, s) = (alice(), spn("http"));
    let m = mint(&req(&c, &s, &rolled, 7));
    let e = acc.accept(&m.token, &ctx("http")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "KRB_AP_ERR_BADKEYVER: keytab is stale: ticket kvno 7, keytab has 5, 6"
    );
}

#[test]
fn enctype_without_any_key_is_nokey() {
    let f = fixture();
    let k128 = Key::random(EncType::Aes128CtsHmacSha196);
    let (c, s) = (alice(), spn("http"));
    let m = mint(&req(&c, &s, &k128, 5));
    assert_eq!(
        f.acceptor.accept(&m.token, &ctx("http")).unwrap_err().reason(),
        "KRB_AP_ERR_NOKEY"
    );
}

#[test]
fn channel_bindings_are_checked_against_the_connection() {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let acc = fixture_with(vec![(spn("http"), 5, key.clone())], cfg());
    let (c, s) = (alice(), spn("http"));
    let cb: &[u8] = b"tls-server-end-point:0123456789abcdef0123456789abcdef";
    let m = mint(&MintRequest {
        channel_binding: Some(cb),
        ..req(&c, &s, &key, 5)
    });
    let mut good = ctx("http");
    good.channel_binding = Some(cb);
    assert!(acc.accept(&m.token, &good).is_ok());
    let m = mint(&MintRequest {
        channel_binding: Some(cb),
        cusec: 7,
        ..req(&c, &s, &key, 5)
    });
    let mut other = ctx("http");
    other.channel_binding = Some(b"tls-server-end-point:ffffffffffffffffffffffffffffffff");
    assert_eq!(acc.accept(&m.token, &other).unwrap_err(), AuthError::BadBindings);
    // Require: a token without bindings is refused.
    let strict = fixture_with(
        vec![(spn("http"), 5, key.clone())],
        AcceptorConfig {
            channel_binding: ChannelBindingPolicy::Require,
            ..cfg()
        },
    );
    let m = mint(&MintRequest {
        cusec: 8,
        ..req(&c, &s, &key, 5)
    });
    assert_eq!(
        strict.accept(&m.token, &good).unwrap_err(),
        AuthError::MissingBindings
    );
}

#[test]
fn ntlm_tokens_are_identified_as_ntlm() {
    let f = fixture();
    let raw = b"NTLMSSP\0\x01\0\0\0\x07\x82\x08\xa2";
    assert_eq!(f.acceptor.accept(raw, &ctx("http")).unwrap_err(), AuthError::Ntlm);
    let spnego_ntlm = kedge::krb::spnego::init_token(&[kedge::krb::spnego::arcs::NTLM], raw);
    assert_eq!(
        f.acceptor.accept(&spnego_ntlm, &ctx("http")).unwrap_err(),
        AuthError::Ntlm
    );
}

#[test]
fn truncated_and_mutated_tokens_never_panic() {
    let f = fixture();
    let (c, s) = (alice(), spn("http"));
    let m = mint(&req(&c, &s, &f.key, 5));
    let mut no_replay = ctx("http");
    no_replay.check_replay = false;
    for n in 0..m.token.len() {
        assert!(f.acceptor.accept(&m.token[..n], &no_replay).is_err());
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut t = m.token.clone();
        let pos = (seed as usize) % t.len();
        t[pos] = (seed >> 32) as u8;
        if seed % 3 == 0 {
            let p2 = (seed >> 16) as usize % t.len();
            t[p2] ^= 0xff;
        }
        let _ = f.acceptor.accept(&t, &no_replay);
    }
}

fn ad_token(key: &Key, cusec: u32, groups: &[u32]) -> Vec<u8> {
    use kedge::krb::pac::{PacBuilder, Sid};
    let domain: Sid = "S-1-5-21-1004336348-1177238915-682003330".parse().unwrap();
    let mut b = PacBuilder::new("alice", domain, 1104).logon_time(NOW);
    for g in groups {
        b = b.group(*g, 7);
    }
    let pac = b.build(key, &Key::random(EncType::Aes256CtsHmacSha196)).unwrap();
    let (c, s) = (alice(), spn("http"));
    mint(&MintRequest {
        pac: Some(pac),
        cusec,
        framing: Framing::Spnego { legacy_oid: true },
        ..req(&c, &s, key, 5)
    })
    .token
}

#[test]
fn windows_pac_yields_user_and_group_sids() {
    let f = fixture();
    let a = f
        .acceptor
        .accept(&ad_token(&f.key, 1, &[512, 1601]), &ctx("http"))
        .unwrap();
    let pac = a.pac.unwrap();
    assert!(pac.server_signature_verified);
    assert_eq!(
        pac.user_sid().as_deref(),
        Some("S-1-5-21-1004336348-1177238915-682003330-1104")
    );
    assert!(pac
        .group_sids()
        .iter()
        .any(|g| g == "S-1-5-21-1004336348-1177238915-682003330-1601"));
}

#[test]
fn pac_signed_with_another_key_is_refused() {
    let f = fixture();
    let other = Key::random(EncType::Aes256CtsHmacSha196);
    use kedge::krb::pac::{PacBuilder, Sid};
    let domain: Sid = "S-1-5-21-1-2-3".parse().unwrap();
    let pac = PacBuilder::new("alice", domain, 1104)
        .logon_time(NOW)
        .build(&other, &other)
        .unwrap();
    let (c, s) = (alice(), spn("http"));
    let m = mint(&MintRequest {
        pac: Some(pac),
        ..req(&c, &s, &f.key, 5)
    });
    assert_eq!(
        f.acceptor.accept(&m.token, &ctx("http")).unwrap_err().reason(),
        "pac_invalid"
    );
}

#[test]
fn group_rules_allow_and_deny_by_pac_sids() {
    use kedge::krb::acceptor::GroupRules;
    let f = fixture();
    let d = "S-1-5-21-1004336348-1177238915-682003330";
    let rules = GroupRules {
        allow: vec![format!("{d}-1601")],
        deny: vec![format!("{d}-1666")],
    };
    let mut c = ctx("http");
    c.groups = Some(&rules);
    assert!(f.acceptor.accept(&ad_token(&f.key, 10, &[1601]), &c).is_ok());
    assert_eq!(
        f.acceptor
            .accept(&ad_token(&f.key, 11, &[1601, 1666]), &c)
            .unwrap_err()
            .reason(),
        "group_denied"
    );
    assert_eq!(
        f.acceptor
            .accept(&ad_token(&f.key, 12, &[513]), &c)
            .unwrap_err()
            .reason(),
        "group_denied"
    );
}

#[test]
fn one_principal_flooding_fresh_authenticators_is_refused_beyond_its_share() {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let acceptor = Acceptor::new(
        cfg(),
        KeySet::from_keys(
            vec![ServiceKey::new(spn("http"), 5, key.clone(), 0)],
            system_time(NOW),
            "test",
        ),
        Arc::new(ReplayCache::with_max_per_principal(10_000, 3)),
    );
    let (alice, bob, s) = (
        alice(),
        Principal::parse("bob@CONTOSO.COM", REALM).unwrap(),
        spn("http"),
    );
    let results: Vec<_> = (0..5)
        .map(|i| {
            let m = mint(&MintRequest {
                cusec: i,
                ..req(&alice, &s, &key, 5)
            });
            acceptor.accept(&m.token, &ctx("http")).map(|_| ())
        })
        .collect();
    assert!(results[..3].iter().all(Result::is_ok), "{results:?}");
    for r in &results[3..] {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.reason(), "replay_principal_share", "{e}");
    }
    assert_eq!(acceptor.replay_cache().refused_share(), 2);
    let m = mint(&req(&bob, &s, &key, 5));
    assert!(
        acceptor.accept(&m.token, &ctx("http")).is_ok(),
        "others keep their share"
    );
}
