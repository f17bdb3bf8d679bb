//! [`ContextPolicy`] with built PDUs: every row of its module table, and `settle` with the
//! results the admission can give (no acceptor needed: the admission's answer is an argument).

use super::admission::Admission;
use super::context_policy::{ContextPolicy, ContextRefusal, Verdict, MAX_CONTEXTS};
use super::error::RpcEdgeError;
use crate::krb::error::AuthError;
use crate::rpc::{
    build_auth3, AuthLevel, AuthType, AuthVerifier, BindInfo, Drep, InterfaceMap, PacketType,
    PresentationContext, Requirement, RpcError, SyntaxId, Uuid, EMSMDB, EPM, NSPI,
};

const CTX: u32 = 79231;
/// Shapes are all the policy looks at: `6e` starts a context (AP-REQ), `6f` continues (AP-REP).
const AP_REQ: &[u8] = b"\x6e\x03\x02\x01\x05";
const AP_REP: &[u8] = b"\x6f\x03\x02\x01\x05";
const NTLM_NEGOTIATE: &[u8] = b"NTLMSSP\0\x01\0\0\0";
const NTLM_AUTHENTICATE: &[u8] = b"NTLMSSP\0\x03\0\0\0";

fn bind_info(ptype: PacketType, iface: Uuid, auth: Option<(AuthType, u32)>) -> BindInfo {
    BindInfo {
        ptype,
        rpc_vers_minor: 0,
        pfc_flags: 0x03,
        call_id: 2,
        drep: Drep::LITTLE_ENDIAN,
        max_xmit_frag: 4280,
        max_recv_frag: 4280,
        assoc_group_id: 0,
        contexts: vec![PresentationContext {
            context_id: 1,
            abstract_syntax: SyntaxId {
                uuid: iface,
                major: 1,
                minor: 0,
            },
            transfer_syntaxes: vec![SyntaxId::NDR],
        }],
        auth: auth.map(|(auth_type, auth_context_id)| AuthVerifier {
            auth_type,
            auth_level: AuthLevel::PktPrivacy,
            auth_pad_length: 0,
            auth_reserved: 0,
            auth_context_id,
            token_range: 0..0,
        }),
    }
}

fn alter(iface: Uuid, auth: Option<(AuthType, u32)>, token: &[u8]) -> Vec<u8> {
    bind_info(PacketType::AlterContext, iface, auth)
        .to_bytes(token)
        .unwrap()
}

fn auth3(auth_type: AuthType, id: u32, token: &[u8]) -> Vec<u8> {
    let v = AuthVerifier {
        auth_type,
        auth_level: AuthLevel::PktPrivacy,
        auth_pad_length: 0,
        auth_reserved: 0,
        auth_context_id: id,
        token_range: 0..0,
    };
    build_auth3(3, Drep::LITTLE_ENDIAN, &v, token).unwrap()
}

fn service(s: &str) -> Requirement {
    Requirement::Service(s.into())
}

fn alice() -> Admission {
    Admission::Kerberos {
        principal: "alice@KEDGE.TEST".into(),
    }
}

fn bob() -> Admission {
    Admission::Kerberos {
        principal: "bob@KEDGE.TEST".into(),
    }
}

/// alice admitted for exchangeMDB with `auth_type` on context [`CTX`].
fn kerberos_connection(auth_type: AuthType) -> ContextPolicy {
    let first = bind_info(PacketType::Bind, EMSMDB, Some((auth_type, CTX)));
    ContextPolicy::new(&first, &service("exchangeMDB"), alice())
}

fn epm_connection() -> ContextPolicy {
    let first = bind_info(PacketType::Bind, EPM, None);
    ContextPolicy::new(&first, &Requirement::NoAuth, Admission::NoAuth)
}

fn inspect(p: &mut ContextPolicy, pdu: &[u8]) -> Verdict {
    p.inspect(pdu, &InterfaceMap::default())
}

#[track_caller]
fn forwarded(v: Verdict) {
    assert!(matches!(v, Verdict::Forward), "want forward, got {v:?}");
}

