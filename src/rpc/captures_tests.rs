//! Real bind PDUs written by python3-impacket 0.10 (tests/testdata/rpc/README.md says how they
//! were made) parse to what the client sent and re-encode to the same bytes.

use super::*;

macro_rules! capture {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../tests/testdata/rpc/", $name, ".bin")) as &[u8],
        )
    };
}

/// Every capture, by file name.
pub(crate) const CAPTURES: [(&str, &[u8]); 11] = [
    capture!("emsmdb_spnego_connect"),
    capture!("emsmdb_spnego_privacy"),
    capture!("nspi_spnego_connect"),
    capture!("nspi_spnego_privacy"),
    capture!("rfr_spnego_connect"),
    capture!("rfr_spnego_privacy"),
    capture!("emsmdb_krb5_bare_connect"),
    capture!("emsmdb_krb5_bare_privacy"),
    capture!("emsmdb_krb5_gss_privacy"),
    capture!("emsmdb_ntlm_connect"),
    capture!("epm_noauth"),
];

/// GSS-API OID 1.2.840.48018.1.2.2 (MS-KRB5), DER-encoded with its tag and length.
const MS_KRB5_OID: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// GSS-API OID 1.2.840.113554.1.2.2 (Kerberos 5) followed by the AP-REQ token id 01 00 and the
/// AP-REQ's application tag 14 (RFC 4121 4.1).
const KRB5_APREQ_PREFIX: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01, 0x00, 0x6e,
];

fn capture(name: &str) -> &'static [u8] {
    CAPTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn service(s: &str) -> Requirement {
    Requirement::Service(s.into())
}

#[test]
fn every_capture_parses_as_a_single_context_ndr_bind_from_impacket() {
    for (name, pdu) in CAPTURES {
        let b = parse_bind(pdu).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(b.ptype, PacketType::Bind, "{name}");
        assert_eq!(b.call_id, 1, "{name}");
        assert_eq!(b.drep, Drep::LITTLE_ENDIAN, "{name}");
        assert_eq!(
            (b.max_xmit_frag, b.max_recv_frag, b.assoc_group_id),
            (4280, 4280, 0),
            "{name}"
        );
        assert_eq!(b.contexts.len(), 1, "{name}");
        assert_eq!(b.contexts[0].transfer_syntaxes, vec![SyntaxId::NDR], "{name}");
        assert_eq!(pdu_length(&pdu[..16], 65_535), Ok(pdu.len()), "{name}");
    }
}

#[test]
fn captures_name_their_interface_and_version() {
    let cases: [(&str, Uuid, u16, u16); 5] = [
        ("emsmdb_spnego_connect", EMSMDB, 0, 81),
        ("nspi_spnego_connect", NSPI, 56, 0),
        ("rfr_spnego_privacy", RFR, 1, 0),
        ("emsmdb_krb5_bare_privacy", EMSMDB, 0, 81),
        ("epm_noauth", EPM, 3, 0),
    ];
    for (name, uuid, major, minor) in cases {
        let a = parse_bind(capture(name)).unwrap().contexts[0].abstract_syntax;
        assert_eq!((a.uuid, a.major, a.minor), (uuid, major, minor), "{name}");
    }
}

#[test]
fn captures_need_the_spn_service_of_their_interface() {
    let m = InterfaceMap::default();
    let want = |name: &str| match &name[..name.find('_').unwrap()] {
        "emsmdb" => service("exchangeMDB"),
        "nspi" => service("exchangeAB"),
        "rfr" => service("exchangeRFR"),
        _ => Requirement::NoAuth,
    };
    for (name, pdu) in CAPTURES {
        assert_eq!(
            m.required_service(&parse_bind(pdu).unwrap()),
            Ok(want(name)),
            "{name}"
        );
    }
}

