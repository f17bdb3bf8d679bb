//! Keytab reader/writer tests: ktutil-written files, round trips, holes, truncations.

use super::*;

const MIT_DEFAULT: &[u8] = include_bytes!("../../../../tests/testdata/keytab/mit_default_salt.keytab");
const MIT_DEFAULT_KLIST: &str = include_str!("../../../../tests/testdata/keytab/mit_default_salt.klist.txt");
const AD_SALT: &[u8] = include_bytes!("../../../../tests/testdata/keytab/ad_computer_salt.keytab");
const AD_SALT_KLIST: &str = include_str!("../../../../tests/testdata/keytab/ad_computer_salt.klist.txt");
const HOLE: &[u8] = include_bytes!("../../../../tests/testdata/keytab/hole.keytab");

type Summary = (String, i32, u32, u32, i32, Vec<u8>);

fn summary(kt: &Keytab) -> Vec<Summary> {
    kt.entries
        .iter()
        .map(|e| {
            let p = &e.principal;
            (
                p.to_string(),
                p.name_type,
                e.timestamp,
                e.kvno,
                e.key.etype().as_i32(),
                e.key.expose_bytes().to_vec(),
            )
        })
        .collect()
}

/// (kvno, principal, key bytes) of the supported enctypes in a `klist -kteK` listing.
fn klist_keys(listing: &str) -> Vec<(u32, String, Vec<u8>)> {
    listing
        .lines()
        .filter(|l| l.contains("(0x") && !l.contains("camellia"))
        .map(|l| {
            let mut words = l.split_whitespace();
            let kvno = words.next().unwrap().parse().unwrap();
            let principal = words.nth(2).unwrap().to_string();
            let hex_key = l.rsplit("(0x").next().unwrap().trim_end_matches(')');
            (kvno, principal, hex::decode(hex_key).unwrap())
        })
        .collect()
}

fn record_boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut at = vec![2];
    let mut pos = 2;
    while pos + 4 <= bytes.len() {
        let size = i32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap());
        pos += 4 + size.unsigned_abs() as usize;
        at.push(pos);
    }
    at
}

#[test]
fn mit_ktutil_keytab_parses_with_every_principal_kvno_and_key() {
    let kt = Keytab::parse(MIT_DEFAULT).unwrap();
    assert_eq!(kt.entries.len(), 9);
    assert_eq!(
        kt.skipped_unsupported, 1,
        "camellia128-cts-cmac is skipped and counted"
    );
    let got: Vec<_> = kt
        .entries
        .iter()
        .map(|e| (e.kvno, e.principal.to_string(), e.key.expose_bytes().to_vec()))
        .collect();
    assert_eq!(got, klist_keys(MIT_DEFAULT_KLIST));
    let http = Principal::parse("HTTP/outlook.contoso.com@CONTOSO.COM", "").unwrap();
    assert_eq!(kt.entries[0].principal.components, http.components);
    assert_eq!(kt.entries[0].principal.name_type, 1);
}

#[test]
fn kvno_above_255_comes_from_the_32_bit_field() {
    let kt = Keytab::parse(MIT_DEFAULT).unwrap();
    let mdb = Principal::parse("exchangeMDB/outlook.contoso.com@CONTOSO.COM", "").unwrap();
    let http = Principal::parse("HTTP/outlook.contoso.com@CONTOSO.COM", "").unwrap();
    assert_eq!(kt.max_kvno(&Principal { name_type: 1, ..mdb }), Some(300));
    assert_eq!(kt.max_kvno(&Principal { name_type: 1, ..http }), Some(6));
}

#[test]
fn mit_default_salt_keys_match_string_to_key() {
    let kt = Keytab::parse(MIT_DEFAULT).unwrap();
    for e in &kt.entries {
        let password: &[u8] = match (e.principal.components[0].as_str(), e.kvno) {
            ("HTTP", 5) => b"Passw0rd-kvno5",
            ("HTTP", 6) => b"Passw0rd-kvno6",
            ("exchangeMDB", 300) => b"Mdb-Secret!7",
            other => panic!("unexpected entry {other:?}"),
        };
        let salt = default_salt(&e.principal);
        let derived =
            crate::krb::crypto::string_to_key(e.key.etype(), password, salt.as_bytes(), None).unwrap();
        assert_eq!(
            derived.expose_bytes(),
            e.key.expose_bytes(),
            "{} kvno {} {:?}",
            e.principal,
            e.kvno,
            e.key
        );
    }
}

