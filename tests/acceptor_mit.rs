//! The acceptor on tokens issued by a real MIT KDC and made by a real GSS initiator
//! (python3-gssapi). See `tests/support/` for the harness.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kedge::krb::acceptor::{AcceptCtx, Acceptor, AcceptorConfig, Framing};
use kedge::krb::error::AuthError;
use kedge::krb::keyset::KeySet;
use kedge::krb::keytab::Keytab;
use kedge::krb::replay::ReplayCache;
use support::{Kdc, Mech, TokenSpec, ARRAY_FQDN, REALM, UTF8_USERS};

fn acceptor_for(keytab: &Keytab) -> Acceptor {
    let cfg = AcceptorConfig {
        realm: Some(REALM.into()),
        hosts: vec![ARRAY_FQDN.into()],
        skew: Duration::from_secs(300),
        ..Default::default()
    };
    Acceptor::new(
        cfg,
        KeySet::from_keytab(keytab, SystemTime::now(), "test"),
        Arc::new(ReplayCache::new(100_000)),
    )
}

fn acceptor(kdc: &Kdc) -> Acceptor {
    let kt = Keytab::parse(&std::fs::read(kdc.keytab_path()).unwrap()).unwrap();
    acceptor_for(&kt)
}

fn ctx(service: &str) -> AcceptCtx<'_> {
    AcceptCtx {
        now: SystemTime::now(),
        service,
        channel_binding: None,
        groups: None,
        check_replay: true,
    }
}

#[test]
fn every_spn_accepts_spnego_and_raw_krb5_tokens_with_the_right_principal() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    for svc in ["http", "HTTP", "exchangeMDB", "exchangeRFR", "exchangeAB"] {
        let name = kdc.spn(svc);
        for mech in [Mech::Spnego, Mech::Krb5, Mech::MsKrb5] {
            let toks = kdc.tokens("alice", &name, mech, 1);
            let a = acc
                .accept(&toks[0], &ctx(svc))
                .unwrap_or_else(|e| panic!("{svc} {mech:?}: {e}"));
            assert_eq!(a.client.to_string(), format!("alice@{REALM}"));
            assert_eq!(a.service.to_string(), name);
            let want = match mech {
                Mech::Spnego => Framing::Spnego { legacy_oid: false },
                _ => Framing::Gss,
            };
            assert_eq!(a.framing, want, "{svc} {mech:?}");
            assert!(a.pac.is_some(), "MIT 1.20 tickets carry a PAC");
        }
    }
}

#[test]
fn host_based_name_as_curl_asks_is_accepted() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    let toks = kdc.tokens("bob", &format!("HTTP@{ARRAY_FQDN}"), Mech::Spnego, 3);
    for t in &toks {
        assert_eq!(
            acc.accept(t, &ctx("http")).unwrap().client.to_string(),
            format!("bob@{REALM}")
        );
    }
}

#[test]
fn ticket_for_another_spn_is_refused_as_wrong_spn() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    let t = &kdc.tokens("alice", &kdc.spn("exchangeMDB"), Mech::Spnego, 1)[0];
    let e = acc.accept(t, &ctx("http")).unwrap_err();
    assert!(matches!(e, AuthError::WrongSpn { .. }), "{e}");
    let t = &kdc.tokens("alice", &kdc.spn("exchangeAB"), Mech::Krb5, 1)[0];
    let e = acc.accept(t, &ctx("exchangeMDB")).unwrap_err();
    assert_eq!(e.reason(), "wrong_spn");
}

/// Byte offsets of the ticket and authenticator ciphertexts inside a token.
fn cipher_offsets(token: &[u8]) -> (usize, usize) {
    let (ap, _) = kedge::krb::acceptor::unframe(token).unwrap();
    let req: rasn_kerberos::ApReq = rasn::der::decode(ap).unwrap();
    let find = |needle: &[u8]| token.windows(needle.len()).position(|w| w == needle).unwrap();
    (find(&req.ticket.enc_part.cipher), find(&req.authenticator.cipher))
}

