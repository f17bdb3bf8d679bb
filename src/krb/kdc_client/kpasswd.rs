//! The Kerberos change-password protocol (RFC 3244), client side: changing one's own password
//! with an initial `kadmin/changepw` ticket.
//!
//! Request (RFC 3244 §2, MIT `krb5int_mk_chpw_req`): `length(2) | version(2) | AP-REQ
//! length(2) | AP-REQ | KRB-PRIV`. Version 1 (0x0001) carries the raw new password as the
//! KRB-PRIV user-data; MIT kadmind and AD both accept it for changing one's own password (0xff80
//! with ChangePasswdData is the set-password form). The AP-REQ's authenticator carries a fresh
//! subkey and a sequence number; the KRB-PRIV (RFC 4120 §5.7.1) is encrypted in that subkey with
//! key usage 13 and carries the same sequence number (MIT checks it) and the sender's address
//! (MIT's server sets no remote address, so any address, e.g. the directional one, passes).
//!
//! Reply: the same framing with an AP-REP and a KRB-PRIV whose user-data is `result code(2) |
//! result string`, or a KRB-ERROR in place of the KRB-PRIV (or unframed, as AD sends).

use std::time::SystemTime;

use rasn::types::{BitString, OctetString};
use rasn_kerberos::{
    ApOptions, ApRep, ApReq, Authenticator, EncApRepPart, EncKrbPrivPart, EncryptedData, EncryptionKey,
    HostAddress, KrbPriv, Ticket,
};
use zeroize::Zeroizing;

use super::krb_error::KdcError;
use super::{kstr, pname, NT_PRINCIPAL};
use crate::krb::crypto::{EncType, Key, UsageKeys};
use crate::krb::principal::Principal;
use crate::krb::time;

/// RFC 3244 §2 / MIT: protocol version 1, change one's own password.
pub const VERSION_CHANGE_PASSWORD: u16 = 0x0001;
/// RFC 4120 §7.5.1 key usage 11: AP-REQ authenticator.
pub const USAGE_AP_REQ_AUTHENTICATOR: u32 = 11;
/// RFC 4120 §7.5.1 key usage 12: AP-REP encrypted part.
pub const USAGE_AP_REP_ENC_PART: u32 = 12;
/// RFC 4120 §7.5.1 key usage 13: KRB-PRIV encrypted part.
pub const USAGE_KRB_PRIV: u32 = 13;
/// RFC 4120 §7.5.3 address type of a directional address (RFC 4120 §8.1).
pub const ADDRTYPE_DIRECTIONAL: i32 = 3;

/// The sender address put into the KRB-PRIV (RFC 4120 §5.7.1 s-address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderAddress {
    /// The local IPv4 address of the connection (what MIT's client sends).
    Ipv4([u8; 4]),
    /// The local IPv6 address of the connection.
    Ipv6([u8; 16]),
    /// RFC 4120 §8.1 directional address, "sender is the initiator".
    Directional,
}

impl SenderAddress {
    fn host_address(self) -> HostAddress {
        let (addr_type, bytes) = match self {
            Self::Ipv4(a) => (2, a.to_vec()),
            Self::Ipv6(a) => (24, a.to_vec()),
            Self::Directional => (ADDRTYPE_DIRECTIONAL, 0u32.to_be_bytes().to_vec()),
        };
        HostAddress {
            addr_type,
            address: OctetString::from(bytes),
        }
    }
}

/// RFC 3244 §2 result codes (plus MIT's 6 and 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultCode {
    /// 0: success.
    Success,
    /// 1: request fails due to being malformed.
    Malformed,
    /// 2: request fails due to "hard" error in processing the request.
    HardError,
    /// 3: request fails due to an error in authentication processing.
    AuthError,
    /// 4: request fails due to a "soft" error (password policy: length, history, complexity).
    SoftError,
    /// 5: the requestor is not authorized.
    AccessDenied,
    /// 6: protocol version not supported.
    BadVersion,
    /// 7: initial flag needed (the ticket must come from an AS exchange).
    InitialFlagNeeded,
    /// Any other code.
    Other(u16),
}