#[track_caller]
fn refused(v: Verdict) -> ContextRefusal {
    match v {
        Verdict::Refuse(r) => r,
        other => panic!("want a refusal, got {other:?}"),
    }
}

#[track_caller]
fn pending(v: Verdict) -> super::context_policy::PendingAdmission {
    match v {
        Verdict::Admit(p) => p,
        other => panic!("want an admission, got {other:?}"),
    }
}

#[test]
fn epm_admission_allows_the_endpoint_mapper_only() {
    let mut p = epm_connection();
    let again = pending(inspect(&mut p, &alter(EPM, None, &[])));
    assert_eq!(again.requirement(), &Requirement::NoAuth);
    p.settle(again, Ok(Admission::NoAuth)).unwrap();
    let r = refused(inspect(&mut p, &alter(EMSMDB, None, &[])));
    assert!(matches!(&r, ContextRefusal::EpmOnly { interface } if interface.starts_with("EMSMDB")));
    assert_eq!(r.cause(), "epm_only");
}

#[test]
fn epm_admission_refuses_any_auth_verifier() {
    let mut p = epm_connection();
    for pdu in [
        alter(EMSMDB, Some((AuthType::Ntlm, 1)), NTLM_NEGOTIATE),
        alter(EMSMDB, Some((AuthType::Krb5, 1)), AP_REQ),
        alter(EPM, Some((AuthType::Krb5, 1)), AP_REQ),
        auth3(AuthType::Ntlm, 1, NTLM_AUTHENTICATE),
    ] {
        let r = refused(inspect(&mut p, &pdu));
        assert!(matches!(r, ContextRefusal::EpmAuth { .. }), "{r}");
    }
}

#[test]
fn epm_first_bind_verifier_opens_no_context_to_continue() {
    let first = bind_info(PacketType::Bind, EPM, Some((AuthType::Ntlm, CTX)));
    let mut p = ContextPolicy::new(&first, &Requirement::NoAuth, Admission::NoAuth);
    assert_eq!(p.context_count(), 0);
    let r = refused(inspect(&mut p, &auth3(AuthType::Ntlm, CTX, NTLM_AUTHENTICATE)));
    assert!(matches!(r, ContextRefusal::EpmAuth { auth_type: 10 }));
}

#[test]
fn continuations_on_the_admitted_context_pass() {
    let mut p = kerberos_connection(AuthType::Krb5);
    forwarded(inspect(&mut p, &auth3(AuthType::Krb5, CTX, AP_REP)));
    forwarded(inspect(
        &mut p,
        &alter(EMSMDB, Some((AuthType::Krb5, CTX)), AP_REP),
    ));
    forwarded(inspect(&mut p, &alter(EMSMDB, None, &[])));
    let mut spnego = kerberos_connection(AuthType::Spnego);
    let resp = crate::krb::spnego::accept_completed(true, Some(AP_REP.to_vec()));
    forwarded(inspect(
        &mut spnego,
        &alter(EMSMDB, Some((AuthType::Spnego, CTX)), &resp),
    ));
}

#[test]
fn an_initial_token_on_the_admitted_context_is_admitted_again() {
    let mut p = kerberos_connection(AuthType::Krb5);
    let again = pending(inspect(&mut p, &auth3(AuthType::Krb5, CTX, AP_REQ)));
    assert_eq!(again.requirement(), &service("exchangeMDB"));
    let r = p.settle(again, Ok(bob())).unwrap_err();
    assert!(matches!(r, ContextRefusal::PrincipalMismatch { .. }), "{r}");
    let again = pending(inspect(
        &mut p,
        &alter(EMSMDB, Some((AuthType::Krb5, CTX)), AP_REQ),
    ));
    p.settle(again, Ok(alice())).unwrap();
    assert_eq!(p.context_count(), 1, "a restart opens nothing new");
}