#[test]
fn ad_computer_salt_keys_match_string_to_key() {
    let salt = ad_computer_salt("CONTOSO.COM", "EXCH2010ASA$");
    assert_eq!(salt, "CONTOSO.COMhostexch2010asa.contoso.com");
    let kt = Keytab::parse(AD_SALT).unwrap();
    assert_eq!(kt.entries.len(), 3);
    let etypes: Vec<_> = kt.entries.iter().map(|e| e.key.etype()).collect();
    let derived = derive_keys(b"Asa-Pa55word!", salt.as_bytes(), &etypes).unwrap();
    for (e, d) in kt.entries.iter().zip(&derived) {
        assert_eq!(e.principal.to_string(), "EXCH2010ASA$@CONTOSO.COM");
        assert_eq!(e.kvno, 3);
        assert_eq!(d.expose_bytes(), e.key.expose_bytes(), "{:?}", e.key);
    }
    let listed: Vec<_> = klist_keys(AD_SALT_KLIST).into_iter().map(|(_, _, k)| k).collect();
    assert_eq!(
        derived
            .iter()
            .map(|k| k.expose_bytes().to_vec())
            .collect::<Vec<_>>(),
        listed
    );
}

#[test]
fn add_password_keys_writes_what_mit_wrote() {
    let mit = Keytab::parse(AD_SALT).unwrap();
    let mut kt = Keytab::default();
    let first = &mit.entries[0];
    let etypes: Vec<_> = mit.entries.iter().map(|e| e.key.etype()).collect();
    let salt = ad_computer_salt("CONTOSO.COM", "EXCH2010ASA$");
    kt.add_password_keys(
        &first.principal,
        3,
        first.timestamp,
        b"Asa-Pa55word!",
        salt.as_bytes(),
        &etypes,
    )
    .unwrap();
    assert_eq!(kt.to_bytes(), AD_SALT, "byte-identical to ktutil's file");
}

#[test]
fn mit_keytab_reserializes_byte_identically() {
    assert_eq!(Keytab::parse(AD_SALT).unwrap().to_bytes(), AD_SALT);
}

#[test]
fn parse_to_bytes_parse_roundtrips() {
    for bytes in [MIT_DEFAULT, AD_SALT, HOLE] {
        let kt = Keytab::parse(bytes).unwrap();
        let again = Keytab::parse(&kt.to_bytes()).unwrap();
        assert_eq!(summary(&again), summary(&kt));
        assert_eq!(again.skipped_unsupported, 0);
    }
}

#[test]
fn deleted_slot_is_skipped() {
    assert!(
        i32::from_be_bytes(HOLE[2..6].try_into().unwrap()) < 0,
        "test data starts with a hole"
    );
    let kt = Keytab::parse(HOLE).unwrap();
    assert_eq!(kt.entries.len(), 1);
    assert_eq!(kt.entries[0].kvno, 2);
    assert_eq!(
        kt.entries[0].principal.to_string(),
        "host/hole.contoso.com@CONTOSO.COM"
    );
}

#[test]
fn every_truncation_is_an_error_or_a_shorter_keytab_never_a_panic() {
    for bytes in [MIT_DEFAULT, AD_SALT, HOLE] {
        let boundaries = record_boundaries(bytes);
        for cut in 0..bytes.len() {
            let r = Keytab::parse(&bytes[..cut]);
            if boundaries.contains(&cut) {
                assert!(r.is_ok(), "cut at record boundary {cut}");
            } else {
                assert!(r.is_err(), "cut at {cut} must be refused");
            }
        }
    }
    assert_eq!(Keytab::parse(&[]).unwrap_err(), KeytabError::Empty);
    assert!(matches!(
        Keytab::parse(&MIT_DEFAULT[..40]),
        Err(KeytabError::Truncated { offset: 2, .. })
    ));
}

