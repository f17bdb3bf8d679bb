//! The AS exchange (RFC 4120 §3.1, §5.4.1–§5.4.2) for an initial ticket to `kadmin/changepw`,
//! authenticated with a long-term key from the keytab (no password), as RFC 3244 §2 needs.
//!
//! The client sends an AS-REQ without pre-authentication, as `kinit` does. A KDC that requires
//! it (AD always; MIT with `+requires_preauth`) answers KDC_ERR_PREAUTH_REQUIRED with METHOD-DATA
//! naming the enctypes and salts it wants (PA-ETYPE-INFO2, §5.2.7.5); the client then retries
//! with PA-ENC-TIMESTAMP (§5.2.7.2, key usage 1) in the key of the first such enctype it holds.
//! A KDC that does not require it answers with the AS-REP at once; MIT puts PA-ETYPE-INFO2 in
//! the AS-REP's padata. Either way the reply's enc-part (key usage 3) decrypts only with the
//! right key, which proves the keytab's key is the KDC's.
//!
//! The salt the KDC names is what the roll needs to derive the new keys: for MIT the principal's
//! default salt, for an AD computer account `<REALM>host<name>.<realm>`.

use std::time::SystemTime;

use rasn::types::{BitString, OctetString, SequenceOf};
use rasn_kerberos::{
    AsRep, AsReq, EncAsRepPart, EncKdcRepPart, EncTgsRepPart, EncryptedData, EtypeInfo2, KdcOptions, KdcReq,
    KdcReqBody, PaData, PaEncTsEnc, Ticket,
};

use super::krb_error::{
    KdcError, KDC_ERR_PREAUTH_FAILED, KDC_ERR_PREAUTH_REQUIRED, KRB_AP_ERR_BAD_INTEGRITY,
};
use super::{kstr, pname, principal_of, NT_PRINCIPAL, NT_SRV_INST};
use crate::krb::crypto::{EncType, Key, UsageKeys};
use crate::krb::principal::Principal;
use crate::krb::time;

/// RFC 4120 §7.5.1 key usage 1: PA-ENC-TIMESTAMP, encrypted with the client key.
pub const USAGE_PA_ENC_TIMESTAMP: u32 = 1;
/// RFC 4120 §7.5.1 key usage 3: AS-REP encrypted part, encrypted with the client key.
pub const USAGE_AS_REP_ENC_PART: u32 = 3;
/// RFC 4120 §7.5.2 PA-ENC-TIMESTAMP.
pub const PA_ENC_TIMESTAMP: i32 = 2;
/// RFC 4120 §7.5.2 PA-ETYPE-INFO2.
pub const PA_ETYPE_INFO2: i32 = 19;
/// Ticket lifetime asked for: MIT asks five minutes for `kadmin/changepw` tickets.
pub const CHANGEPW_TICKET_LIFETIME_SECS: i64 = 300;

/// One PA-ETYPE-INFO2 entry (RFC 4120 §5.2.7.5): what the KDC says about a client key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtypeInfo {
    /// The enctype (RFC 3961 number).
    pub etype: i32,
    /// The salt, when the KDC sent one (else the default salt applies).
    pub salt: Option<String>,
    /// String-to-key parameters (for AES the big-endian iteration count, RFC 3962 §4).
    pub s2kparams: Option<Vec<u8>>,
}

impl EtypeInfo {
    /// The iteration count an AES `s2kparams` carries (RFC 3962 §4), if any.
    pub fn iterations(&self) -> Option<u32> {
        let p: [u8; 4] = self.s2kparams.as_deref()?.try_into().ok()?;
        Some(u32::from_be_bytes(p))
    }
}

/// The initial ticket and what came with it.
pub struct AsTicket {
    /// The ticket for the server (opaque to the client).
    pub ticket: Ticket,
    /// The ticket's session key (zeroized on drop).
    pub session_key: Key,
    /// The client principal as the KDC named it (canonical spelling).
    pub client: Principal,
    /// Enctype of the client key the reply was encrypted in.
    pub reply_etype: EncType,
    /// Its kvno as the KDC stamped it, when present.
    pub reply_kvno: Option<u32>,
    /// Ticket end (Unix seconds).
    pub endtime: i64,
    /// Everything the KDC said in PA-ETYPE-INFO2 (error e-data or AS-REP padata).
    pub etype_info: Vec<EtypeInfo>,
    /// Whether PA-ENC-TIMESTAMP was sent (the KDC required pre-authentication).
    pub preauthenticated: bool,
}

