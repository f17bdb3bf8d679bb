//! Allocation-free reading of the two structures every token carries: the AP-REQ (RFC 4120
//! §5.5.1) and, once decrypted, its Authenticator. The fields borrow from the token, where
//! rasn's decoder copied the ticket's and the authenticator's ciphertexts and allocated every
//! name, realm and option string on each request.
//!
//! rasn stays the reference. This reader takes DER as Kerberos peers send it ([`super::der`])
//! and refuses anything else; [`ApReqView::read`] and [`AuthenticatorView::read`] then hand the
//! bytes to rasn, so a form only rasn reads is judged as before. The `ap_req` fuzz target holds
//! the two to the same fields on everything this reader accepts, with one difference: names
//! and realms here take any byte (UTF-8 names as MIT and AD issue them), where rasn's
//! GeneralString refuses 0x80..=0xA0.

use rasn_kerberos::{ApReq, Authenticator};

use super::der::{
    bit, bit_string, ctx, flag, int, int32, integer, kerberos_time, uint32, Der, NameView, NotDer, Typed,
    TypedSeq, BIT_STRING, GENERALIZED_TIME, INTEGER, KERBEROS_STRING, OCTET_STRING, R, SEQUENCE,
};

const AP_REQ: u8 = 0x6E; // [APPLICATION 14]
const TICKET: u8 = 0x61; // [APPLICATION 1]
const AUTHENTICATOR: u8 = 0x62; // [APPLICATION 2]

/// RFC 4120 §5.5.1 ap-options bit numbers (MSB first).
const AP_OPT_USE_SESSION_KEY: usize = 1;
const AP_OPT_MUTUAL_REQUIRED: usize = 2;

/// An EncryptedData.
#[derive(Debug, Clone, Copy)]
pub struct EncryptedView<'a> {
    /// `etype`.
    pub etype: i32,
    /// `kvno`.
    pub kvno: Option<u32>,
    /// `cipher`.
    pub cipher: &'a [u8],
}

impl<'a> EncryptedView<'a> {
    fn read(c: &'a [u8]) -> R<Self> {
        let mut d = Der(c);
        let etype = int32(d.field(0, INTEGER)?)?;
        let kvno = d.optional_field(1, INTEGER)?.map(uint32).transpose()?;
        let cipher = d.field(2, OCTET_STRING)?;
        d.end()?;
        Ok(Self { etype, kvno, cipher })
    }

    fn of(e: &'a rasn_kerberos::EncryptedData) -> Self {
        Self {
            etype: e.etype,
            kvno: e.kvno,
            cipher: &e.cipher,
        }
    }
}

/// An AP-REQ's fields that validation reads.
#[derive(Debug)]
pub struct ApReqView<'a> {
    /// `pvno`.
    pub pvno: i64,
    /// `msg-type`.
    pub msg_type: i64,
    /// ap-options `use-session-key` (user-to-user).
    pub use_session_key: bool,
    /// ap-options `mutual-required`.
    pub mutual_required: bool,
    /// The ticket's `tkt-vno`.
    pub tkt_vno: i64,
    /// The ticket's `realm`, as encoded.
    pub realm: &'a [u8],
    /// The ticket's `sname`.
    pub sname: NameView<'a>,
    /// The ticket's `enc-part`.
    pub ticket: EncryptedView<'a>,
    /// The `authenticator`.
    pub authenticator: EncryptedView<'a>,
}

impl<'a> ApReqView<'a> {
    /// Reads `bytes` here, or with rasn into `decoded` where this reader refuses them; `None`
    /// when neither reads them.
    pub fn read(bytes: &'a [u8], decoded: &'a mut Option<ApReq>) -> Option<Self> {
        if let Ok(v) = Self::read_der(bytes) {
            return Some(v);
        }
        let req: &ApReq = decoded.insert(rasn::ber::decode(bytes).ok()?);
        let bits = &req.ap_options.0;
        Some(Self {
            pvno: int(&req.pvno),
            msg_type: int(&req.msg_type),
            use_session_key: flag(bits, AP_OPT_USE_SESSION_KEY),
            mutual_required: flag(bits, AP_OPT_MUTUAL_REQUIRED),
            tkt_vno: int(&req.ticket.tkt_vno),
            realm: req.ticket.realm.as_bytes(),
            sname: NameView::Decoded(&req.ticket.sname),
            ticket: EncryptedView::of(&req.ticket.enc_part),
            authenticator: EncryptedView::of(&req.authenticator),
        })
    }

    /// This reader alone (the fuzz target compares it with rasn).
    pub fn read_der(bytes: &'a [u8]) -> Result<Self, NotDer> {
        let mut d = Der(Der::whole(Der::whole(bytes, AP_REQ)?, SEQUENCE)?);
        let pvno = integer(d.field(0, INTEGER)?)?;
        let msg_type = integer(d.field(1, INTEGER)?)?;
        let options = bit_string(d.field(2, BIT_STRING)?)?;
        let ticket = Der::whole(d.take(ctx(3))?, TICKET)?;
        let authenticator = EncryptedView::read(d.field(4, SEQUENCE)?)?;
        d.end()?;
        let mut t = Der(Der::whole(ticket, SEQUENCE)?);
        let tkt_vno = integer(t.field(0, INTEGER)?)?;
        let realm = t.field(1, KERBEROS_STRING)?;
        let sname = NameView::read(t.field(2, SEQUENCE)?)?;
        let enc_part = EncryptedView::read(t.field(3, SEQUENCE)?)?;
        t.end()?;
        Ok(Self {
            pvno,
            msg_type,
            use_session_key: bit(options, AP_OPT_USE_SESSION_KEY),
            mutual_required: bit(options, AP_OPT_MUTUAL_REQUIRED),
            tkt_vno,
            realm,
            sname,
            ticket: enc_part,
            authenticator,
        })
    }
}