#[test]
fn flipped_byte_in_ticket_or_authenticator_is_modified() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    let toks = kdc.tokens("alice", &kdc.spn("http"), Mech::Spnego, 2);
    let (t, _) = cipher_offsets(&toks[0]);
    let mut bad = toks[0].clone();
    bad[t + 40] ^= 0x04;
    assert_eq!(
        acc.accept(&bad, &ctx("http")).unwrap_err(),
        AuthError::Modified { part: "ticket" }
    );
    let (_, a) = cipher_offsets(&toks[1]);
    let mut bad = toks[1].clone();
    bad[a + 3] ^= 0x01;
    assert_eq!(
        acc.accept(&bad, &ctx("http")).unwrap_err(),
        AuthError::Modified {
            part: "authenticator"
        }
    );
    // The untouched tokens are still good (no replay slot was taken by the failures).
    for t in &toks {
        assert!(acc.accept(t, &ctx("http")).is_ok());
    }
}

#[test]
fn expired_and_future_tokens_are_refused_by_passing_now() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    let t = &kdc.tokens("alice", &kdc.spn("http"), Mech::Spnego, 1)[0];
    let mut c = ctx("http");
    c.now = SystemTime::now() + Duration::from_secs(3 * 365 * 86_400 + 3600);
    let e = acc.accept(t, &c).unwrap_err();
    assert!(matches!(e, AuthError::TicketExpired { .. }), "{e}");
    c.now = SystemTime::now() - Duration::from_secs(3600);
    let e = acc.accept(t, &c).unwrap_err();
    assert!(matches!(e, AuthError::TicketNotYetValid { .. }), "{e}");
    c.now = SystemTime::now() + Duration::from_secs(900);
    let e = acc.accept(t, &c).unwrap_err();
    assert!(matches!(e, AuthError::Skew { .. }), "{e}");
}

#[test]
fn same_token_twice_is_a_replay() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    let t = &kdc.tokens("alice", &kdc.spn("http"), Mech::Spnego, 1)[0];
    assert!(acc.accept(t, &ctx("http")).is_ok());
    let e = acc.accept(t, &ctx("http")).unwrap_err();
    assert!(matches!(e, AuthError::Replay { .. }), "{e}");
}

#[test]
fn keytab_with_kvno_n_and_n_plus_one_accepts_tickets_of_both() {
    let kdc = Kdc::start();
    let spn = kdc.spn("http");
    let old_tokens = kdc.tokens("alice", &spn, Mech::Spnego, 1);
    let new_kvno = kdc.randkey_keepold(&spn);
    let path = kdc.dir().join("both.keytab");
    kdc.export_keytab(&path, &[&spn]);
    let kt = Keytab::parse(&std::fs::read(&path).unwrap()).unwrap();
    let mut kvnos: Vec<u32> = kt.entries.iter().map(|e| e.kvno).collect();
    kvnos.sort();
    kvnos.dedup();
    assert_eq!(
        kvnos,
        vec![new_kvno - 1, new_kvno],
        "keytab holds both generations"
    );
    let acc = acceptor_for(&kt);
    let new_tokens = kdc.tokens("alice", &spn, Mech::Spnego, 1);
    assert_eq!(
        acc.accept(&old_tokens[0], &ctx("http")).unwrap().kvno,
        new_kvno - 1
    );
    assert_eq!(acc.accept(&new_tokens[0], &ctx("http")).unwrap().kvno, new_kvno);
    // A keytab with only the old generation says plainly that it is stale.
    let mut only_old = kt.clone();
    only_old.entries.retain(|e| e.kvno != new_kvno);
    let e = acceptor_for(&only_old)
        .accept(&kdc.tokens("alice", &spn, Mech::Spnego, 1)[0], &ctx("http"))
        .unwrap_err();
    assert!(e.to_string().contains("keytab is stale"), "{e}");
}

