//! The AP-REP (RFC 4120 §5.5.2) that completes mutual authentication, framed for GSS
//! (RFC 4121 §4.1, token ID 02 00) and SPNEGO (RFC 4178 NegTokenResp).

use rasn_kerberos::KerberosTime;

use super::crypto::{EncType, UsageKeys};
use super::der_back::DerBack;

/// RFC 4120 §7.5.1 key usage of the AP-REP enc-part.
pub const USAGE_AP_REP: u32 = 12;

/// Room for an AP-REP and the framing around it (an aes256 AP-REP is some 110 bytes).
pub const AP_REP_CAPACITY: usize = 256;

/// The DER AP-REP echoing the authenticator's ctime/cusec, encrypted with the session key's
/// usage-12 keys (derived already: a kept ticket holds them), with our initial sequence number
/// for the GSS context; written in front of what `w` holds, for the GSS and SPNEGO framing to
/// go around it in the same buffer. The DER is written by hand (a fixed shape; the tests hold
/// it to rasn's encoding): every mutually authenticated request writes one.
pub fn write_with(
    w: &mut DerBack,
    keys: &UsageKeys,
    etype: EncType,
    ctime: &KerberosTime,
    cusec: u32,
    seq_number: u32,
) {
    let mut part = DerBack::with_capacity(64);
    write_enc_part(&mut part, ctime, cusec, seq_number);
    let cipher = keys.encrypt(part.as_slice());
    write_ap_rep(w, etype.as_i32(), &cipher);
}