impl ResultCode {
    /// From the wire value.
    pub fn from_u16(n: u16) -> Self {
        match n {
            0 => Self::Success,
            1 => Self::Malformed,
            2 => Self::HardError,
            3 => Self::AuthError,
            4 => Self::SoftError,
            5 => Self::AccessDenied,
            6 => Self::BadVersion,
            7 => Self::InitialFlagNeeded,
            n => Self::Other(n),
        }
    }
    /// The wire value.
    pub fn as_u16(self) -> u16 {
        match self {
            Self::Success => 0,
            Self::Malformed => 1,
            Self::HardError => 2,
            Self::AuthError => 3,
            Self::SoftError => 4,
            Self::AccessDenied => 5,
            Self::BadVersion => 6,
            Self::InitialFlagNeeded => 7,
            Self::Other(n) => n,
        }
    }
    /// What it means, for an administrator.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Malformed => "malformed request (KRB5_KPASSWD_MALFORMED)",
            Self::HardError => "server error (KRB5_KPASSWD_HARDERROR)",
            Self::AuthError => "authentication failed (KRB5_KPASSWD_AUTHERROR)",
            Self::SoftError => {
                "password refused by policy: too short, too simple, reused or changed too soon \
                 (KRB5_KPASSWD_SOFTERROR)"
            }
            Self::AccessDenied => "access denied (KRB5_KPASSWD_ACCESSDENIED)",
            Self::BadVersion => "protocol version not supported (KRB5_KPASSWD_BAD_VERSION)",
            Self::InitialFlagNeeded => "an initial ticket is needed (KRB5_KPASSWD_INITIAL_FLAG_NEEDED)",
            Self::Other(_) => "unknown result code",
        }
    }
}

/// Why a password change failed. Never carries the password.
#[derive(Debug, thiserror::Error)]
pub enum KpasswdError {
    /// The server answered with a result code other than success.
    #[error("kpasswd refused the change: {} (result code {}){}", .code.describe(), .code.as_u16(),
        if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Refused {
        /// The result code.
        code: ResultCode,
        /// The server's result string (decoded AD policy where it sent one).
        message: String,
    },
    /// The server answered with a KRB-ERROR.
    #[error("kpasswd server error: {0}")]
    Kdc(KdcError),
    /// The reply's AP-REP or KRB-PRIV does not decrypt with our keys (not our server, or tampered).
    #[error("kpasswd reply failed its integrity check ({0})")]
    Integrity(&'static str),
    /// The reply is not well-formed.
    #[error("malformed kpasswd reply: {0}")]
    Malformed(String),
    /// The request cannot be framed (a 16-bit length overflows).
    #[error("kpasswd request too large: {0}")]
    TooLarge(&'static str),
}

/// What a change request needs: the initial `kadmin/changepw` ticket and its session key.
pub struct ChangeRequest<'a> {
    /// The client (whose password changes).
    pub client: &'a Principal,
    /// The ticket from the AS exchange.
    pub ticket: &'a Ticket,
    /// The ticket's session key.
    pub session_key: &'a Key,
    /// The new password (UTF-8 for AD).
    pub new_password: &'a [u8],
    /// The current time.
    pub now: SystemTime,
    /// The KRB-PRIV sender address.
    pub sender: SenderAddress,
}

/// A request sent, waiting for its reply: holds the keys the reply is checked with.
pub struct PendingChange {
    session_key: Key,
    subkey: Key,
}

impl std::fmt::Debug for PendingChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingChange(<keys redacted>)")
    }
}

fn flags32(bits: &[usize]) -> BitString {
    let mut b = BitString::repeat(false, 32);
    for i in bits {
        b.set(*i, true);
    }
    b
}

