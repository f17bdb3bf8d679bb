use super::*;
use rasn::types::OctetString;
use rasn_kerberos::{
    AuthorizationDataValue, EncryptionKey, HostAddress, KerberosString, PrincipalName, TicketFlags,
    TransitedEncoding,
};

use crate::krb::authz::{AD_IF_RELEVANT, AD_WIN2K_PAC};
use crate::krb::time::krb_time;

/// What an EncTicketPart fixture holds besides the fields every ticket has.
#[derive(Clone, Copy, Debug, Default)]
struct Shape {
    starttime: bool,
    renew_till: bool,
    /// `caddr` with this many addresses (`Some(0)`: an empty list).
    addresses: Option<usize>,
    /// authorization-data: AD-IF-RELEVANT around a PAC of this many bytes.
    pac_len: Option<usize>,
    invalid: bool,
}

fn kstr(s: &str) -> KerberosString {
    KerberosString::from_bytes(s.as_bytes()).unwrap()
}

fn ticket_flags(bits: &[usize]) -> TicketFlags {
    let mut b = BitString::repeat(false, 32);
    for &n in bits {
        b.set(n, true);
    }
    TicketFlags(b)
}

/// An EncTicketPart of `shape`, for `cname`@`crealm` (names rasn can hold).
fn enc_part(shape: Shape, cname: &[&str], crealm: &str) -> EncTicketPart {
    let pac = shape.pac_len.map(|n| {
        let inner = vec![AuthorizationDataValue {
            r#type: AD_WIN2K_PAC,
            data: OctetString::from(vec![0x50; n]),
        }];
        vec![
            AuthorizationDataValue {
                r#type: AD_IF_RELEVANT,
                data: OctetString::from(rasn::der::encode(&inner).unwrap()),
            },
            AuthorizationDataValue {
                r#type: 0x8d,
                data: OctetString::from_static(b"\x30\x00"),
            },
        ]
    });
    EncTicketPart {
        flags: ticket_flags(if shape.invalid { &[1, 7, 8] } else { &[1, 8] }),
        key: EncryptionKey {
            r#type: 18,
            value: OctetString::from(vec![0x42; 32]),
        },
        crealm: kstr(crealm),
        cname: PrincipalName {
            r#type: 1,
            string: cname.iter().map(|c| kstr(c)).collect(),
        },
        transited: TransitedEncoding {
            r#type: 1,
            contents: OctetString::from_static(b""),
        },
        auth_time: krb_time(1_790_000_000),
        start_time: shape.starttime.then(|| krb_time(1_790_000_060)),
        end_time: krb_time(1_790_036_000),
        renew_till: shape.renew_till.then(|| krb_time(1_790_600_000)),
        caddr: shape.addresses.map(|n| {
            (0..n)
                .map(|i| HostAddress {
                    addr_type: if i % 2 == 0 { 2 } else { 24 },
                    address: OctetString::from(vec![10; if i % 2 == 0 { 4 } else { 16 }]),
                })
                .collect()
        }),
        authorization_data: pac,
    }
}

fn alice(shape: Shape) -> EncTicketPart {
    enc_part(shape, &["alice"], "CONTOSO.COM")
}

/// Shapes over every optional field, present and absent, and PACs whose lengths take the
/// short, one-, two- and three-byte DER length forms.
fn shapes() -> Vec<Shape> {
    let mut out = Vec::new();
    for (starttime, renew_till) in [(false, false), (true, false), (false, true), (true, true)] {
        for addresses in [None, Some(0), Some(1), Some(3)] {
            for pac_len in [None, Some(0), Some(100), Some(200), Some(1500), Some(70_000)] {
                for invalid in [false, true] {
                    out.push(Shape {
                        starttime,
                        renew_till,
                        addresses,
                        pac_len,
                        invalid,
                    });
                }
            }
        }
    }
    out
}

/// `der` with its only `from` replaced by `to`, of the same length (no DER length changes):
/// how these tests put bytes into names that rasn cannot hold.
fn replaced(der: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at: Vec<usize> = (0..der.len())
        .filter(|&i| der[i..].starts_with(from.as_bytes()))
        .collect();
    assert_eq!(at.len(), 1, "{from} occurs once");
    let mut out = der.to_vec();
    out[at[0]..at[0] + to.len()].copy_from_slice(to.as_bytes());
    out
}