#[test]
fn mutated_keytabs_never_panic() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = MIT_DEFAULT.to_vec();
        let at = (state as usize) % bytes.len();
        bytes[at] = (state >> 32) as u8;
        let at2 = ((state >> 16) as usize) % bytes.len();
        bytes[at2] ^= 0x80;
        let _ = Keytab::parse(&bytes);
    }
}

#[test]
fn wrong_version_is_refused() {
    assert_eq!(Keytab::parse(&[5, 3]).unwrap_err(), KeytabError::BadVersion(5, 3));
    assert_eq!(
        Keytab::parse(&[4, 2, 0]).unwrap_err(),
        KeytabError::BadVersion(4, 2)
    );
    assert!(matches!(
        Keytab::parse(&[5]),
        Err(KeytabError::Truncated { offset: 1, .. })
    ));
    assert_eq!(Keytab::parse(&[5, 2]).unwrap().entries.len(), 0);
}

#[test]
fn zero_size_ends_the_keytab_as_in_mit() {
    let mut bytes = AD_SALT.to_vec();
    let second = record_boundaries(AD_SALT)[1];
    bytes.truncate(second);
    bytes.extend_from_slice(&[0u8; 64]);
    assert_eq!(Keytab::parse(&bytes).unwrap().entries.len(), 1);
}

/// One version-1 entry: little-endian, realm counted among the components, no name type.
fn v1_keytab(with_vno32: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&3u16.to_le_bytes()); // realm + 2 components
    for part in ["CONTOSO.COM", "HTTP", "outlook.contoso.com"] {
        body.extend_from_slice(&(part.len() as u16).to_le_bytes());
        body.extend_from_slice(part.as_bytes());
    }
    body.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    body.push(4);
    body.extend_from_slice(&17u16.to_le_bytes());
    body.extend_from_slice(&16u16.to_le_bytes());
    body.extend_from_slice(&[0x42; 16]);
    if with_vno32 {
        body.extend_from_slice(&260u32.to_le_bytes());
    }
    let mut out = vec![5, 1];
    out.extend_from_slice(&(body.len() as i32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn version_1_little_endian_keytab_parses() {
    let kt = Keytab::parse(&v1_keytab(false)).unwrap();
    let e = &kt.entries[0];
    assert_eq!(e.principal.to_string(), "HTTP/outlook.contoso.com@CONTOSO.COM");
    assert_eq!(
        (e.principal.name_type, e.timestamp, e.kvno),
        (0, 1_700_000_000, 4)
    );
    assert_eq!(e.key.etype(), EncType::Aes128CtsHmacSha196);
    assert_eq!(Keytab::parse(&v1_keytab(true)).unwrap().entries[0].kvno, 260);
}

#[test]
fn key_of_wrong_length_for_its_enctype_is_malformed() {
    let mut bytes = v1_keytab(false);
    let etype_at = bytes.len() - 20;
    bytes[etype_at..etype_at + 2].copy_from_slice(&18u16.to_le_bytes()); // aes256 with 16 bytes
    assert!(
        matches!(Keytab::parse(&bytes), Err(KeytabError::Malformed { offset, .. }) if offset == etype_at)
    );
}

#[test]
fn entry_shorter_than_its_fields_is_malformed() {
    let mut bytes = AD_SALT.to_vec();
    let size = i32::from_be_bytes(bytes[2..6].try_into().unwrap());
    bytes[2..6].copy_from_slice(&(size - 20).to_be_bytes());
    assert!(matches!(
        Keytab::parse(&bytes),
        Err(KeytabError::Malformed { .. })
    ));
}

#[test]
fn error_messages_name_the_offset_and_never_key_bytes() {
    let msg = Keytab::parse(&MIT_DEFAULT[..100]).unwrap_err().to_string();
    assert!(msg.contains("byte"), "{msg}");
    let shown = format!("{:?}", Keytab::parse(AD_SALT).unwrap());
    let key_hex = hex::encode(Keytab::parse(AD_SALT).unwrap().entries[0].key.expose_bytes());
    assert!(!shown.contains(&key_hex[..8]) && shown.contains("redacted"));
}

mod samba_ad;
