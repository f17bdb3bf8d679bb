//! Server and KDC signatures (MS-PAC 2.8). The type and presence checks run without crypto; the
//! tests marked "(crypto)" call `crate::krb::crypto` and pass once its bodies are implemented.

use super::super::*;
use super::{sample, S4U_SAMPLES};
use crate::krb::crypto::{EncType, Key};

fn key(etype: EncType, hex_key: &str) -> Key {
    Key::new(etype, &hex::decode(hex_key).unwrap()).unwrap()
}

/// `member_keyblock` of `t_pac.c`: the service key of `saved_pac`.
fn saved_pac_server_key() -> Key {
    key(EncType::Rc4Hmac, "D217FAEAE5E6B5F95CCC94077AB8A5FC")
}
/// `kdc_keyblock` of `t_pac.c`: the krbtgt key of `saved_pac`.
fn saved_pac_kdc_key() -> Key {
    key(EncType::Rc4Hmac, "B286757148AF7FD252C53603A150B7E7")
}
/// `s4u_srv_key` of `t_pac.c`.
fn s4u_srv_key() -> Key {
    key(
        EncType::Aes256CtsHmacSha196,
        "14DFB5B2CDB42C8894DA2FA882E9729F4A4DC74BA02A242CC6A8D71079B9AD9A",
    )
}
/// `s4u_tgt_srv_key` of `t_pac.c` (the cross-realm samples).
fn s4u_tgt_srv_key() -> Key {
    key(
        EncType::Aes256CtsHmacSha196,
        "420C39C51A175404451F956B8C58E0F41BCA669A644795CA6E3AD55A3B918C9F",
    )
}
/// `ticket_sig_server_key` of `t_pac.c`: decrypts the Windows Server 2022 ticket.
pub(crate) fn win2022_server_key() -> Key {
    key(
        EncType::Aes256CtsHmacSha196,
        "114A84E3148FAAB1FA7B5351B28AC2F1FD196D61E0F3F23E1FDBD3C1797DC1EE",
    )
}

/// Rewrites the SignatureType of the buffer of `buffer_type`.
fn set_signature_type(pac: &[u8], buffer_type: u32, cksumtype: i32) -> Vec<u8> {
    let parsed = Pac::parse(pac).unwrap();
    let b = parsed
        .buffers()
        .iter()
        .find(|b| b.buffer_type == buffer_type)
        .unwrap();
    let mut out = pac.to_vec();
    let at = b.offset as usize;
    out[at..at + 4].copy_from_slice(&cksumtype.to_le_bytes());
    out
}

#[test]
fn server_signature_of_another_checksum_type_than_the_key_is_refused() {
    // saved_pac is signed with HMAC-MD5 (-138): an aes256 service key must not accept it.
    let pac = Pac::parse(sample("mit_saved_pac")).unwrap();
    let err = pac.verify_server_signature(&s4u_srv_key()).unwrap_err();
    assert_eq!(
        err,
        PacError::ChecksumTypeMismatch {
            which: "server",
            got: -138,
            want: 16
        }
    );
}

#[test]
fn swapped_server_signature_type_is_refused() {
    // aes256's hmac-sha1-96 relabelled as aes128's: same length, other type.
    let bytes = set_signature_type(sample("mit_s4u_pac_regular"), PAC_SERVER_CHECKSUM, 15);
    let pac = Pac::parse(&bytes).unwrap();
    assert!(matches!(
        pac.verify_server_signature(&s4u_srv_key()),
        Err(PacError::ChecksumTypeMismatch {
            got: 15,
            want: 16,
            ..
        })
    ));
    // An unkeyed or unknown type is refused the same way.
    for t in [14, 7, 0, -1] {
        let bytes = set_signature_type(sample("mit_s4u_pac_regular"), PAC_SERVER_CHECKSUM, t);
        let pac = Pac::parse(&bytes).unwrap();
        assert!(matches!(
            pac.verify_server_signature(&s4u_srv_key()),
            Err(PacError::ChecksumTypeMismatch { .. })
        ));
    }
}

#[test]
fn pac_without_server_or_kdc_signature_is_refused() {
    let sid: Sid = "S-1-5-21-1-2-3".parse().unwrap();
    let bytes = PacBuilder::new("alice", sid, 1105)
        .build_unsigned(EncType::Aes256CtsHmacSha196, EncType::Aes256CtsHmacSha196)
        .unwrap();
    for (missing, name) in [
        (PAC_SERVER_CHECKSUM, "server signature"),
        (PAC_PRIVSVR_CHECKSUM, "KDC signature"),
    ] {
        // Relabel the buffer as an unknown type so the PAC still parses.
        let pac = Pac::parse(&bytes).unwrap();
        let i = pac
            .buffers()
            .iter()
            .position(|b| b.buffer_type == missing)
            .unwrap();
        let mut relabelled = bytes.clone();
        relabelled[8 + 16 * i..12 + 16 * i].copy_from_slice(&0x7777u32.to_le_bytes());
        let pac = Pac::parse(&relabelled).unwrap();
        let key = Key::new(EncType::Aes256CtsHmacSha196, &[0; 32]).unwrap();
        assert_eq!(
            pac.verify_server_signature(&key),
            Err(PacError::MissingBuffer(name))
        );
    }
}