#[test]
fn enc_ticket_parts_read_here_match_rasn_field_for_field() {
    for shape in shapes() {
        let e = alice(shape);
        let der = rasn::der::encode(&e).unwrap();
        let v =
            EncTicketView::read_der(&der).unwrap_or_else(|_| panic!("{shape:?}: DER from rasn reads here"));
        assert!(v.matches(&e), "{shape:?}: {v:?}");
        assert_eq!(v.invalid(), shape.invalid);
        assert_eq!(v.starttime.is_some(), shape.starttime);
        // `read` takes the same path and the same answer.
        let mut decoded = None;
        assert!(EncTicketView::read(&der, &mut decoded).is_some_and(|v| v.matches(&e)));
        assert!(decoded.is_none(), "{shape:?}: rasn was not needed");
    }
}

#[test]
fn padding_after_the_der_is_not_part_of_the_ticket() {
    let e = alice(Shape {
        pac_len: Some(300),
        ..Shape::default()
    });
    let mut plain = rasn::der::encode(&e).unwrap();
    plain.extend_from_slice(&[0; 7]);
    let v = EncTicketView::read_der(&plain).expect("read with its padding");
    assert!(v.matches(&e));
    let rasn: EncTicketPart = rasn::ber::decode(&plain).unwrap();
    assert_eq!(rasn, e, "rasn reads it alike");
}

#[test]
fn a_ber_encoded_ticket_is_handed_to_rasn() {
    let e = alice(Shape {
        starttime: true,
        pac_len: Some(200),
        ..Shape::default()
    });
    let der = rasn::der::encode(&e).unwrap();
    // The outer length (one byte after 0x81) in a needless two-byte form: BER, not DER.
    assert_eq!(der[1], 0x82, "a 256..65535-byte EncTicketPart");
    let mut ber = vec![der[0], 0x83, 0x00, der[2], der[3]];
    ber.extend_from_slice(&der[4..]);
    assert_eq!(EncTicketView::read_der(&ber).unwrap_err(), NotDer);
    let mut decoded = None;
    let v = EncTicketView::read(&ber, &mut decoded).expect("rasn reads BER");
    assert!(v.matches(&e));
    assert!(v.authorization_data.is_some());
    assert!(decoded.is_some(), "rasn read it");
}

#[test]
fn truncations_are_refused_by_both_readers_and_never_panic() {
    let e = alice(Shape {
        starttime: true,
        renew_till: true,
        addresses: Some(2),
        pac_len: Some(300),
        invalid: false,
    });
    let der = rasn::der::encode(&e).unwrap();
    for n in 0..der.len() {
        assert!(EncTicketView::read_der(&der[..n]).is_err(), "{n}");
        assert!(EncTicketView::read(&der[..n], &mut None).is_none(), "{n}");
    }
}

#[test]
fn mutated_tickets_never_panic_and_what_is_read_here_rasn_reads_alike() {
    let der = rasn::der::encode(&alice(Shape {
        starttime: true,
        renew_till: true,
        addresses: Some(1),
        pac_len: Some(40),
        invalid: true,
    }))
    .unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let mut m = der.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() as usize) % m.len();
            m[at] = next() as u8;
        }
        let _ = EncTicketView::read(&m, &mut None);
        // The differential the fuzz target runs, on these mutants too.
        crate::fuzzing::enc_ticket(&m);
    }
}

#[test]
fn utf8_names_and_realms_are_read_here_where_rasn_refuses_them() {
    // ß is C3 9F, Ł C5 81, р D1 80, я D1 8F: outside rasn's GeneralString alphabet.
    let (user, second, realm) = ("weiß", "рябов", "ŁÓDŹ.PL");
    let stand_in = |c: char, s: &str| c.to_string().repeat(s.len());
    let (u, s, r) = (stand_in('U', user), stand_in('S', second), stand_in('R', realm));
    let e = enc_part(
        Shape {
            pac_len: Some(100),
            ..Shape::default()
        },
        &[&u, &s],
        &r,
    );
    let der = rasn::der::encode(&e).unwrap();
    let der = replaced(&replaced(&replaced(&der, &u, user), &s, second), &r, realm);
    assert!(
        rasn::ber::decode::<EncTicketPart>(&der).is_err(),
        "rasn refuses these names"
    );
    let v = EncTicketView::read_der(&der).expect("read here");
    assert_eq!(v.crealm, realm.as_bytes());
    assert_eq!(v.cname.name_type(), 1);
    assert!(v.cname.components().eq([user.as_bytes(), second.as_bytes()]));
    assert_eq!((v.authtime, v.endtime), (1_790_000_000, 1_790_036_000));
    assert!(v.authorization_data.is_some());
}