fn u16_len(n: usize, what: &'static str) -> Result<[u8; 2], KpasswdError> {
    u16::try_from(n)
        .map(u16::to_be_bytes)
        .map_err(|_| KpasswdError::TooLarge(what))
}

/// Builds the RFC 3244 version-1 change-password message (RFC 3244 §2) with a fresh random
/// subkey and sequence number. The returned bytes hold the password only encrypted.
pub fn build_change_request(req: &ChangeRequest<'_>) -> Result<(Vec<u8>, PendingChange), KpasswdError> {
    let subkey = Key::random(req.session_key.etype());
    let seq_number = rand::random::<u32>() & 0x3fff_ffff;
    let secs = time::unix_secs(req.now);
    let usec = req
        .now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    let auth = Authenticator {
        authenticator_vno: 5.into(),
        crealm: kstr(&req.client.realm),
        cname: pname(req.client, NT_PRINCIPAL),
        cksum: None,
        cusec: usec.into(),
        ctime: time::krb_time(secs),
        subkey: Some(EncryptionKey {
            r#type: subkey.etype().as_i32(),
            value: OctetString::from(subkey.expose_bytes().to_vec()),
        }),
        seq_number: Some(seq_number),
        authorization_data: None,
    };
    let auth_der = Zeroizing::new(rasn::der::encode(&auth).unwrap_or_default());
    let ap_req = ApReq {
        pvno: 5.into(),
        msg_type: 14.into(),
        ap_options: ApOptions(flags32(&[])),
        ticket: req.ticket.clone(),
        authenticator: EncryptedData {
            etype: req.session_key.etype().as_i32(),
            kvno: None,
            cipher: OctetString::from(
                UsageKeys::new(req.session_key, USAGE_AP_REQ_AUTHENTICATOR).encrypt(&auth_der),
            ),
        },
    };
    let ap_req_der = rasn::der::encode(&ap_req).unwrap_or_default();
    let priv_part = EncKrbPrivPart {
        user_data: OctetString::from(req.new_password.to_vec()),
        timestamp: Some(time::krb_time(secs)),
        usec: Some(usec.into()),
        seq_number: Some(seq_number),
        sender_address: req.sender.host_address(),
        recipient_address: None,
    };
    let priv_der = Zeroizing::new(rasn::der::encode(&priv_part).unwrap_or_default());
    let krb_priv = KrbPriv {
        pvno: 5.into(),
        msg_type: 21.into(),
        enc_part: EncryptedData {
            etype: subkey.etype().as_i32(),
            kvno: None,
            cipher: OctetString::from(UsageKeys::new(&subkey, USAGE_KRB_PRIV).encrypt(&priv_der)),
        },
    };
    let priv_msg = rasn::der::encode(&krb_priv).unwrap_or_default();
    let total = 6 + ap_req_der.len() + priv_msg.len();
    let mut msg = Vec::with_capacity(total);
    msg.extend_from_slice(&u16_len(total, "message")?);
    msg.extend_from_slice(&VERSION_CHANGE_PASSWORD.to_be_bytes());
    msg.extend_from_slice(&u16_len(ap_req_der.len(), "AP-REQ")?);
    msg.extend_from_slice(&ap_req_der);
    msg.extend_from_slice(&priv_msg);
    Ok((
        msg,
        PendingChange {
            session_key: req.session_key.clone(),
            subkey,
        },
    ))
}