#[test]
fn two_server_signature_buffers_are_refused() {
    let bytes = sample("mit_saved_pac");
    let mut two = bytes.to_vec();
    // Relabel the KDC signature (entry 3) as a second server signature.
    two[8 + 16 * 3..12 + 16 * 3].copy_from_slice(&PAC_SERVER_CHECKSUM.to_le_bytes());
    assert_eq!(
        Pac::parse(&two).unwrap_err(),
        PacError::DuplicateBuffer(PAC_SERVER_CHECKSUM)
    );
}

// ---- (crypto) ----

#[test]
fn windows_2003_pac_server_and_kdc_signatures_verify() {
    let pac = Pac::parse(sample("mit_saved_pac")).unwrap();
    pac.verify_server_signature(&saved_pac_server_key()).unwrap();
    pac.verify_kdc_signature(&saved_pac_kdc_key()).unwrap();
}

#[test]
fn windows_2008_s4u_pac_server_signatures_verify() {
    for s in S4U_SAMPLES {
        let pac = Pac::parse(sample(s.file)).unwrap();
        let key = if s.xrealm {
            s4u_tgt_srv_key()
        } else {
            s4u_srv_key()
        };
        pac.verify_server_signature(&key)
            .unwrap_or_else(|e| panic!("{}: {e}", s.file));
    }
}

#[test]
fn server_signature_with_the_wrong_key_is_refused() {
    let pac = Pac::parse(sample("mit_saved_pac")).unwrap();
    assert_eq!(
        pac.verify_server_signature(&saved_pac_kdc_key()),
        Err(PacError::BadSignature("server"))
    );
    let pac = Pac::parse(sample("mit_s4u_pac_xrealm")).unwrap();
    assert_eq!(
        pac.verify_server_signature(&s4u_srv_key()),
        Err(PacError::BadSignature("server"))
    );
}

#[test]
fn tampered_byte_anywhere_outside_the_zeroed_signatures_is_refused() {
    let bytes = sample("mit_saved_pac");
    let pac = Pac::parse(bytes).unwrap();
    let kdc = pac
        .buffers()
        .iter()
        .find(|b| b.buffer_type == PAC_PRIVSVR_CHECKSUM)
        .unwrap();
    let kdc_sig = kdc.offset as usize + 4..(kdc.offset + u64::from(kdc.size)) as usize;
    let key = saved_pac_server_key();
    for at in 0..bytes.len() {
        let mut t = bytes.to_vec();
        t[at] ^= 0x01;
        let Ok(tampered) = Pac::parse(&t) else { continue };
        let result = tampered.verify_server_signature(&key);
        if kdc_sig.contains(&at) {
            // The KDC Signature is zeroed before the server checksum (MS-PAC 2.8.1).
            assert_eq!(result, Ok(()), "byte {at}");
        } else {
            assert!(result.is_err(), "flip of byte {at} accepted");
        }
    }
}

#[test]
fn tampered_group_rid_is_refused() {
    // The one GroupIds RID (516, Domain Controllers) made 512 (Domain Admins).
    let bytes = sample("mit_saved_pac");
    let needle = [0x04, 0x02, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00];
    let at = bytes.windows(8).position(|w| w == needle).unwrap();
    let mut t = bytes.to_vec();
    t[at] = 0x00;
    let pac = Pac::parse(&t).unwrap();
    assert_eq!(pac.logon_info().unwrap().group_ids()[0].rid, 512);
    assert_eq!(
        pac.verify_server_signature(&saved_pac_server_key()),
        Err(PacError::BadSignature("server"))
    );
}

#[test]
fn built_pac_signatures_verify_for_every_enctype() {
    let sid: Sid = "S-1-5-21-1-2-3".parse().unwrap();
    for etype in [
        EncType::Aes256CtsHmacSha196,
        EncType::Aes128CtsHmacSha196,
        EncType::Aes128CtsHmacSha256128,
        EncType::Aes256CtsHmacSha384192,
        EncType::Rc4Hmac,
    ] {
        let (server, kdc) = (Key::random(etype), Key::random(EncType::Aes256CtsHmacSha196));
        let bytes = PacBuilder::windows_like("alice", "CONTOSO.COM", sid.clone(), 1105, 30)
            .build(&server, &kdc)
            .unwrap();
        let pac = Pac::parse(&bytes).unwrap();
        assert_eq!(
            pac.server_signature().unwrap().signature_type,
            etype.checksum_type()
        );
        pac.verify_server_signature(&server).unwrap();
        pac.verify_kdc_signature(&kdc).unwrap();
        assert!(pac.verify_server_signature(&Key::random(etype)).is_err());
    }
}

