use super::*;
use rasn::types::{BitString, Integer};
use rasn_kerberos::{
    AuthorizationDataValue, Checksum, EncryptedData, EncryptionKey, KerberosString, PrincipalName, Ticket,
};

use crate::krb::time::krb_time;

fn name(t: i32, parts: &[&str]) -> PrincipalName {
    PrincipalName {
        r#type: t,
        string: parts
            .iter()
            .map(|p| KerberosString::from_bytes(p.as_bytes()).unwrap())
            .collect(),
    }
}

fn realm(r: &str) -> KerberosString {
    KerberosString::from_bytes(r.as_bytes()).unwrap()
}

fn options(bits: &[usize]) -> ApOptionsBits {
    let mut b = BitString::repeat(false, 32);
    for &n in bits {
        b.set(n, true);
    }
    ApOptionsBits(b)
}

struct ApOptionsBits(BitString);

fn ap_req(opts: &[usize], kvno: Option<u32>, sname: PrincipalName, cipher_len: usize) -> ApReq {
    ApReq {
        pvno: Integer::from(5),
        msg_type: Integer::from(14),
        ap_options: rasn_kerberos::ApOptions(options(opts).0),
        ticket: Ticket {
            tkt_vno: Integer::from(5),
            realm: realm("CONTOSO.COM"),
            sname,
            enc_part: EncryptedData {
                etype: 18,
                kvno,
                cipher: vec![0xC5; cipher_len].into(),
            },
        },
        authenticator: EncryptedData {
            etype: 18,
            kvno: None,
            cipher: vec![0xA7; 180].into(),
        },
    }
}

fn authenticator(secs: i64, cksum: bool, subkey: bool, seq: Option<u32>, ad: bool) -> Authenticator {
    Authenticator {
        authenticator_vno: Integer::from(5),
        crealm: realm("CONTOSO.COM"),
        cname: name(1, &["alice"]),
        cksum: cksum.then(|| Checksum {
            r#type: 0x8003,
            checksum: vec![0x10; 24].into(),
        }),
        cusec: Integer::from(999_999),
        ctime: krb_time(secs),
        subkey: subkey.then(|| EncryptionKey {
            r#type: 18,
            value: vec![0x42; 32].into(),
        }),
        seq_number: seq,
        authorization_data: ad.then(|| {
            vec![AuthorizationDataValue {
                r#type: 1,
                data: vec![0x30, 0x00].into(),
            }]
        }),
    }
}

fn assert_same_ap_req(v: &ApReqView<'_>, r: &ApReq) {
    assert!(v.matches(r), "{v:?}");
}

fn assert_same_authenticator(v: &AuthenticatorView<'_>, a: &Authenticator) {
    assert!(v.matches(a), "{v:?}");
}

#[test]
fn ap_reqs_read_here_match_rasn_field_for_field() {
    let snames = [
        name(2, &["http", "outlook.contoso.com"]),
        name(1, &["exchangeMDB", "outlook.contoso.com"]),
        name(-128, &[]),
    ];
    for (i, sname) in snames.into_iter().enumerate() {
        for opts in [
            &[][..],
            &[AP_OPT_MUTUAL_REQUIRED],
            &[AP_OPT_USE_SESSION_KEY, AP_OPT_MUTUAL_REQUIRED],
        ] {
            for kvno in [None, Some(0), Some(7), Some(u32::MAX)] {
                // Short, one-byte and two-byte lengths for the ticket's cipher.
                for cipher_len in [10, 200, 1500 + i] {
                    let req = ap_req(opts, kvno, sname.clone(), cipher_len);
                    let der = rasn::der::encode(&req).unwrap();
                    let v = ApReqView::read_der(&der).expect("DER from rasn reads here");
                    assert_same_ap_req(&v, &req);
                    // `read` takes the same path and the same answer.
                    let mut decoded = None;
                    assert_same_ap_req(&ApReqView::read(&der, &mut decoded).unwrap(), &req);
                    assert!(decoded.is_none(), "rasn was not needed");
                }
            }
        }
    }
}

#[test]
fn authenticators_read_here_match_rasn_field_for_field() {
    for secs in [0, 951_782_400, 1_700_000_000, 1_790_000_000, 4_102_444_799] {
        for (cksum, subkey, seq, ad) in [
            (false, false, None, false),
            (true, false, None, false),
            (true, true, Some(0), false),
            (true, true, Some(u32::MAX), true),
            (false, true, None, true),
        ] {
            let a = authenticator(secs, cksum, subkey, seq, ad);
            let der = rasn::der::encode(&a).unwrap();
            let v = AuthenticatorView::read_der(&der).expect("DER from rasn reads here");
            assert_same_authenticator(&v, &a);
        }
    }
}