impl AsTicket {
    /// The salt the KDC named for `etype`, if it named one.
    pub fn salt_for(&self, etype: EncType) -> Option<&str> {
        self.etype_info
            .iter()
            .find(|e| e.etype == etype.as_i32())
            .and_then(|e| e.salt.as_deref())
    }
    /// The iteration count the KDC named for `etype`, if any.
    pub fn iterations_for(&self, etype: EncType) -> Option<u32> {
        self.etype_info
            .iter()
            .find(|e| e.etype == etype.as_i32())
            .and_then(EtypeInfo::iterations)
    }
}

impl std::fmt::Debug for AsTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsTicket")
            .field("client", &self.client.to_string())
            .field("reply_etype", &self.reply_etype.name())
            .field("reply_kvno", &self.reply_kvno)
            .field("etype_info", &self.etype_info)
            .finish()
    }
}

/// Why the AS exchange failed. No variant carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum AsError {
    /// The KDC refused the key: KDC_ERR_PREAUTH_FAILED, or a reply that does not decrypt.
    #[error(
        "the KDC refused the key of {client} from the keytab ({detail}): the keytab is stale or \
         was made with another password or salt"
    )]
    WrongKey { client: String, detail: String },
    /// The KDC answered with another KRB-ERROR.
    #[error("the KDC refused the AS-REQ for {client}: {error}")]
    Kdc { client: String, error: KdcError },
    /// The KDC wants an enctype kedge holds no key of.
    #[error("the KDC accepts enctypes {wanted:?} for {client}, the keytab has {have:?}")]
    NoCommonEnctype {
        client: String,
        wanted: Vec<i32>,
        have: Vec<&'static str>,
    },
    /// Pre-authentication was asked for again after it was sent.
    #[error("the KDC asked for pre-authentication again after PA-ENC-TIMESTAMP was sent")]
    PreauthLoop,
    /// The reply is not a well-formed AS-REP or KRB-ERROR, or does not match the request.
    #[error("malformed KDC reply: {0}")]
    Malformed(String),
}

/// One AS exchange in progress.
pub struct AsExchange {
    client: Principal,
    server: Principal,
    keys: Vec<Key>,
    nonce: u32,
    preauth_sent: bool,
    etype_info: Vec<EtypeInfo>,
}

impl std::fmt::Debug for AsExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsExchange")
            .field("client", &self.client.to_string())
            .field("server", &self.server.to_string())
            .finish()
    }
}

/// What to do after a reply.
#[derive(Debug)]
pub enum AsStep {
    /// Send this AS-REQ (now with PA-ENC-TIMESTAMP) and feed the reply back.
    Retry(Vec<u8>),
    /// The exchange is complete.
    Done(Box<AsTicket>),
}

impl AsExchange {
    /// Starts an exchange for `client` to `server` with the client's long-term `keys` (strongest
    /// first is best; one per enctype). `nonce` must be fresh (RFC 4120 §5.4.1).
    pub fn new(client: Principal, server: Principal, keys: Vec<Key>, nonce: u32) -> Self {
        Self {
            client,
            server,
            keys,
            nonce: nonce & 0x7fff_ffff,
            preauth_sent: false,
            etype_info: Vec::new(),
        }
    }

    /// The first AS-REQ, without pre-authentication (RFC 4120 §3.1.1).
    pub fn first_request(&self, now: SystemTime) -> Vec<u8> {
        self.request(now, None)
    }