#[test]
fn mutated_pacs_never_panic_in_verification() {
    let key = saved_pac_server_key();
    let bytes = sample("mit_saved_pac");
    let mut rng = super::malformed::Lcg(7);
    for _ in 0..2000 {
        let mut t = bytes.to_vec();
        let at = rng.below(t.len());
        t[at] = rng.next() as u8;
        if let Ok(pac) = Pac::parse(&t) {
            let _ = pac.verify_server_signature(&key);
            let _ = pac.verify_kdc_signature(&key);
        }
    }
}

/// The PAC inside the Windows Server 2022 ticket of `t_pac.c`: decrypt the ticket (key usage 2),
/// then EncTicketPart.authorization-data → AD-IF-RELEVANT (1) → AD-WIN2K-PAC (128).
fn win2022_pac() -> Vec<u8> {
    let der = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/testdata/pac/mit_win2022_ticket.der"
    ));
    let ticket: rasn_kerberos::Ticket = rasn::der::decode(der).unwrap();
    let plain = crate::krb::crypto::decrypt(&win2022_server_key(), 2, &ticket.enc_part.cipher).unwrap();
    let part: rasn_kerberos::EncTicketPart = rasn::der::decode(&plain).unwrap();
    for ad in part.authorization_data.unwrap_or_default() {
        if ad.r#type == 1 {
            let inner: rasn_kerberos::AuthorizationData = rasn::der::decode(&ad.data).unwrap();
            if let Some(pac) = inner.into_iter().find(|e| e.r#type == 128) {
                return pac.data.to_vec();
            }
        }
    }
    panic!("no PAC in the ticket");
}

#[test]
fn windows_2022_ticket_pac_parses_and_its_server_signature_verifies() {
    let bytes = win2022_pac();
    let pac = Pac::parse(&bytes).unwrap();
    let types: Vec<u32> = pac.buffers().iter().map(|b| b.buffer_type).collect();
    assert_eq!(
        types,
        [
            PAC_LOGON_INFO,
            PAC_SERVER_CHECKSUM,
            PAC_PRIVSVR_CHECKSUM,
            PAC_CLIENT_INFO,
            PAC_UPN_DNS_INFO,
            PAC_TICKET_CHECKSUM,
            PAC_FULL_CHECKSUM
        ]
    );
    let li = pac.logon_info().unwrap();
    let domain = "S-1-5-21-133451344-1126667713-3548050118";
    assert_eq!(li.effective_name(), "Administrator");
    assert_eq!(
        (li.logon_server(), li.logon_domain_name()),
        ("W2022-118", "W2022-L7")
    );
    assert_eq!(li.user_sid().to_string(), format!("{domain}-500"));
    assert_eq!(li.user_flags(), LOGON_EXTRA_SIDS | LOGON_RESOURCE_GROUPS);
    let all: Vec<String> = li.all_group_sids().iter().map(Sid::to_string).collect();
    assert_eq!(li.all_group_sids_joined(), all.join(","));
    let rid = |r: u32| format!("{domain}-{r}");
    assert_eq!(
        all,
        [
            rid(513),
            rid(512),
            rid(520),
            rid(518),
            rid(519),
            "S-1-18-1".into(),
            rid(572)
        ]
    );
    let ci = pac.client_info().unwrap();
    assert_eq!(
        (ci.name.as_str(), ci.logon_time_unix()),
        ("administrator", 1_669_219_319)
    );
    let upn = pac.upn_dns_info().unwrap();
    assert_eq!(
        (upn.upn.as_str(), upn.dns_domain.as_str()),
        ("Administrator@w2022-l7.base", "W2022-L7.BASE")
    );
    assert_eq!(upn.flags, UPN_CONSTRUCTED | UPN_EXTENDED);
    assert_eq!(upn.sam_name.as_deref(), Some("Administrator"));
    assert_eq!(upn.sid.as_ref(), Some(&li.user_sid()));
    assert_eq!(pac.server_signature().unwrap().signature_type, 16);
    pac.verify_server_signature(&win2022_server_key()).unwrap();
    // Re-encoding its LOGON_INFO (extra SIDs and resource groups included) gives Windows' bytes.
    assert_eq!(
        logon_info::encode(li).unwrap(),
        pac.buffer(PAC_LOGON_INFO).unwrap()
    );
}