#[test]
fn forms_only_rasn_reads_are_handed_to_rasn() {
    let req = ap_req(&[AP_OPT_MUTUAL_REQUIRED], Some(3), name(2, &["http", "h"]), 50);
    let der = rasn::der::encode(&req).unwrap();
    // The outer length (two bytes after 0x82) in a needless three-byte form: BER, not DER.
    assert_eq!(der[1], 0x82, "a 256..65535-byte AP-REQ");
    let mut ber = vec![der[0], 0x83, 0x00, der[2], der[3]];
    ber.extend_from_slice(&der[4..]);
    assert_eq!(ApReqView::read_der(&ber).unwrap_err(), NotDer);
    let mut decoded = None;
    let v = ApReqView::read(&ber, &mut decoded).expect("rasn reads BER");
    assert_same_ap_req(&v, &req);
    assert!(decoded.is_some());
}

#[test]
fn truncations_and_garbage_are_refused_by_both_readers() {
    let req = ap_req(&[], Some(3), name(2, &["http", "outlook.contoso.com"]), 300);
    let der = rasn::der::encode(&req).unwrap();
    for n in 0..der.len() {
        assert!(ApReqView::read_der(&der[..n]).is_err(), "{n}");
        assert!(ApReqView::read(&der[..n], &mut None).is_none(), "{n}");
    }
    let a = rasn::der::encode(&authenticator(1_700_000_000, true, true, Some(1), true)).unwrap();
    for n in 0..a.len() {
        assert!(AuthenticatorView::read_der(&a[..n]).is_err(), "{n}");
    }
    assert!(ApReqView::read(b"\x6e\x80\x00\x00", &mut None).is_none());
}

/// `der` with the only occurrence of `from` replaced by `to`, of the same length (so no DER
/// length changes): how these tests put bytes into names that rasn cannot hold.
fn replaced(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at: Vec<usize> = (0..der.len()).filter(|&i| der[i..].starts_with(from)).collect();
    assert_eq!(at.len(), 1, "{from:?} occurs once");
    let mut out = der.to_vec();
    out[at[0]..at[0] + to.len()].copy_from_slice(to);
    out
}

/// A placeholder of `n` bytes of `c`, for a name of `n` UTF-8 bytes.
fn stand_in(c: char, n: usize) -> String {
    c.to_string().repeat(n)
}

#[test]
fn utf8_names_and_realms_are_read_here_where_rasn_refuses_them() {
    // ß is C3 9F, Ł C5 81, р D1 80, я D1 8F: outside rasn's GeneralString alphabet.
    let (user, host, realm_name) = ("weiß", "рябов.example", "ŁÓDŹ.PL");
    let (n, h, r) = (
        stand_in('N', user.len()),
        stand_in('H', host.len()),
        stand_in('R', realm_name.len()),
    );
    let mut req = ap_req(&[AP_OPT_MUTUAL_REQUIRED], Some(2), name(2, &["http", &h]), 300);
    req.ticket.realm = realm(&r);
    let der = rasn::der::encode(&req).unwrap();
    let der = replaced(
        &replaced(&der, h.as_bytes(), host.as_bytes()),
        r.as_bytes(),
        realm_name.as_bytes(),
    );
    assert!(
        rasn::ber::decode::<ApReq>(&der).is_err(),
        "rasn refuses these names"
    );
    let v = ApReqView::read_der(&der).expect("read here, so validation never asks rasn");
    assert_eq!(v.realm, realm_name.as_bytes());
    assert!(v.sname.components().eq([&b"http"[..], host.as_bytes()]));

    let mut a = authenticator(1_700_000_000, true, true, Some(1), true);
    a.cname = name(1, &[&n]);
    a.crealm = realm(&r);
    let der = rasn::der::encode(&a).unwrap();
    let der = replaced(
        &replaced(&der, n.as_bytes(), user.as_bytes()),
        r.as_bytes(),
        realm_name.as_bytes(),
    );
    assert!(rasn::ber::decode::<Authenticator>(&der).is_err());
    let v = AuthenticatorView::read_der(&der).expect("read here");
    assert_eq!(v.crealm, realm_name.as_bytes());
    assert!(v.cname.components().eq([user.as_bytes()]));
    assert_eq!((v.cusec, v.ctime), (999_999, 1_700_000_000));
}