#[test]
fn a_new_context_needs_the_same_principal() {
    let mut p = kerberos_connection(AuthType::Krb5);
    let new = pending(inspect(&mut p, &alter(EMSMDB, Some((AuthType::Krb5, 2)), AP_REQ)));
    let r = p.settle(new, Ok(bob())).unwrap_err();
    assert_eq!(r.cause(), "principal_mismatch");
    assert!(r.to_string().contains("bob@KEDGE.TEST"), "{r}");
    assert_eq!(p.context_count(), 1);
    // A refused context was never opened: its auth3 is refused too.
    let r = refused(inspect(&mut p, &auth3(AuthType::Krb5, 2, AP_REP)));
    assert!(matches!(
        r,
        ContextRefusal::UnknownContext {
            auth_context_id: 2,
            auth_type: 16
        }
    ));
    let new = pending(inspect(&mut p, &alter(EMSMDB, Some((AuthType::Krb5, 2)), AP_REQ)));
    p.settle(new, Ok(alice())).unwrap();
    assert_eq!(p.context_count(), 2);
    forwarded(inspect(&mut p, &auth3(AuthType::Krb5, 2, AP_REP)));
}

#[test]
fn another_auth_type_on_the_same_id_is_a_new_context_under_the_ntlm_policy() {
    let mut p = kerberos_connection(AuthType::Krb5);
    let ntlm = alter(EMSMDB, Some((AuthType::Ntlm, CTX)), NTLM_NEGOTIATE);
    let new = pending(inspect(&mut p, &ntlm));
    let r = p.settle(new, Err(RpcEdgeError::NtlmRefused)).unwrap_err();
    assert_eq!(r.cause(), "ntlm");
    let new = pending(inspect(&mut p, &ntlm));
    p.settle(new, Ok(Admission::NtlmPassthrough)).unwrap();
    assert_eq!(
        p.principal(),
        Some("alice@KEDGE.TEST"),
        "NTLM does not replace the principal"
    );
    forwarded(inspect(&mut p, &auth3(AuthType::Ntlm, CTX, NTLM_AUTHENTICATE)));
}

#[test]
fn a_new_context_that_is_a_continuation_token_is_still_admitted() {
    // A token that only continues a context cannot open one: the admission refuses it.
    let mut p = kerberos_connection(AuthType::Krb5);
    let new = pending(inspect(&mut p, &alter(EMSMDB, Some((AuthType::Krb5, 5)), AP_REP)));
    let err = RpcEdgeError::Auth {
        service: "exchangeMDB".into(),
        error: AuthError::malformed("krb", "not an AP-REQ"),
    };
    assert!(p.settle(new, Err(err)).is_err());
}

#[test]
fn moving_to_another_service_needs_a_token_for_it() {
    let mut p = kerberos_connection(AuthType::Krb5);
    let r = refused(inspect(&mut p, &alter(NSPI, None, &[])));
    assert!(matches!(&r, ContextRefusal::ServiceWithoutToken { service } if service == "exchangeAB"));
    let r = refused(inspect(&mut p, &alter(NSPI, Some((AuthType::Krb5, CTX)), AP_REP)));
    assert_eq!(r.cause(), "service_without_token");
    let new = pending(inspect(&mut p, &alter(NSPI, Some((AuthType::Krb5, 2)), AP_REQ)));
    assert_eq!(new.requirement(), &service("exchangeAB"));
    p.settle(new, Ok(alice())).unwrap();
    forwarded(inspect(&mut p, &alter(NSPI, None, &[])));
    assert_eq!(p.interfaces(), &[EMSMDB, NSPI]);
}

#[test]
fn a_replayed_token_is_refused_with_the_replay_reason() {
    let mut p = kerberos_connection(AuthType::Krb5);
    let new = pending(inspect(&mut p, &alter(EMSMDB, Some((AuthType::Krb5, 2)), AP_REQ)));
    let replay = RpcEdgeError::Auth {
        service: "exchangeMDB".into(),
        error: AuthError::Replay {
            client: "alice@KEDGE.TEST".into(),
        },
    };
    let r = p.settle(new, Err(replay)).unwrap_err();
    assert_eq!(r.cause(), "KRB_AP_ERR_REPEAT");
}

