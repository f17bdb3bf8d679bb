//! Allocation-free reading of the two structures every token carries: the AP-REQ (RFC 4120
//! §5.5.1) and, once decrypted, its Authenticator. The fields borrow from the token, where
//! rasn's decoder copied the ticket's and the authenticator's ciphertexts and allocated every
//! name, realm and option string on each request.
//!
//! rasn stays the reference. This reader takes DER as Kerberos peers send it and refuses
//! anything else (indefinite lengths, high tag numbers, integers over 64 bits, times other
//! than `YYYYMMDDHHMMSSZ`); [`ApReqView::read`] and [`AuthenticatorView::read`] then hand the
//! bytes to rasn, so a form only rasn reads is judged as before. The `ap_req` fuzz target holds
//! the two to the same verdict and fields on everything this reader accepts.

use rasn_kerberos::{ApReq, Authenticator, PrincipalName};

/// ASN.1 tags used here (one byte: every tag in these structures has a low number).
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const GENERAL_STRING: u8 = 0x1B;
const GENERALIZED_TIME: u8 = 0x18;
const AP_REQ: u8 = 0x6E; // [APPLICATION 14]
const TICKET: u8 = 0x61; // [APPLICATION 1]
const AUTHENTICATOR: u8 = 0x62; // [APPLICATION 2]

/// `[n]`, constructed (every context tag of RFC 4120 is EXPLICIT).
const fn ctx(n: u8) -> u8 {
    0xA0 | n
}

/// RFC 4120 §5.5.1 ap-options bit numbers (MSB first).
const AP_OPT_USE_SESSION_KEY: usize = 1;
const AP_OPT_MUTUAL_REQUIRED: usize = 2;

/// Not DER this reader takes (rasn may still read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotDer;

type R<T> = Result<T, NotDer>;

/// A cursor over DER contents.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element's tag and contents.
    fn next(&mut self) -> R<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first().ok_or(NotDer)?;
        if tag & 0x1F == 0x1F {
            return Err(NotDer);
        }
        let (&first, rest) = rest.split_first().ok_or(NotDer)?;
        let (len, rest) = match first {
            0..=0x7F => (usize::from(first), rest),
            0x81..=0x84 => {
                let n = usize::from(first & 0x7F);
                if rest.len() < n {
                    return Err(NotDer);
                }
                let (bytes, rest) = rest.split_at(n);
                // DER: the shortest form (no leading zero, long form only from 128).
                if bytes[0] == 0 {
                    return Err(NotDer);
                }
                let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
                if len < 0x80 {
                    return Err(NotDer);
                }
                (len, rest)
            }
            _ => return Err(NotDer),
        };
        if rest.len() < len {
            return Err(NotDer);
        }
        let (contents, rest) = rest.split_at(len);
        self.0 = rest;
        Ok((tag, contents))
    }

    /// The next element, which must have `tag`.
    fn take(&mut self, tag: u8) -> R<&'a [u8]> {
        match self.next()? {
            (t, c) if t == tag => Ok(c),
            _ => Err(NotDer),
        }
    }

    /// The next element if it has `tag` (an OPTIONAL field).
    fn optional(&mut self, tag: u8) -> R<Option<&'a [u8]>> {
        if self.0.first() == Some(&tag) {
            self.take(tag).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `[n] EXPLICIT` around one element with `tag`.
    fn field(&mut self, n: u8, tag: u8) -> R<&'a [u8]> {
        Der::whole(self.take(ctx(n))?, tag)
    }

    /// An OPTIONAL `[n] EXPLICIT` field.
    fn optional_field(&mut self, n: u8, tag: u8) -> R<Option<&'a [u8]>> {
        self.optional(ctx(n))?
            .map(|wrapped| Der::whole(wrapped, tag))
            .transpose()
    }

    fn end(&self) -> R<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(NotDer)
        }
    }

    /// The contents of the only element, `tag`, of `bytes`.
    fn whole(bytes: &'a [u8], tag: u8) -> R<&'a [u8]> {
        let mut d = Der(bytes);
        let contents = d.take(tag)?;
        d.end()?;
        Ok(contents)
    }
}

/// A KerberosString (GeneralString) in the alphabet rasn takes: C0, Basic Latin, DELETE and
/// Latin-1 (0x80..=0xA0 refused; a UTF-8 name holding those bytes is rasn's to refuse).
fn general_string(c: &[u8]) -> R<&[u8]> {
    if c.iter().any(|b| (0x80..=0xA0).contains(b)) {
        Err(NotDer)
    } else {
        Ok(c)
    }
}

/// A DER INTEGER that fits an `i64` (minimal two's complement).
fn integer(c: &[u8]) -> R<i64> {
    if c.is_empty() || c.len() > 8 {
        return Err(NotDer);
    }
    if c.len() > 1 && ((c[0] == 0 && c[1] & 0x80 == 0) || (c[0] == 0xFF && c[1] & 0x80 != 0)) {
        return Err(NotDer);
    }
    let start = if c[0] & 0x80 != 0 { -1i64 } else { 0 };
    Ok(c.iter().fold(start, |acc, &b| (acc << 8) | i64::from(b)))
}

fn int32(c: &[u8]) -> R<i32> {
    i32::try_from(integer(c)?).map_err(|_| NotDer)
}

fn uint32(c: &[u8]) -> R<u32> {
    u32::try_from(integer(c)?).map_err(|_| NotDer)
}

/// A DER BIT STRING's bit `n` (MSB first; bits past its end are clear).
fn bit(c: &[u8], n: usize) -> bool {
    let bits = (c.len() - 1) * 8 - usize::from(c[0]);
    n < bits && c[1 + n / 8] & (0x80 >> (n % 8)) != 0
}