#[test]
fn spnego_binds_carry_a_gss_wrapped_negtokeninit_offering_ms_krb5() {
    for (name, pdu) in CAPTURES.iter().filter(|(n, _)| n.contains("_spnego_")) {
        let b = parse_bind(pdu).unwrap();
        let auth = b.auth.as_ref().unwrap();
        assert_eq!(auth.auth_type, AuthType::Spnego, "{name}");
        let level = if name.ends_with("_privacy") {
            AuthLevel::PktPrivacy
        } else {
            AuthLevel::Connect
        };
        assert_eq!(auth.auth_level, level, "{name}");
        assert_eq!((auth.auth_pad_length, auth.auth_context_id), (0, 79231), "{name}");
        let token = b.token(pdu).unwrap();
        assert_eq!(
            token.len(),
            usize::from(u16::from_le_bytes([pdu[10], pdu[11]])),
            "{name}"
        );
        assert_eq!(&token[..2], &[0x60, 0x82], "{name}");
        assert!(contains(token, MS_KRB5_OID), "{name}: MS-KRB5 mech");
        assert!(
            contains(token, KRB5_APREQ_PREFIX),
            "{name}: GSS-wrapped AP-REQ mechToken"
        );
    }
}

#[test]
fn kerberos_binds_carry_a_bare_or_gss_wrapped_ap_req() {
    for (name, level, first) in [
        ("emsmdb_krb5_bare_connect", AuthLevel::Connect, 0x6e),
        ("emsmdb_krb5_bare_privacy", AuthLevel::PktPrivacy, 0x6e),
        ("emsmdb_krb5_gss_privacy", AuthLevel::PktPrivacy, 0x60),
    ] {
        let pdu = capture(name);
        let b = parse_bind(pdu).unwrap();
        let auth = b.auth.as_ref().unwrap();
        assert_eq!(
            (auth.auth_type, auth.auth_level),
            (AuthType::Krb5, level),
            "{name}"
        );
        let token = b.token(pdu).unwrap();
        assert_eq!(token[0], first, "{name}");
        if first == 0x60 {
            assert!(token[4..].starts_with(KRB5_APREQ_PREFIX), "{name}");
        }
        assert_eq!(b.auth.as_ref().unwrap().token_range.end, pdu.len(), "{name}");
    }
}

#[test]
fn ntlm_bind_carries_an_ntlmssp_negotiate() {
    let pdu = capture("emsmdb_ntlm_connect");
    let b = parse_bind(pdu).unwrap();
    let auth = b.auth.as_ref().unwrap();
    assert_eq!(
        (auth.auth_type, auth.auth_level),
        (AuthType::Ntlm, AuthLevel::Connect)
    );
    let token = b.token(pdu).unwrap();
    assert!(token.starts_with(b"NTLMSSP\0\x01\0\0\0"));
}

#[test]
fn endpoint_mapper_bind_has_no_auth_verifier() {
    let pdu = capture("epm_noauth");
    let b = parse_bind(pdu).unwrap();
    assert_eq!(b.auth, None);
    assert_eq!(pdu.len(), 72);
}

#[test]
fn every_capture_re_encodes_to_identical_bytes() {
    for (name, pdu) in CAPTURES {
        let b = parse_bind(pdu).unwrap();
        let token = b.token(pdu).unwrap_or(&[]);
        assert_eq!(b.to_bytes(token).unwrap(), pdu, "{name}");
    }
}

#[test]
fn captures_re_encoded_big_endian_parse_to_the_same_bind() {
    for (name, pdu) in CAPTURES {
        let b = parse_bind(pdu).unwrap();
        let token = b.token(pdu).unwrap_or(&[]);
        let be = BindInfo {
            drep: Drep::BIG_ENDIAN,
            ..b.clone()
        }
        .to_bytes(token)
        .unwrap();
        assert_ne!(be, pdu, "{name}");
        let p = parse_bind(&be).unwrap();
        assert_eq!(p.contexts, b.contexts, "{name}");
        assert_eq!(p.token(&be), b.token(pdu), "{name}");
        assert_eq!(
            InterfaceMap::default().required_service(&p),
            InterfaceMap::default().required_service(&b)
        );
    }
}

#[test]
fn bind_nak_answers_a_capture_in_its_drep_with_its_call_id() {
    let b = parse_bind(capture("emsmdb_krb5_bare_privacy")).unwrap();
    let nak = parse_bind_nak(&build_bind_nak(b.call_id, b.drep, RejectReason::InvalidChecksum)).unwrap();
    assert_eq!(
        (nak.call_id, nak.drep, nak.reason),
        (1, Drep::LITTLE_ENDIAN, RejectReason::InvalidChecksum)
    );
}