#[test]
fn keytab_missing_the_kvno_falls_back_to_the_other_keys() {
    let kdc = Kdc::shared();
    let mut kt = Keytab::parse(&std::fs::read(kdc.keytab_path()).unwrap()).unwrap();
    for e in &mut kt.entries {
        e.kvno += 40;
    }
    let acc = acceptor_for(&kt);
    let t = &kdc.tokens("alice", &kdc.spn("http"), Mech::Spnego, 1)[0];
    assert!(acc.accept(t, &ctx("http")).is_ok());
}

#[test]
fn ntlm_tokens_from_a_real_client_are_identified_as_ntlm() {
    // impacket's NTLMSSP NEGOTIATE message, raw and inside SPNEGO, as Windows clients send them.
    let out = std::process::Command::new(support::PYTHON)
        .arg("-c")
        .arg(
            "import base64\n\
             from impacket import ntlm\n\
             from impacket.spnego import SPNEGO_NegTokenInit, TypesMech\n\
             t = ntlm.getNTLMSSPType1('', '').getData()\n\
             s = SPNEGO_NegTokenInit(); s['MechTypes'] = [TypesMech['NTLMSSP - Microsoft NTLM Security Support Provider']]; s['MechToken'] = t\n\
             print(base64.b64encode(t).decode()); print(base64.b64encode(s.getData()).decode())",
        )
        .output()
        .expect("run /usr/bin/python3 (python3-impacket)");
    assert!(
        out.status.success(),
        "impacket: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acc = acceptor(Kdc::shared());
    use base64::Engine;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let tok = base64::engine::general_purpose::STANDARD.decode(line).unwrap();
        assert_eq!(acc.accept(&tok, &ctx("http")).unwrap_err(), AuthError::Ntlm);
    }
}

#[test]
fn ap_rep_is_accepted_by_the_initiator_that_made_the_token() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    for mech in [Mech::Spnego, Mech::Krb5] {
        let mut ini = kdc.initiator("alice");
        let tok = ini.init(&format!("HTTP@{ARRAY_FQDN}"), mech, "mutual,sequence");
        let a = acc.accept(&tok, &ctx("http")).unwrap();
        assert!(a.mutual);
        let reply = a.response_token().expect("AP-REP for mutual auth");
        ini.step(&reply)
            .unwrap_or_else(|e| panic!("{mech:?}: initiator refused kedge's AP-REP: {e}"));
    }
}

/// A client keeps its service ticket and wraps it in a new authenticator per token: the
/// acceptor opens it once and keeps it, and what it answers from the kept ticket still
/// completes the real initiator's mutual authentication.
#[test]
fn a_real_clients_next_tokens_are_accepted_from_its_kept_ticket() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    for (i, t) in kdc
        .tokens("bob", &kdc.spn("http"), Mech::Spnego, 3)
        .iter()
        .enumerate()
    {
        acc.accept(t, &ctx("http"))
            .unwrap_or_else(|e| panic!("token {i}: {e}"));
    }
    let s = acc.ticket_cache_stats();
    assert_eq!(
        (s.entries, s.misses, s.hits),
        (1, 1, 2),
        "one ticket, opened once"
    );
    // One initiator, two contexts: the second one's ticket comes from its credential cache.
    let mut ini = kdc.initiator("bob");
    for mech in [Mech::Spnego, Mech::Krb5] {
        let tok = ini.init(&format!("HTTP@{ARRAY_FQDN}"), mech, "mutual,sequence");
        let a = acc.accept(&tok, &ctx("http")).unwrap();
        let reply = a.response_token().expect("AP-REP for mutual auth");
        ini.step(&reply)
            .unwrap_or_else(|e| panic!("{mech:?}: initiator refused the AP-REP: {e}"));
    }
    let s = acc.ticket_cache_stats();
    assert_eq!(
        (s.misses, s.hits),
        (2, 3),
        "the second context was answered from the kept ticket"
    );
}

/// Whether `name`'s UTF-8 holds a byte in 0x80..=0xA0 (outside rasn's GeneralString alphabet).
fn has_bytes_rasn_refuses(name: &str) -> bool {
    name.bytes().any(|b| (0x80..=0xA0).contains(&b))
}