impl PendingChange {
    /// Reads the server's reply (RFC 3244 §2): `Ok(())` for result code 0, otherwise the
    /// result code and string, or the KRB-ERROR. Never panics on any input.
    pub fn read_reply(&self, reply: &[u8]) -> Result<(), KpasswdError> {
        if let Some(e) = KdcError::parse(reply) {
            return Err(error_with_result(e));
        }
        let field = |i: usize| -> Result<usize, KpasswdError> {
            reply
                .get(i..i + 2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                .ok_or_else(|| {
                    KpasswdError::Malformed(format!("{} bytes, shorter than its header", reply.len()))
                })
        };
        let len = field(0)?;
        if len != reply.len() {
            return Err(KpasswdError::Malformed(format!(
                "length field {len}, message has {} bytes",
                reply.len()
            )));
        }
        let version = field(2)?;
        if version != 1 && version != 0xff80 {
            return Err(KpasswdError::Malformed(format!("reply version {version:#06x}")));
        }
        let ap_len = field(4)?;
        let ap_rep = reply
            .get(6..6 + ap_len)
            .ok_or_else(|| KpasswdError::Malformed("AP-REP runs past the end".into()))?;
        let rest = &reply[6 + ap_len..];
        if ap_len == 0 {
            // RFC 3244 §2: no AP-REP means the rest is a KRB-ERROR.
            return match KdcError::parse(rest) {
                Some(e) => Err(error_with_result(e)),
                None => Err(KpasswdError::Malformed("no AP-REP and no KRB-ERROR".into())),
            };
        }
        let rep: ApRep = rasn::der::decode(ap_rep)
            .or_else(|_| rasn::ber::decode(ap_rep))
            .map_err(|_| KpasswdError::Malformed("AP-REP does not decode".into()))?;
        let plain = UsageKeys::new(&self.session_key, USAGE_AP_REP_ENC_PART)
            .decrypt(&rep.enc_part.cipher)
            .map_err(|_| KpasswdError::Integrity("AP-REP"))?;
        let part: EncApRepPart = rasn::der::decode(&plain)
            .or_else(|_| rasn::ber::decode(&plain))
            .map_err(|_| KpasswdError::Malformed("AP-REP enc-part does not decode".into()))?;
        if let Some(e) = KdcError::parse(rest) {
            return Err(error_with_result(e));
        }
        let krb_priv: KrbPriv = rasn::der::decode(rest)
            .or_else(|_| rasn::ber::decode(rest))
            .map_err(|_| KpasswdError::Malformed("KRB-PRIV does not decode".into()))?;
        // The server encrypts in its AP-REP subkey if it sent one, else in ours (MIT), and
        // some servers use the session key.
        let rep_subkey = part
            .subkey
            .as_ref()
            .and_then(|k| Key::new(EncType::from_i32(k.r#type)?, &k.value).ok());
        let keys = rep_subkey.iter().chain([&self.subkey, &self.session_key]);
        let plain = keys
            .filter(|k| k.etype().as_i32() == krb_priv.enc_part.etype)
            .find_map(|k| {
                UsageKeys::new(k, USAGE_KRB_PRIV)
                    .decrypt(&krb_priv.enc_part.cipher)
                    .ok()
            })
            .ok_or(KpasswdError::Integrity("KRB-PRIV"))?;
        let enc: EncKrbPrivPart = rasn::der::decode(&plain)
            .or_else(|_| rasn::ber::decode(&plain))
            .map_err(|_| KpasswdError::Malformed("KRB-PRIV enc-part does not decode".into()))?;
        let (code, message) = parse_result(&enc.user_data)?;
        match code {
            ResultCode::Success => Ok(()),
            code => Err(KpasswdError::Refused { code, message }),
        }
    }
}

/// A KRB-ERROR from kpasswd carries the result in its e-data (MIT `schpw.c`, RFC 3244 §2).
fn error_with_result(e: KdcError) -> KpasswdError {
    match e.e_data.as_deref().map(parse_result) {
        Some(Ok((code, message))) if code != ResultCode::Success => KpasswdError::Refused { code, message },
        _ => KpasswdError::Kdc(e),
    }
}

/// `result code(2) | result string`. AD sends a 30-byte policy block as the string of a soft
/// error (MS-KILE §2.2.? "password policy"; MIT `krb5_chpw_message`): decoded into words here.
fn parse_result(data: &[u8]) -> Result<(ResultCode, String), KpasswdError> {
    let code = data
        .get(0..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| KpasswdError::Malformed("result shorter than its code".into()))?;
    let text = &data[2..];
    let message = if text.len() == 30 && text[0] == 0 && text[1] == 0 {
        let min_length = u32::from_be_bytes([text[2], text[3], text[4], text[5]]);
        let history = u32::from_be_bytes([text[6], text[7], text[8], text[9]]);
        let properties = u32::from_be_bytes([text[10], text[11], text[12], text[13]]);
        format!(
            "AD password policy: minimum length {min_length}, history {history}{}",
            if properties & 1 != 0 {
                ", complexity required"
            } else {
                ""
            }
        )
    } else {
        String::from_utf8_lossy(text)
            .chars()
            .filter(|c| !c.is_control())
            .take(512)
            .collect()
    };
    Ok((ResultCode::from_u16(code), message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krb::kdc_client::changepw_principal;

    fn client() -> Principal {
        Principal::parse("HTTP/outlook.contoso.com@KEDGE.TEST", "").unwrap()
    }

    fn ticket(service_key: &Key) -> Ticket {
        Ticket {
            tkt_vno: 5.into(),
            realm: kstr("KEDGE.TEST"),
            sname: pname(&changepw_principal("KEDGE.TEST"), 2),
            enc_part: EncryptedData {
                etype: 18,
                kvno: Some(1),
                cipher: OctetString::from(UsageKeys::new(service_key, 2).encrypt(b"not checked here")),
            },
        }
    }

    /// The server half: what MIT's `process_chpw_request` does with our message.
    fn server_reads(msg: &[u8], session: &Key) -> (Vec<u8>, Key, u32) {
        assert_eq!(usize::from(u16::from_be_bytes([msg[0], msg[1]])), msg.len());
        assert_eq!(&msg[2..4], &[0, 1]);
        let ap_len = usize::from(u16::from_be_bytes([msg[4], msg[5]]));
        let ap: ApReq = rasn::der::decode(&msg[6..6 + ap_len]).unwrap();
        let auth_plain = UsageKeys::new(session, 11)
            .decrypt(&ap.authenticator.cipher)
            .unwrap();
        let auth: Authenticator = rasn::der::decode(&auth_plain).unwrap();
        let sk = auth.subkey.unwrap();
        let subkey = Key::new(EncType::from_i32(sk.r#type).unwrap(), &sk.value).unwrap();
        let kp: KrbPriv = rasn::der::decode(&msg[6 + ap_len..]).unwrap();
        let plain = UsageKeys::new(&subkey, 13).decrypt(&kp.enc_part.cipher).unwrap();
        let part: EncKrbPrivPart = rasn::der::decode(&plain).unwrap();
        assert_eq!(part.seq_number, auth.seq_number, "MIT checks the sequence number");
        (part.user_data.to_vec(), subkey, auth.seq_number.unwrap())
    }

    fn server_reply(session: &Key, subkey: &Key, code: u16, text: &[u8]) -> Vec<u8> {
        let rep = ApRep {
            pvno: 5.into(),
            msg_type: 15.into(),
            enc_part: EncryptedData {
                etype: 18,
                kvno: None,
                cipher: OctetString::from(
                    UsageKeys::new(session, 12).encrypt(
                        &rasn::der::encode(&EncApRepPart {
                            ctime: time::krb_time(1_764_000_000),
                            cusec: 0.into(),
                            subkey: None,
                            seq_number: Some(7),
                        })
                        .unwrap(),
                    ),
                ),
            },
        };
        let rep = rasn::der::encode(&rep).unwrap();
        let mut data = code.to_be_bytes().to_vec();
        data.extend_from_slice(text);
        let part = EncKrbPrivPart {
            user_data: OctetString::from(data),
            timestamp: None,
            usec: None,
            seq_number: Some(7),
            sender_address: SenderAddress::Ipv4([127, 0, 0, 1]).host_address(),
            recipient_address: None,
        };
        let kp = rasn::der::encode(&KrbPriv {
            pvno: 5.into(),
            msg_type: 21.into(),
            enc_part: EncryptedData {
                etype: 18,
                kvno: None,
                cipher: OctetString::from(
                    UsageKeys::new(subkey, 13).encrypt(&rasn::der::encode(&part).unwrap()),
                ),
            },
        })
        .unwrap();
        let total = 6 + rep.len() + kp.len();
        let mut out = (total as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&(rep.len() as u16).to_be_bytes());
        out.extend_from_slice(&rep);
        out.extend_from_slice(&kp);
        out
    }

    fn request(session: &Key) -> (Vec<u8>, PendingChange) {
        let c = client();
        let t = ticket(&Key::random(EncType::Aes256CtsHmacSha196));
        build_change_request(&ChangeRequest {
            client: &c,
            ticket: &t,
            session_key: session,
            new_password: b"N3w-Pa55word!",
            now: time::system_time(1_764_000_000),
            sender: SenderAddress::Directional,
        })
        .unwrap()
    }

    #[test]
    fn request_carries_the_password_in_a_krb_priv_under_the_authenticator_subkey() {
        let session = Key::random(EncType::Aes256CtsHmacSha196);
        let (msg, _) = request(&session);
        let (pw, _, _) = server_reads(&msg, &session);
        assert_eq!(pw, b"N3w-Pa55word!");
        assert!(
            !msg.windows(13).any(|w| w == b"N3w-Pa55word!"),
            "password in clear"
        );
    }

    #[test]
    fn success_reply_is_ok_and_policy_refusal_is_a_soft_error_with_its_text() {
        let session = Key::random(EncType::Aes256CtsHmacSha196);
        let (msg, pending) = request(&session);
        let (_, subkey, _) = server_reads(&msg, &session);
        pending
            .read_reply(&server_reply(&session, &subkey, 0, b""))
            .unwrap();
        let err = pending
            .read_reply(&server_reply(&session, &subkey, 4, b"Password is too short"))
            .unwrap_err();
        assert!(matches!(
            err,
            KpasswdError::Refused {
                code: ResultCode::SoftError,
                ..
            }
        ));
        assert!(err.to_string().contains("too short"), "{err}");
    }

    #[test]
    fn ad_policy_block_is_decoded_into_words() {
        let mut block = vec![0u8, 0];
        block.extend_from_slice(&12u32.to_be_bytes());
        block.extend_from_slice(&24u32.to_be_bytes());
        block.extend_from_slice(&1u32.to_be_bytes());
        block.extend_from_slice(&[0; 16]);
        let (code, msg) = parse_result(&[&[0, 4][..], &block].concat()).unwrap();
        assert_eq!(code, ResultCode::SoftError);
        assert_eq!(
            msg,
            "AD password policy: minimum length 12, history 24, complexity required"
        );
    }

    #[test]
    fn reply_under_a_foreign_key_fails_integrity() {
        let session = Key::random(EncType::Aes256CtsHmacSha196);
        let (_, pending) = request(&session);
        let other = Key::random(EncType::Aes256CtsHmacSha196);
        let err = pending
            .read_reply(&server_reply(&other, &other, 0, b""))
            .unwrap_err();
        assert!(matches!(err, KpasswdError::Integrity("AP-REP")));
    }

    #[test]
    fn truncated_and_garbage_replies_never_panic() {
        let session = Key::random(EncType::Aes256CtsHmacSha196);
        let (msg, pending) = request(&session);
        let (_, subkey, _) = server_reads(&msg, &session);
        let good = server_reply(&session, &subkey, 0, b"");
        for n in 0..good.len() {
            assert!(pending.read_reply(&good[..n]).is_err());
        }
        for bad in [
            &[0xffu8, 0xff, 0, 1, 0xff, 0xff][..],
            &[0, 6, 0, 1, 0, 0],
            &[0, 3],
        ] {
            assert!(pending.read_reply(bad).is_err());
        }
    }
}