#[test]
fn flags_are_read_msb_first_as_rasn_reads_them() {
    for bits in [&[][..], &[0], &[7], &[1, 8, 31], &[0, 1, 2, 3, 4, 5, 6, 7]] {
        let mut e = alice(Shape::default());
        e.flags = ticket_flags(bits);
        let der = rasn::der::encode(&e).unwrap();
        let v = EncTicketView::read_der(&der).unwrap();
        assert!(v.matches(&e), "{bits:?}");
        for n in 0..40 {
            assert_eq!(v.flags.get(n), bits.contains(&n), "{bits:?} bit {n}");
        }
    }
}

/// The decrypted tickets of real tokens: MIT 1.20 (`tests/testdata/mit`, HTTP and exchangeMDB,
/// a PAC without LOGON_INFO; `tests/testdata/rpc`, impacket's bind) and Windows Server 2022
/// (`tests/testdata/pac/mit_win2022_ticket.der`, a seven-buffer PAC), with their names.
fn real_tickets() -> Vec<(&'static str, Vec<u8>)> {
    use crate::krb::crypto::{decrypt, Key};
    use crate::krb::keytab::Keytab;
    use base64::Engine;
    let data =
        |rel: &str| std::fs::read(format!("{}/tests/testdata/{rel}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let first_token = |rel: &str| {
        let text = String::from_utf8(data(rel)).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(text.lines().next().unwrap())
            .unwrap()
    };
    let open = |token: &[u8], keytab: &str| {
        let (ap, _) = crate::krb::framing::unframe(token).unwrap();
        let req = crate::krb::ap_req::ApReqView::read_der(ap).unwrap();
        let kt = Keytab::parse(&data(keytab)).unwrap();
        let key: &Key = kt
            .entries
            .iter()
            .filter(|e| Some(e.kvno) == req.ticket.kvno && e.key.etype().as_i32() == req.ticket.etype)
            .map(|e| &e.key)
            .find(|k| decrypt(k, 2, req.ticket.cipher).is_ok())
            .expect("a keytab key opens the ticket");
        decrypt(key, 2, req.ticket.cipher).unwrap().to_vec()
    };
    let bind = data("rpc/emsmdb_krb5_bare_connect.bin");
    let rpc_token = crate::rpc::parse_bind(&bind)
        .unwrap()
        .token(&bind)
        .unwrap()
        .to_vec();
    let win = data("pac/mit_win2022_ticket.der");
    let win: rasn_kerberos::Ticket = rasn::der::decode(&win).unwrap();
    let win_key = crate::krb::pac::tests::signatures::win2022_server_key();
    vec![
        ("mit_http", open(&first_token("mit/spnego.b64"), "mit/asa.keytab")),
        (
            "mit_exchange_mdb",
            open(&first_token("mit/mdb.b64"), "mit/asa.keytab"),
        ),
        ("mit_rpc_bind", open(&rpc_token, "rpc/exchange.keytab")),
        (
            "windows_2022",
            decrypt(&win_key, 2, &win.enc_part.cipher).unwrap().to_vec(),
        ),
    ]
}

#[test]
fn real_tickets_read_here_as_rasn_reads_them() {
    for (name, plain) in real_tickets() {
        let e: EncTicketPart = rasn::ber::decode(&plain).unwrap();
        let v = EncTicketView::read_der(&plain).unwrap_or_else(|_| panic!("{name} reads here"));
        assert!(v.matches(&e), "{name}");
        assert!(v.authorization_data.is_some(), "{name} carries a PAC");
    }
}

/// The MIT HTTP ticket with its client `alice` renamed `weiß` in place (five bytes each; C3 9F
/// is outside rasn's alphabet): the seed of a UTF-8 name.
fn utf8_seed(mit_http: &[u8]) -> Vec<u8> {
    replaced(mit_http, "alice", "weiß")
}

/// The `enc_ticket` fuzz seeds (`tests/testdata/enc_ticket/`, read by `fuzz/seed` and
/// `tests/fuzz_smoke.rs`) are these tickets, byte for byte.
#[test]
fn the_enc_ticket_fuzz_seeds_are_the_real_tickets_decrypted() {
    let dir = format!("{}/tests/testdata/enc_ticket", env!("CARGO_MANIFEST_DIR"));
    let seed = |name: &str| std::fs::read(format!("{dir}/{name}.der")).unwrap();
    for (name, plain) in real_tickets() {
        assert!(seed(name) == plain, "{name}.der");
        if name == "mit_http" {
            let utf8 = seed("mit_http_utf8_name");
            assert!(utf8 == utf8_seed(&plain), "mit_http_utf8_name.der");
            let v = EncTicketView::read_der(&utf8).unwrap();
            assert!(v.cname.components().eq(["weiß".as_bytes()]));
            assert!(rasn::ber::decode::<EncTicketPart>(&utf8).is_err());
        }
    }
}