/// MIT issues UTF-8 names as given, as AD does; `weiß` and `рябов` hold bytes (C3 9F, D1 80,
/// D1 8F) that a GeneralString with rasn's alphabet refuses. Their tickets and authenticators
/// are read, the client is named in UTF-8, the next token is answered from the kept ticket and
/// a token sent twice is a replay.
#[test]
fn utf8_client_names_are_accepted_with_their_names() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    for (user, _) in UTF8_USERS {
        assert!(has_bytes_rasn_refuses(user), "{user}");
        for mech in [Mech::Spnego, Mech::Krb5] {
            let toks = kdc.tokens(user, &format!("HTTP@{ARRAY_FQDN}"), mech, 2);
            let before = acc.ticket_cache_stats();
            for (i, t) in toks.iter().enumerate() {
                let a = acc
                    .accept(t, &ctx("http"))
                    .unwrap_or_else(|e| panic!("{user} {mech:?} token {i}: {e}"));
                assert_eq!(a.client.to_string(), format!("{user}@{REALM}"));
                assert_eq!(a.client.canonical(), format!("{user}@{REALM}"));
                assert_eq!(a.client.components, vec![user.to_string()]);
            }
            let after = acc.ticket_cache_stats();
            assert_eq!(
                (after.misses - before.misses, after.hits - before.hits),
                (1, 1),
                "{user} {mech:?}: the second token was answered from the kept ticket"
            );
            let e = acc.accept(&toks[0], &ctx("http")).unwrap_err();
            assert_eq!(
                e,
                AuthError::Replay {
                    client: format!("{user}@{REALM}")
                },
                "{user} {mech:?}"
            );
        }
    }
}

#[test]
fn ap_rep_for_a_utf8_client_is_accepted_by_its_initiator() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    for (user, _) in UTF8_USERS {
        let mut ini = kdc.initiator(user);
        for mech in [Mech::Spnego, Mech::Krb5] {
            let tok = ini.init(&format!("HTTP@{ARRAY_FQDN}"), mech, "mutual,sequence");
            let a = acc
                .accept(&tok, &ctx("http"))
                .unwrap_or_else(|e| panic!("{user} {mech:?}: {e}"));
            assert_eq!(a.client.to_string(), format!("{user}@{REALM}"));
            let reply = a.response_token().expect("AP-REP for mutual auth");
            ini.step(&reply)
                .unwrap_or_else(|e| panic!("{user} {mech:?}: initiator refused kedge's AP-REP: {e}"));
        }
    }
}

#[test]
fn dce_style_and_channel_binding_tokens_are_accepted() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    let spn = kdc.spn("exchangeMDB");
    let dce = kdc.tokens_for(
        "alice",
        &TokenSpec::new(&spn, Mech::Krb5).flags("mutual,dce,conf,integ,sequence,replay"),
        1,
    );
    let a = acc.accept(&dce[0], &ctx("exchangeMDB")).unwrap();
    assert!(a.dce_style);
    assert_eq!(
        a.framing,
        Framing::Bare,
        "MIT sends DCE-style tokens without the GSS frame"
    );
    let cb: &[u8] = b"tls-server-end-point:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let t = kdc.tokens_for(
        "alice",
        &TokenSpec::new(&format!("HTTP@{ARRAY_FQDN}"), Mech::Spnego).channel_binding(cb),
        2,
    );
    let mut c = ctx("http");
    c.channel_binding = Some(cb);
    assert!(acc.accept(&t[0], &c).is_ok());
    c.channel_binding = Some(b"tls-server-end-point:ffff");
    assert_eq!(acc.accept(&t[1], &c).unwrap_err(), AuthError::BadBindings);
}

#[test]
fn truncated_and_mutated_real_tokens_never_panic() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    let toks = kdc.tokens("alice", &kdc.spn("http"), Mech::Spnego, 1);
    let t = &toks[0];
    let mut c = ctx("http");
    c.check_replay = false;
    for n in 0..t.len() {
        assert!(acc.accept(&t[..n], &c).is_err());
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..30_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut m = t.clone();
        let pos = seed as usize % m.len();
        m[pos] = (seed >> 24) as u8;
        let _ = acc.accept(&m, &c);
    }
}