/// A DER BIT STRING's contents: the unused-bit count, then the bits, unused ones zero.
fn bit_string(c: &[u8]) -> R<&[u8]> {
    match c {
        [0] => Ok(c),
        [unused, .., last] if *unused <= 7 && last & ((1u8 << unused) - 1) == 0 => Ok(c),
        _ => Err(NotDer),
    }
}

/// A KerberosTime, `YYYYMMDDHHMMSSZ` (RFC 4120 §5.2.3), as Unix seconds.
fn kerberos_time(c: &[u8]) -> R<i64> {
    if c.len() != 15 || c[14] != b'Z' || !c[..14].iter().all(u8::is_ascii_digit) {
        return Err(NotDer);
    }
    let num = |a: usize, b: usize| c[a..b].iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    let (y, m, d) = (num(0, 4), num(4, 6), num(6, 8));
    let (hh, mm, ss) = (num(8, 10), num(10, 12), num(12, 14));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] || hh > 23 || mm > 59 || ss > 59 {
        return Err(NotDer);
    }
    // Days from the civil date (H. Hinnant's algorithm), proleptic Gregorian.
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// A PrincipalName: its type and its components as encoded.
#[derive(Debug, Clone, Copy)]
pub enum NameView<'a> {
    /// Read here: `name-type` and the contents of the `name-string` SEQUENCE OF.
    Der {
        /// `name-type`.
        name_type: i32,
        /// The GeneralStrings, one after another.
        strings: &'a [u8],
    },
    /// Decoded by rasn.
    Decoded(&'a PrincipalName),
}

impl<'a> NameView<'a> {
    fn read(c: &'a [u8]) -> R<Self> {
        let mut d = Der(c);
        let name_type = int32(d.field(0, INTEGER)?)?;
        let strings = d.field(1, SEQUENCE)?;
        d.end()?;
        let mut each = Der(strings);
        while !each.0.is_empty() {
            general_string(each.take(GENERAL_STRING)?)?;
        }
        Ok(Self::Der { name_type, strings })
    }

    /// `name-type`.
    pub fn name_type(&self) -> i32 {
        match self {
            Self::Der { name_type, .. } => *name_type,
            Self::Decoded(n) => n.r#type,
        }
    }

    /// The components, as encoded.
    pub fn components(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (der, decoded) = match *self {
            Self::Der { strings, .. } => (Some(Der(strings)), None),
            Self::Decoded(n) => (None, Some(n.string.iter().map(|s| s.as_bytes()))),
        };
        let der = der
            .into_iter()
            .flat_map(|mut d| std::iter::from_fn(move || d.next().ok().map(|(_, c)| c)));
        der.chain(decoded.into_iter().flatten())
    }

    /// Whether this is `name` exactly (type and every component, byte for byte).
    pub fn is(&self, name: &PrincipalName) -> bool {
        self.name_type() == name.r#type && self.components().eq(name.string.iter().map(|s| s.as_bytes()))
    }
}

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

/// Bit `n` of KerberosFlags as rasn decodes them (MSB first; bits past the end are clear).
pub(crate) fn flag(bits: &rasn::types::BitString, n: usize) -> bool {
    bits.get(n).is_some_and(|b| *b)
}

/// The big-integer fields rasn reads as any size: out of `i64`, a value no check accepts.
fn int(i: &rasn::types::Integer) -> i64 {
    i64::try_from(i).unwrap_or(i64::MIN)
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
        let realm = general_string(t.field(1, GENERAL_STRING)?)?;
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
            && self.sname.is(&r.ticket.sname)
            && enc(&self.ticket, &r.ticket.enc_part)
            && enc(&self.authenticator, &r.authenticator)
    }
}

/// A Checksum or an EncryptionKey: a type and its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typed<'a> {
    /// `cksumtype` or `keytype`.
    pub r#type: i32,
    /// `checksum` or `keyvalue`.
    pub value: &'a [u8],
}

impl<'a> Typed<'a> {
    fn read(c: &'a [u8]) -> R<Self> {
        let mut d = Der(c);
        let r#type = int32(d.field(0, INTEGER)?)?;
        let value = d.field(1, OCTET_STRING)?;
        d.end()?;
        Ok(Self { r#type, value })
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
        let crealm = general_string(d.field(1, GENERAL_STRING)?)?;
        let cname = NameView::read(d.field(2, SEQUENCE)?)?;
        let cksum = d.optional_field(3, SEQUENCE)?.map(Typed::read).transpose()?;
        let cusec = integer(d.field(4, INTEGER)?)?;
        let ctime = kerberos_time(d.field(5, GENERALIZED_TIME)?)?;
        let subkey = d.optional_field(6, SEQUENCE)?.map(Typed::read).transpose()?;
        d.optional_field(7, INTEGER)?.map(uint32).transpose()?;
        if let Some(ad) = d.optional_field(8, SEQUENCE)? {
            let mut each = Der(ad);
            while !each.0.is_empty() {
                let mut entry = Der(each.take(SEQUENCE)?);
                int32(entry.field(0, INTEGER)?)?;
                entry.field(1, OCTET_STRING)?;
                entry.end()?;
            }
        }
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
            && self.cname.is(&a.cname)
            && typed(self.cksum, a.cksum.as_ref().map(|c| (c.r#type, &c.checksum[..])))
            && self.cusec == int(&a.cusec)
            && self.ctime == crate::krb::time::krb_secs(&a.ctime)
            && typed(self.subkey, a.subkey.as_ref().map(|k| (k.r#type, &k.value[..])))
    }
}

#[cfg(test)]
#[path = "ap_req_tests.rs"]
mod tests;