#[test]
fn an_endpoint_mapper_context_carrying_a_token_is_refused_as_unverified() {
    let mut p = kerberos_connection(AuthType::Krb5);
    let new = pending(inspect(&mut p, &alter(EPM, Some((AuthType::Krb5, 2)), AP_REQ)));
    assert_eq!(new.requirement(), &Requirement::NoAuth);
    let r = p.settle(new, Ok(Admission::NoAuth)).unwrap_err();
    assert!(
        matches!(
            r,
            ContextRefusal::UnverifiedContext {
                auth_context_id: 2,
                ..
            }
        ),
        "{r}"
    );
    // Without a token the endpoint mapper is up to the listener's policy.
    let plain = pending(inspect(&mut p, &alter(EPM, None, &[])));
    p.settle(plain, Ok(Admission::NoAuth)).unwrap();
}

#[test]
fn auth3_on_a_context_never_opened_is_refused() {
    let mut p = kerberos_connection(AuthType::Krb5);
    let r = refused(inspect(&mut p, &auth3(AuthType::Krb5, 99, AP_REP)));
    assert!(matches!(
        r,
        ContextRefusal::UnknownContext {
            auth_context_id: 99,
            ..
        }
    ));
    let r = refused(inspect(&mut p, &auth3(AuthType::Spnego, CTX, AP_REP)));
    assert!(
        matches!(r, ContextRefusal::UnknownContext { auth_type: 9, .. }),
        "{r}"
    );
}

#[test]
fn unknown_interfaces_and_malformed_pdus_are_refused() {
    let mut p = kerberos_connection(AuthType::Krb5);
    let samr: Uuid = "12345778-1234-abcd-ef00-0123456789ac".parse().unwrap();
    let r = refused(inspect(&mut p, &alter(samr, None, &[])));
    assert!(matches!(
        r,
        ContextRefusal::Pdu(RpcError::UnknownInterface { .. })
    ));
    let mut fragmented = alter(EMSMDB, None, &[]);
    fragmented[3] = 0x01;
    let r = refused(inspect(&mut p, &fragmented));
    assert_eq!(r.cause(), "fragmented_bind");
    let mut no_verifier = auth3(AuthType::Krb5, CTX, AP_REP);
    no_verifier.truncate(20);
    no_verifier[8] = 20;
    no_verifier[10] = 0;
    assert!(matches!(
        refused(inspect(&mut p, &no_verifier)),
        ContextRefusal::Pdu(_)
    ));
}

#[test]
fn contexts_are_bounded() {
    let first = bind_info(PacketType::Bind, EMSMDB, Some((AuthType::Ntlm, 0)));
    let mut p = ContextPolicy::new(&first, &service("exchangeMDB"), Admission::NtlmPassthrough);
    for id in 1..MAX_CONTEXTS as u32 {
        let new = pending(inspect(
            &mut p,
            &alter(EMSMDB, Some((AuthType::Ntlm, id)), NTLM_NEGOTIATE),
        ));
        p.settle(new, Ok(Admission::NtlmPassthrough)).unwrap();
    }
    assert_eq!(p.context_count(), MAX_CONTEXTS);
    let r = refused(inspect(
        &mut p,
        &alter(EMSMDB, Some((AuthType::Ntlm, 999)), NTLM_NEGOTIATE),
    ));
    assert!(matches!(r, ContextRefusal::TooManyContexts { .. }));
}

#[test]
fn ntlm_admission_takes_the_first_kerberos_principal_then_holds_to_it() {
    let first = bind_info(PacketType::Bind, EMSMDB, Some((AuthType::Ntlm, CTX)));
    let mut p = ContextPolicy::new(&first, &service("exchangeMDB"), Admission::NtlmPassthrough);
    assert_eq!(p.principal(), None);
    let new = pending(inspect(&mut p, &alter(EMSMDB, Some((AuthType::Krb5, 2)), AP_REQ)));
    p.settle(new, Ok(alice())).unwrap();
    assert_eq!(p.principal(), Some("alice@KEDGE.TEST"));
    let new = pending(inspect(&mut p, &alter(EMSMDB, Some((AuthType::Krb5, 3)), AP_REQ)));
    assert!(p.settle(new, Ok(bob())).is_err());
}
