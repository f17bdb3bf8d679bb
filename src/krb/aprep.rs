//! The AP-REP (RFC 4120 §5.5.2) that completes mutual authentication, framed for GSS
//! (RFC 4121 §4.1, token ID 02 00) and SPNEGO (RFC 4178 NegTokenResp).

use rasn::types::OctetString;
use rasn_kerberos::{ApRep, EncApRepPart, EncryptedData, KerberosTime};

use super::crypto::{EncType, Key, UsageKeys};
use super::gss;

/// RFC 4120 §7.5.1 key usage of the AP-REP enc-part.
pub const USAGE_AP_REP: u32 = 12;

/// Builds the DER AP-REP echoing the authenticator's ctime/cusec, encrypted in the ticket's
/// session key (usage 12), with our initial sequence number for the GSS context.
pub fn build(session_key: &Key, ctime: &KerberosTime, cusec: u32, seq_number: u32) -> Vec<u8> {
    let keys = UsageKeys::new(session_key, USAGE_AP_REP);
    build_with(&keys, session_key.etype(), ctime, cusec, seq_number)
}

/// [`build`] with the session key's usage-12 keys derived already (a kept ticket holds them).
pub fn build_with(
    keys: &UsageKeys,
    etype: EncType,
    ctime: &KerberosTime,
    cusec: u32,
    seq_number: u32,
) -> Vec<u8> {
    let part = EncApRepPart {
        ctime: ctime.clone(),
        cusec: cusec.into(),
        subkey: None,
        seq_number: Some(seq_number),
    };
    let plain = rasn::der::encode(&part).unwrap_or_default();
    let cipher = keys.encrypt(&plain);
    let rep = ApRep {
        pvno: 5.into(),
        msg_type: 15.into(),
        enc_part: EncryptedData {
            etype: etype.as_i32(),
            kvno: None,
            cipher: OctetString::from(cipher),
        },
    };
    rasn::der::encode(&rep).unwrap_or_default()
}

/// The AP-REP as the krb5 mechanism sends it: GSS-framed with token ID 02 00 under `oid`.
pub fn gss_framed(oid: &[u8], ap_rep: &[u8]) -> Vec<u8> {
    gss::wrap_krb5(oid, gss::TOK_AP_REP, ap_rep)
}