#[test]
fn mit_pac_is_parsed_and_its_server_signature_verified() {
    let kdc = Kdc::shared();
    let acc = acceptor(kdc);
    let t = &kdc.tokens("alice", &kdc.spn("http"), Mech::Spnego, 1)[0];
    let a = acc.accept(t, &ctx("http")).unwrap();
    let pac = a.pac.expect("MIT 1.20 issues a PAC");
    assert!(pac.server_signature_verified);
    // MIT's PAC has client info and signatures but no LOGON_INFO: no SIDs.
    assert_eq!(pac.user_sid(), None);
}

/// Re-encrypts a real token's ticket after `edit` changed its PAC bytes.
fn with_edited_pac(token: &[u8], keytab: &Keytab, edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    use kedge::krb::crypto::UsageKeys;
    use rasn::types::OctetString;
    let (ap, _) = kedge::krb::acceptor::unframe(token).unwrap();
    let mut req: rasn_kerberos::ApReq = rasn::der::decode(ap).unwrap();
    let kvno = req.ticket.enc_part.kvno;
    let entry = keytab
        .entries
        .iter()
        .find(|e| {
            Some(e.kvno) == kvno
                && e.key.etype().as_i32() == req.ticket.enc_part.etype
                && e.principal.components[0] == "HTTP"
        })
        .unwrap();
    let uk = UsageKeys::new(&entry.key, 2);
    let plain = uk.decrypt(&req.ticket.enc_part.cipher).unwrap();
    let mut enc: rasn_kerberos::EncTicketPart = rasn::der::decode(&plain).unwrap();
    let ad = enc.authorization_data.as_mut().unwrap();
    let mut inner: rasn_kerberos::AuthorizationData = rasn::der::decode(&ad[0].data).unwrap();
    let mut pac = inner[0].data.to_vec();
    edit(&mut pac);
    inner[0].data = OctetString::from(pac);
    ad[0].data = OctetString::from(rasn::der::encode(&inner).unwrap());
    req.ticket.enc_part.cipher = OctetString::from(uk.encrypt(&rasn::der::encode(&enc).unwrap()));
    kedge::krb::gss::wrap_krb5(
        kedge::krb::gss::OID_KRB5,
        kedge::krb::gss::TOK_AP_REQ,
        &rasn::der::encode(&req).unwrap(),
    )
}

#[test]
fn tampered_pac_is_refused() {
    let kdc = Kdc::shared();
    let kt = Keytab::parse(&std::fs::read(kdc.keytab_path()).unwrap()).unwrap();
    let acc = acceptor_for(&kt);
    let toks = kdc.tokens("alice", &format!("HTTP@{ARRAY_FQDN}"), Mech::Krb5, 3);
    // Re-encrypting without a change is still accepted: the test's surgery is sound.
    assert!(acc
        .accept(&with_edited_pac(&toks[0], &kt, |_| {}), &ctx("http"))
        .is_ok());
    // One byte of the client-info buffer (the user's name) changed: the server signature fails.
    let tampered = with_edited_pac(&toks[1], &kt, |pac| {
        let pos = pac
            .windows(10)
            .position(|w| {
                w == "alice"
                    .encode_utf16()
                    .flat_map(|u| u.to_le_bytes())
                    .collect::<Vec<u8>>()
                    .as_slice()
            })
            .unwrap();
        pac[pos] = b'b';
    });
    let e = acc.accept(&tampered, &ctx("http")).unwrap_err();
    assert_eq!(e.reason(), "pac_invalid", "{e}");
    // A truncated PAC is malformed, not a panic.
    let cut = with_edited_pac(&toks[2], &kt, |pac| pac.truncate(pac.len() / 2));
    assert_eq!(
        acc.accept(&cut, &ctx("http")).unwrap_err().reason(),
        "pac_invalid"
    );
}