impl ApReqView<'_> {
    /// Whether every field is what rasn decoded into `r` (tests and the `ap_req` fuzz target).
    pub fn matches(&self, r: &ApReq) -> bool {
        let bit = |n: usize| flag(&r.ap_options.0, n);
        let enc = |v: &EncryptedView<'_>, e: &rasn_kerberos::EncryptedData| {
            v.etype == e.etype && v.kvno == e.kvno && v.cipher == &e.cipher[..]
        };
        self.pvno == int(&r.pvno)
            && self.msg_type == int(&r.msg_type)
            && self.use_session_key == bit(AP_OPT_USE_SESSION_KEY)
            && self.mutual_required == bit(AP_OPT_MUTUAL_REQUIRED)
            && self.tkt_vno == int(&r.ticket.tkt_vno)
            && self.realm == r.ticket.realm.as_bytes()
            && self.sname.matches(&r.ticket.sname)
            && enc(&self.ticket, &r.ticket.enc_part)
            && enc(&self.authenticator, &r.authenticator)
    }
}

/// An Authenticator's fields that validation reads.
#[derive(Debug)]
pub struct AuthenticatorView<'a> {
    /// `authenticator-vno`.
    pub vno: i64,
    /// `crealm`, as encoded.
    pub crealm: &'a [u8],
    /// `cname`.
    pub cname: NameView<'a>,
    /// `cksum`.
    pub cksum: Option<Typed<'a>>,
    /// `cusec` (any integer as sent; validation checks its range).
    pub cusec: i64,
    /// `ctime`, Unix seconds.
    pub ctime: i64,
    /// `subkey`.
    pub subkey: Option<Typed<'a>>,
}

impl<'a> AuthenticatorView<'a> {
    /// Reads `plain` here, or with rasn into `decoded` where this reader refuses it; `None`
    /// when neither reads it.
    pub fn read(plain: &'a [u8], decoded: &'a mut Option<Authenticator>) -> Option<Self> {
        if let Ok(v) = Self::read_der(plain) {
            return Some(v);
        }
        let a: &Authenticator = decoded.insert(rasn::ber::decode(plain).ok()?);
        Some(Self {
            vno: int(&a.authenticator_vno),
            crealm: a.crealm.as_bytes(),
            cname: NameView::Decoded(&a.cname),
            cksum: a.cksum.as_ref().map(|c| Typed {
                r#type: c.r#type,
                value: &c.checksum,
            }),
            cusec: int(&a.cusec),
            ctime: crate::krb::time::krb_secs(&a.ctime),
            subkey: a.subkey.as_ref().map(|k| Typed {
                r#type: k.r#type,
                value: &k.value,
            }),
        })
    }

    /// This reader alone (the fuzz target compares it with rasn).
    pub fn read_der(plain: &'a [u8]) -> Result<Self, NotDer> {
        // Decrypted plaintext may carry padding after the DER (RFC 3961 ciphers pad to their
        // block); what follows the Authenticator is not part of it.
        let mut outer = Der(plain);
        let app = outer.take(AUTHENTICATOR)?;
        let mut d = Der(Der::whole(app, SEQUENCE)?);
        let vno = integer(d.field(0, INTEGER)?)?;
        let crealm = d.field(1, KERBEROS_STRING)?;
        let cname = NameView::read(d.field(2, SEQUENCE)?)?;
        let cksum = d.optional_field(3, SEQUENCE)?.map(Typed::read).transpose()?;
        let cusec = integer(d.field(4, INTEGER)?)?;
        let ctime = kerberos_time(d.field(5, GENERALIZED_TIME)?)?;
        let subkey = d.optional_field(6, SEQUENCE)?.map(Typed::read).transpose()?;
        d.optional_field(7, INTEGER)?.map(uint32).transpose()?;
        d.optional_field(8, SEQUENCE)?.map(TypedSeq::read).transpose()?;
        d.end()?;
        Ok(Self {
            vno,
            crealm,
            cname,
            cksum,
            cusec,
            ctime,
            subkey,
        })
    }
}

impl AuthenticatorView<'_> {
    /// Whether every field is what rasn decoded into `a` (tests and the `ap_req` fuzz target).
    pub fn matches(&self, a: &Authenticator) -> bool {
        let typed = |v: Option<Typed<'_>>, t: Option<(i32, &[u8])>| v.map(|v| (v.r#type, v.value)) == t;
        self.vno == int(&a.authenticator_vno)
            && self.crealm == a.crealm.as_bytes()
            && self.cname.matches(&a.cname)
            && typed(self.cksum, a.cksum.as_ref().map(|c| (c.r#type, &c.checksum[..])))
            && self.cusec == int(&a.cusec)
            && self.ctime == crate::krb::time::krb_secs(&a.ctime)
            && typed(self.subkey, a.subkey.as_ref().map(|k| (k.r#type, &k.value[..])))
    }
}

#[cfg(test)]
#[path = "ap_req_tests.rs"]
mod tests;
