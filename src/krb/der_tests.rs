use super::*;

/// `[0] name-type, [1] SEQUENCE OF KerberosString` as DER, for the components given.
fn principal_name_der(name_type: u8, components: &[&[u8]]) -> Vec<u8> {
    use crate::krb::gss::tlv;
    let strings: Vec<u8> = components.iter().flat_map(|c| tlv(KERBEROS_STRING, c)).collect();
    [
        tlv(ctx(0), &tlv(INTEGER, &[name_type])),
        tlv(ctx(1), &tlv(SEQUENCE, &strings)),
    ]
    .concat()
}

#[test]
fn names_take_any_byte_as_utf8_names_hold_them() {
    // ß is C3 9F, Ł C5 81, р D1 80, я D1 8F: bytes in 0x80..=0xA0, as real KDCs issue them.
    let parts: [&[u8]; 5] = [
        "weiß".as_bytes(),
        "Łukasz".as_bytes(),
        "рябов".as_bytes(),
        b"\x80\x9f\xa0\x00\x7f\xff",
        b"",
    ];
    let der = principal_name_der(1, &parts);
    let v = NameView::read(&der).expect("any bytes are a KerberosString");
    assert_eq!(v.name_type(), 1);
    assert!(v.components().eq(parts.iter().copied()));
}

#[test]
fn kerberos_times_are_read_as_chrono_reads_them() {
    // Every month's last day around leap years and the epoch, and times of day.
    for y in [1970, 1999, 2000, 2024, 2100, 2400] {
        for (m, d) in [(1, 31), (2, 28), (2, 29), (3, 1), (12, 31)] {
            for (hh, mm, ss) in [(0, 0, 0), (23, 59, 59), (12, 30, 7)] {
                let text = format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}Z");
                let want = chrono::NaiveDate::from_ymd_opt(y, m, d)
                    .and_then(|d| d.and_hms_opt(hh, mm, ss))
                    .map(|t| t.and_utc().timestamp());
                assert_eq!(kerberos_time(text.as_bytes()).ok(), want, "{text}");
            }
        }
    }
    for bad in [
        "20240230000000Z",
        "20241301000000Z",
        "20240100000000Z",
        "20240101240000Z",
        "20240101006000Z",
        "20240101000060Z",
        "20240101000000",
        "20240101000000+0000",
        "2024010100000.5Z",
        "20240101000000.5Z",
    ] {
        assert!(kerberos_time(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn integers_are_minimal_twos_complement() {
    assert_eq!(integer(&[0x05]), Ok(5));
    assert_eq!(integer(&[0x00, 0x80]), Ok(128));
    assert_eq!(integer(&[0xFF]), Ok(-1));
    assert_eq!(integer(&[0xFF, 0x7F]), Ok(-129));
    assert_eq!(integer(&[0x7F; 8]), Ok(0x7F7F_7F7F_7F7F_7F7F));
    for bad in [&[][..], &[0x00, 0x05], &[0xFF, 0x80], &[1; 9]] {
        assert_eq!(integer(bad), Err(NotDer), "{bad:?}");
    }
    assert_eq!(uint32(&[0x00, 0xFF, 0xFF, 0xFF, 0xFF]), Ok(u32::MAX));
    assert_eq!(uint32(&[0xFF]), Err(NotDer));
}

#[test]
fn bit_strings_read_msb_first_and_unused_bits_must_be_zero() {
    // ap-options with mutual-required (bit 2) set, use-session-key (bit 1) clear.
    let opts = [0x00, 0x20, 0x00, 0x00, 0x00];
    assert!(bit_string(&opts).is_ok());
    assert!(bit(&opts, 2) && !bit(&opts, 1));
    assert!(!bit(&[0x00], 2));
    assert!(!bit(&[0x06, 0xC0], 2), "past the used bits");
    assert!(bit_string(&[0x01, 0x01]).is_err());
    assert!(bit_string(&[0x08, 0x00]).is_err());
    assert!(bit_string(&[0x01]).is_err());
}