    fn etypes(&self) -> Vec<&'static str> {
        self.keys.iter().map(|k| k.etype().name()).collect()
    }

    fn request(&self, now: SystemTime, padata: Option<PaData>) -> Vec<u8> {
        let secs = time::unix_secs(now);
        let body = KdcReqBody {
            kdc_options: KdcOptions(BitString::repeat(false, 32)),
            cname: Some(pname(&self.client, NT_PRINCIPAL)),
            realm: kstr(&self.client.realm),
            sname: Some(pname(&self.server, NT_SRV_INST)),
            from: None,
            till: time::krb_time(secs + CHANGEPW_TICKET_LIFETIME_SECS),
            rtime: None,
            nonce: self.nonce,
            etype: self.keys.iter().map(|k| k.etype().as_i32()).collect(),
            addresses: None,
            enc_authorization_data: None,
            additional_tickets: None,
        };
        let req = AsReq(KdcReq {
            pvno: 5.into(),
            msg_type: 10.into(),
            padata: padata.map(|p| vec![p]),
            req_body: body,
        });
        rasn::der::encode(&req).unwrap_or_default()
    }

    /// PA-ENC-TIMESTAMP (RFC 4120 §5.2.7.2) in `key`, key usage 1.
    fn enc_timestamp(key: &Key, now: SystemTime) -> PaData {
        let micros = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0);
        let ts = PaEncTsEnc {
            patimestamp: time::krb_time(time::unix_secs(now)),
            pausec: Some(micros.into()),
        };
        let plain = rasn::der::encode(&ts).unwrap_or_default();
        let enc = EncryptedData {
            etype: key.etype().as_i32(),
            kvno: None,
            cipher: OctetString::from(UsageKeys::new(key, USAGE_PA_ENC_TIMESTAMP).encrypt(&plain)),
        };
        PaData {
            r#type: PA_ENC_TIMESTAMP,
            value: OctetString::from(rasn::der::encode(&enc).unwrap_or_default()),
        }
    }

    /// Handles the KDC's reply: a KRB-ERROR (retry with pre-authentication where asked) or
    /// the AS-REP, decrypted and checked against the request (nonce, client, server).
    pub fn handle_reply(&mut self, reply: &[u8], now: SystemTime) -> Result<AsStep, AsError> {
        let client = self.client.to_string();
        if let Some(err) = KdcError::parse(reply) {
            return match err.code {
                KDC_ERR_PREAUTH_REQUIRED if self.preauth_sent => Err(AsError::PreauthLoop),
                KDC_ERR_PREAUTH_REQUIRED => {
                    self.etype_info = err
                        .e_data
                        .as_deref()
                        .map(etype_info_of_method_data)
                        .unwrap_or_default();
                    let key = self.preauth_key().ok_or_else(|| AsError::NoCommonEnctype {
                        client: client.clone(),
                        wanted: self.etype_info.iter().map(|e| e.etype).collect(),
                        have: self.etypes(),
                    })?;
                    let pa = Self::enc_timestamp(key, now);
                    self.preauth_sent = true;
                    Ok(AsStep::Retry(self.request(now, Some(pa))))
                }
                KDC_ERR_PREAUTH_FAILED | KRB_AP_ERR_BAD_INTEGRITY => Err(AsError::WrongKey {
                    client,
                    detail: err.to_string(),
                }),
                _ => Err(AsError::Kdc { client, error: err }),
            };
        }
        let rep: AsRep = rasn::der::decode(reply)
            .or_else(|_| rasn::ber::decode(reply))
            .map_err(|_| AsError::Malformed("neither an AS-REP nor a KRB-ERROR".into()))?;
        let rep = rep.0;
        if rep.msg_type != 11.into() {
            return Err(AsError::Malformed("AS-REP with a msg-type other than 11".into()));
        }
        if let Some(pa) = &rep.padata {
            let info = etype_info_of_padata(pa);
            if !info.is_empty() {
                self.etype_info = info;
            }
        }
        let etype_n = rep.enc_part.etype;
        let key = self
            .keys
            .iter()
            .find(|k| k.etype().as_i32() == etype_n)
            .ok_or_else(|| AsError::NoCommonEnctype {
                client: client.clone(),
                wanted: vec![etype_n],
                have: self.etypes(),
            })?;
        let plain = UsageKeys::new(key, USAGE_AS_REP_ENC_PART)
            .decrypt(&rep.enc_part.cipher)
            .map_err(|_| AsError::WrongKey {
                client: client.clone(),
                detail: format!(
                    "the AS-REP enc-part (kvno {}) does not decrypt with the keytab's {} key",
                    rep.enc_part.kvno.map_or("?".into(), |k| k.to_string()),
                    key.etype().name()
                ),
            })?;
        // RFC 4120 §5.4.2: EncASRepPart; some KDCs send the EncTGSRepPart tag (note there).
        let part: EncKdcRepPart = match rasn::der::decode::<EncAsRepPart>(&plain) {
            Ok(p) => p.0,
            Err(_) => rasn::ber::decode::<EncAsRepPart>(&plain)
                .map(|p| p.0)
                .or_else(|_| rasn::ber::decode::<EncTgsRepPart>(&plain).map(|p| p.0))
                .map_err(|_| AsError::Malformed("AS-REP enc-part does not decode".into()))?,
        };
        if part.nonce != self.nonce {
            return Err(AsError::Malformed(
                "AS-REP nonce does not match the request".into(),
            ));
        }
        let crealm = super::text(&rep.crealm);
        let got_client = principal_of(&rep.cname, &crealm);
        let sname = principal_of(&part.sname, &super::text(&part.srealm));
        if sname.components != self.server.components {
            return Err(AsError::Malformed(format!(
                "AS-REP is for {sname}, asked for {}",
                self.server
            )));
        }
        let sk_etype = EncType::from_i32(part.key.r#type)
            .ok_or_else(|| AsError::Malformed(format!("session key enctype {}", part.key.r#type)))?;
        let session_key = Key::new(sk_etype, &part.key.value)
            .map_err(|e| AsError::Malformed(format!("session key: {e}")))?;
        Ok(AsStep::Done(Box::new(AsTicket {
            ticket: rep.ticket,
            session_key,
            client: got_client,
            reply_etype: key.etype(),
            reply_kvno: rep.enc_part.kvno,
            endtime: time::krb_secs(&part.end_time),
            etype_info: std::mem::take(&mut self.etype_info),
            preauthenticated: self.preauth_sent,
        })))
    }

    /// The key to pre-authenticate with: the first enctype of PA-ETYPE-INFO2 we hold a key
    /// of (the KDC lists its preference first), else our first key when the KDC named none.
    fn preauth_key(&self) -> Option<&Key> {
        if self.etype_info.is_empty() {
            return self.keys.first();
        }
        self.etype_info
            .iter()
            .find_map(|i| self.keys.iter().find(|k| k.etype().as_i32() == i.etype))
    }
}

fn etype_info_of_method_data(e_data: &[u8]) -> Vec<EtypeInfo> {
    rasn::der::decode::<SequenceOf<PaData>>(e_data)
        .or_else(|_| rasn::ber::decode::<SequenceOf<PaData>>(e_data))
        .map(|pa| etype_info_of_padata(&pa))
        .unwrap_or_default()
}

fn etype_info_of_padata(pa: &[PaData]) -> Vec<EtypeInfo> {
    pa.iter()
        .filter(|p| p.r#type == PA_ETYPE_INFO2)
        .filter_map(|p| {
            rasn::der::decode::<EtypeInfo2>(&p.value)
                .or_else(|_| rasn::ber::decode::<EtypeInfo2>(&p.value))
                .ok()
        })
        .flatten()
        .map(|e| EtypeInfo {
            etype: e.etype,
            salt: e.salt.as_ref().map(super::text),
            s2kparams: e.s2kparams.map(|p| p.to_vec()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krb::kdc_client::changepw_principal;
    use rasn_kerberos::{EncryptionKey, EtypeInfo2Entry, KrbError, LastReqValue, PrincipalName, TicketFlags};

    const SALT: &str = "KEDGE.TESTHTTPoutlook.contoso.com";

    fn client() -> Principal {
        Principal::parse("HTTP/outlook.contoso.com@KEDGE.TEST", "").unwrap()
    }
    fn now() -> SystemTime {
        time::system_time(1_764_000_000)
    }

    /// A tiny KDC: checks PA-ENC-TIMESTAMP when `require_preauth`, answers with an AS-REP in
    /// `kdc_key`, or a KRB-ERROR.
    struct FakeKdc {
        kdc_key: Key,
        require_preauth: bool,
    }

    fn krb_error(code: i32, e_data: Option<Vec<u8>>) -> Vec<u8> {
        let e = KrbError {
            pvno: 5.into(),
            msg_type: 30.into(),
            ctime: None,
            cusec: None,
            stime: time::krb_time(1_764_000_000),
            susec: 0.into(),
            error_code: code,
            crealm: None,
            cname: None,
            realm: kstr("KEDGE.TEST"),
            sname: PrincipalName {
                r#type: 2,
                string: vec![kstr("kadmin"), kstr("changepw")],
            },
            e_text: Some(kstr("test")),
            e_data: e_data.map(OctetString::from),
        };
        rasn::der::encode(&e).unwrap()
    }

    fn etype_info2_padata() -> PaData {
        let info: EtypeInfo2 = vec![EtypeInfo2Entry {
            etype: 18,
            salt: Some(kstr(SALT)),
            s2kparams: None,
        }];
        PaData {
            r#type: PA_ETYPE_INFO2,
            value: OctetString::from(rasn::der::encode(&info).unwrap()),
        }
    }

    impl FakeKdc {
        fn answer(&self, req: &[u8]) -> Vec<u8> {
            let req: AsReq = rasn::der::decode(req).unwrap();
            let ts = req
                .0
                .padata
                .as_ref()
                .and_then(|p| p.iter().find(|p| p.r#type == PA_ENC_TIMESTAMP).cloned());
            match ts {
                None if self.require_preauth => {
                    let md: Vec<PaData> = vec![etype_info2_padata()];
                    return krb_error(KDC_ERR_PREAUTH_REQUIRED, Some(rasn::der::encode(&md).unwrap()));
                }
                None => {}
                Some(pa) => {
                    let enc: EncryptedData = rasn::der::decode(&pa.value).unwrap();
                    if UsageKeys::new(&self.kdc_key, USAGE_PA_ENC_TIMESTAMP)
                        .decrypt(&enc.cipher)
                        .is_err()
                    {
                        return krb_error(KDC_ERR_PREAUTH_FAILED, None);
                    }
                }
            }
            let session = Key::random(EncType::Aes256CtsHmacSha196);
            let part = EncAsRepPart(EncKdcRepPart {
                key: EncryptionKey {
                    r#type: 18,
                    value: OctetString::from(session.expose_bytes().to_vec()),
                },
                last_req: vec![LastReqValue {
                    r#type: 0,
                    value: time::krb_time(0),
                }],
                nonce: req.0.req_body.nonce,
                key_expiration: None,
                flags: TicketFlags(BitString::repeat(false, 32)),
                auth_time: time::krb_time(1_764_000_000),
                start_time: None,
                end_time: time::krb_time(1_764_000_300),
                renew_till: None,
                srealm: kstr("KEDGE.TEST"),
                sname: req.0.req_body.sname.clone().unwrap(),
                caddr: None,
                encrypted_pa_data: None,
            });
            let rep = AsRep(rasn_kerberos::KdcRep {
                pvno: 5.into(),
                msg_type: 11.into(),
                padata: Some(vec![etype_info2_padata()]),
                crealm: kstr("KEDGE.TEST"),
                cname: req.0.req_body.cname.clone().unwrap(),
                ticket: Ticket {
                    tkt_vno: 5.into(),
                    realm: kstr("KEDGE.TEST"),
                    sname: req.0.req_body.sname.clone().unwrap(),
                    enc_part: EncryptedData {
                        etype: 18,
                        kvno: Some(1),
                        cipher: OctetString::from_static(b"opaque"),
                    },
                },
                enc_part: EncryptedData {
                    etype: 18,
                    kvno: Some(3),
                    cipher: OctetString::from(
                        UsageKeys::new(&self.kdc_key, USAGE_AS_REP_ENC_PART)
                            .encrypt(&rasn::der::encode(&part).unwrap()),
                    ),
                },
            });
            rasn::der::encode(&rep).unwrap()
        }
    }

    fn run(kdc: &FakeKdc, key: Key) -> Result<AsTicket, AsError> {
        let mut ex = AsExchange::new(client(), changepw_principal("KEDGE.TEST"), vec![key], 42);
        let mut msg = ex.first_request(now());
        for _ in 0..3 {
            match ex.handle_reply(&kdc.answer(&msg), now())? {
                AsStep::Retry(m) => msg = m,
                AsStep::Done(t) => return Ok(*t),
            }
        }
        panic!("no end");
    }

    #[test]
    fn preauth_required_is_answered_with_enc_timestamp_and_the_salt_is_learned() {
        let key = Key::random(EncType::Aes256CtsHmacSha196);
        let kdc = FakeKdc {
            kdc_key: key.clone(),
            require_preauth: true,
        };
        let t = run(&kdc, key).unwrap();
        assert!(t.preauthenticated);
        assert_eq!(t.salt_for(EncType::Aes256CtsHmacSha196), Some(SALT));
        assert_eq!(t.reply_kvno, Some(3));
        assert_eq!(t.client.to_string(), client().to_string());
    }

    #[test]
    fn kdc_without_preauth_answers_at_once_and_its_padata_names_the_salt() {
        let key = Key::random(EncType::Aes256CtsHmacSha196);
        let kdc = FakeKdc {
            kdc_key: key.clone(),
            require_preauth: false,
        };
        let t = run(&kdc, key).unwrap();
        assert!(!t.preauthenticated);
        assert_eq!(t.salt_for(EncType::Aes256CtsHmacSha196), Some(SALT));
    }

    #[test]
    fn wrong_key_is_reported_as_wrong_key_with_and_without_preauth() {
        for require_preauth in [true, false] {
            let kdc = FakeKdc {
                kdc_key: Key::random(EncType::Aes256CtsHmacSha196),
                require_preauth,
            };
            let err = run(&kdc, Key::random(EncType::Aes256CtsHmacSha196)).unwrap_err();
            assert!(matches!(err, AsError::WrongKey { .. }), "{err}");
            assert!(err.to_string().contains("stale"));
        }
    }

    #[test]
    fn preauth_asked_twice_is_a_loop_error() {
        let key = Key::random(EncType::Aes256CtsHmacSha196);
        let mut ex = AsExchange::new(client(), changepw_principal("KEDGE.TEST"), vec![key], 1);
        let md = rasn::der::encode(&vec![etype_info2_padata()]).unwrap();
        let e = krb_error(KDC_ERR_PREAUTH_REQUIRED, Some(md));
        assert!(matches!(ex.handle_reply(&e, now()), Ok(AsStep::Retry(_))));
        assert!(matches!(ex.handle_reply(&e, now()), Err(AsError::PreauthLoop)));
    }

    #[test]
    fn garbage_and_truncated_replies_are_malformed_not_panics() {
        let key = Key::random(EncType::Aes256CtsHmacSha196);
        let kdc = FakeKdc {
            kdc_key: key.clone(),
            require_preauth: false,
        };
        let mut ex = AsExchange::new(client(), changepw_principal("KEDGE.TEST"), vec![key], 42);
        let good = kdc.answer(&ex.first_request(now()));
        for n in 0..good.len() {
            assert!(ex.handle_reply(&good[..n], now()).is_err());
        }
        assert!(ex.handle_reply(&[0x6b, 0x80, 0xff, 0xff], now()).is_err());
        assert!(ex
            .handle_reply(&[0x7e, 0x84, 0xff, 0xff, 0xff, 0xff], now())
            .is_err());
    }

    #[test]
    fn no_key_of_the_kdc_enctypes_is_reported() {
        let key = Key::random(EncType::Aes128CtsHmacSha196);
        let mut ex = AsExchange::new(client(), changepw_principal("KEDGE.TEST"), vec![key], 1);
        let md = rasn::der::encode(&vec![etype_info2_padata()]).unwrap();
        let e = krb_error(KDC_ERR_PREAUTH_REQUIRED, Some(md));
        assert!(matches!(
            ex.handle_reply(&e, now()),
            Err(AsError::NoCommonEnctype { .. })
        ));
    }
}