/// `[n] EXPLICIT INTEGER n`: the contents of a minimal two's-complement INTEGER, wrapped.
fn write_int_field(w: &mut DerBack, n: u8, value: i64) {
    let bytes = value.to_be_bytes();
    // Drop leading bytes that only repeat the sign.
    let mut skip = 0;
    while skip < 7 {
        let (b, next) = (bytes[skip], bytes[skip + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            skip += 1;
        } else {
            break;
        }
    }
    let int = &bytes[skip..];
    let mut field = [0u8; 4 + 8];
    field[..4].copy_from_slice(&[0xA0 | n, int.len() as u8 + 2, 0x02, int.len() as u8]);
    field[4..4 + int.len()].copy_from_slice(int);
    w.prepend(&field[..4 + int.len()]);
}

/// `YYYYMMDDHHMMSSZ` of `t` in UTC (RFC 4120 §5.2.3).
fn kerberos_time_text(t: &KerberosTime) -> [u8; 15] {
    use chrono::{Datelike, Timelike};
    let t = t.0.naive_utc();
    let mut out = *b"00000000000000Z";
    let fields = [
        (t.year().clamp(0, 9999) as u32, 4),
        (t.month(), 2),
        (t.day(), 2),
        (t.hour(), 2),
        (t.minute(), 2),
        (t.second().min(59), 2),
    ];
    let mut at = 0;
    for (value, width) in fields {
        let mut v = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        at += width;
    }
    out
}

/// DER of EncAPRepPart (`[APPLICATION 27]`): ctime, cusec, no subkey, seq-number; written in
/// front of what `w` holds (fields last to first).
fn write_enc_part(w: &mut DerBack, ctime: &KerberosTime, cusec: u32, seq_number: u32) {
    let part = w.mark();
    write_int_field(w, 3, i64::from(seq_number));
    write_int_field(w, 1, i64::from(cusec));
    let time = w.mark();
    w.tlv(0x18, &kerberos_time_text(ctime));
    w.wrap(0xA0, time);
    w.wrap(0x30, part);
    w.wrap(0x7B, part);
}

/// DER of AP-REP (`[APPLICATION 15]`): pvno 5, msg-type 15, enc-part `{etype, cipher}`;
/// written in front of what `w` holds.
fn write_ap_rep(w: &mut DerBack, etype: i32, cipher: &[u8]) {
    let rep = w.mark();
    let enc_part = w.mark();
    let field = w.mark();
    w.tlv(0x04, cipher);
    w.wrap(0xA2, field);
    write_int_field(w, 0, i64::from(etype));
    w.wrap(0x30, enc_part);
    w.wrap(0xA2, enc_part);
    write_int_field(w, 1, 15);
    write_int_field(w, 0, 5);
    w.wrap(0x30, rep);
    w.wrap(0x6F, rep);
}

/// The AP-REP of [`write_with`] in a buffer of its own, its keys derived from `session_key`.
#[cfg(test)]
fn build(session_key: &super::crypto::Key, ctime: &KerberosTime, cusec: u32, seq_number: u32) -> Vec<u8> {
    let keys = UsageKeys::new(session_key, USAGE_AP_REP);
    let mut w = DerBack::with_capacity(AP_REP_CAPACITY);
    write_with(&mut w, &keys, session_key.etype(), ctime, cusec, seq_number);
    w.into_vec()
}

#[cfg(test)]
fn enc_part_der(ctime: &KerberosTime, cusec: u32, seq_number: u32) -> Vec<u8> {
    let mut w = DerBack::with_capacity(0);
    write_enc_part(&mut w, ctime, cusec, seq_number);
    w.into_vec()
}

#[cfg(test)]
fn ap_rep_der(etype: i32, cipher: &[u8]) -> Vec<u8> {
    let mut w = DerBack::with_capacity(0);
    write_ap_rep(&mut w, etype, cipher);
    w.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krb::crypto::Key;
    use crate::krb::time::{krb_secs, krb_time};
    use rasn_kerberos::{ApRep, EncApRepPart, EncryptedData};

    #[test]
    fn the_hand_written_der_is_rasn_s_der() {
        for secs in [0, 951_782_400, 1_700_000_000, 1_790_000_059, 253_402_300_799] {
            for cusec in [0, 1, 127, 128, 255, 256, 32_767, 32_768, 999_999] {
                for seq in [0, 1, 0x7F, 0x80, 0xFFFF, 0x8000_0000, u32::MAX] {
                    let part = EncApRepPart {
                        ctime: krb_time(secs),
                        cusec: cusec.into(),
                        subkey: None,
                        seq_number: Some(seq),
                    };
                    assert_eq!(
                        enc_part_der(&krb_time(secs), cusec, seq),
                        rasn::der::encode(&part).unwrap(),
                        "{secs} {cusec} {seq}"
                    );
                }
            }
        }
        for etype in [17, 18, 23, -128, 0x7FFF_FFFF] {
            for len in [0, 1, 60, 127, 128, 255, 256, 70_000] {
                let cipher = vec![0xA5; len];
                let rep = ApRep {
                    pvno: 5.into(),
                    msg_type: 15.into(),
                    enc_part: EncryptedData {
                        etype,
                        kvno: None,
                        cipher: cipher.clone().into(),
                    },
                };
                assert_eq!(
                    ap_rep_der(etype, &cipher),
                    rasn::der::encode(&rep).unwrap(),
                    "{etype} {len}"
                );
            }
        }
    }

    #[test]
    fn an_ap_rep_decrypts_to_the_authenticator_s_time() {
        for etype in [
            EncType::Aes256CtsHmacSha196,
            EncType::Aes128CtsHmacSha196,
            EncType::Rc4Hmac,
        ] {
            let key = Key::random(etype);
            let rep = build(&key, &krb_time(1_790_000_000), 654_321, 77);
            let rep: ApRep = rasn::der::decode(&rep).expect("DER");
            assert_eq!(rep.enc_part.etype, etype.as_i32());
            let plain = UsageKeys::new(&key, USAGE_AP_REP)
                .decrypt(&rep.enc_part.cipher)
                .expect("usage 12");
            let part: EncApRepPart = rasn::der::decode(&plain).expect("EncAPRepPart");
            assert_eq!(krb_secs(&part.ctime), 1_790_000_000);
            assert_eq!(part.cusec, 654_321.into());
            assert_eq!(part.seq_number, Some(77));
        }
    }
}
