//! The decrypted part of a service ticket, EncTicketPart (RFC 4120 §5.3), read in place: the
//! fields borrow from the plaintext, where rasn's decoder allocated every name, realm, key and
//! authorization-data entry, and could not hold a UTF-8 name with a byte in 0x80..=0xA0 at all
//! (its GeneralString refuses them; MIT and AD issue such names: `weiß` is `…C3 9F`).
//!
//! As for the AP-REQ ([`super::ap_req`]), rasn stays the reference: this reader takes DER only
//! ([`super::der`]), and [`EncTicketView::read`] hands anything else to rasn, so a BER-encoded
//! ticket is judged as before. The `enc_ticket` fuzz target holds the two to the same fields
//! wherever this reader reads, names and realms with bytes rasn refuses excepted.
//!
//! ```text
//! EncTicketPart ::= [APPLICATION 3] SEQUENCE {
//!     flags [0] TicketFlags, key [1] EncryptionKey, crealm [2] Realm, cname [3] PrincipalName,
//!     transited [4] TransitedEncoding, authtime [5] KerberosTime, starttime [6] KerberosTime
//!     OPTIONAL, endtime [7] KerberosTime, renew-till [8] KerberosTime OPTIONAL,
//!     caddr [9] HostAddresses OPTIONAL, authorization-data [10] AuthorizationData OPTIONAL }
//! ```

use rasn::types::BitString;
use rasn_kerberos::EncTicketPart;

use super::der::{
    bit, bit_string, flag, kerberos_time, Der, NameView, NotDer, Typed, TypedSeq, BIT_STRING,
    GENERALIZED_TIME, KERBEROS_STRING, SEQUENCE,
};
use super::time::krb_secs;

/// `[APPLICATION 3]`, constructed.
const ENC_TICKET_PART: u8 = 0x63;

/// RFC 4120 §5.3 ticket flag `invalid` (bit number, MSB first).
pub const TKT_FLAG_INVALID: usize = 7;

/// TicketFlags (KerberosFlags, RFC 4120 §5.2.8): the BIT STRING's contents as read here, or the
/// bits rasn decoded.
#[derive(Debug, Clone, Copy)]
pub enum FlagsView<'a> {
    /// Read here: the unused-bit count, then the bits.
    Der(&'a [u8]),
    /// Decoded by rasn.
    Decoded(&'a BitString),
}

impl FlagsView<'_> {
    /// Bit `n` (MSB first; bits past the end are clear).
    pub fn get(&self, n: usize) -> bool {
        match self {
            Self::Der(c) => bit(c, n),
            Self::Decoded(b) => flag(b, n),
        }
    }

    /// How many bits the string holds.
    fn len(&self) -> usize {
        match self {
            Self::Der(c) => (c.len() - 1) * 8 - usize::from(c[0]),
            Self::Decoded(b) => b.len(),
        }
    }
}

/// The fields of an EncTicketPart, borrowed from the plaintext (or from what rasn decoded).
#[derive(Debug, Clone)]
pub struct EncTicketView<'a> {
    /// `flags`.
    pub flags: FlagsView<'a>,
    /// `key`, the session key: its type and bytes.
    pub key: Typed<'a>,
    /// `crealm`, as encoded (any bytes).
    pub crealm: &'a [u8],
    /// `cname`.
    pub cname: NameView<'a>,
    /// `transited`: `tr-type` and `contents`.
    pub transited: Typed<'a>,
    /// `authtime`, Unix seconds.
    pub authtime: i64,
    /// `starttime`, Unix seconds.
    pub starttime: Option<i64>,
    /// `endtime`, Unix seconds.
    pub endtime: i64,
    /// `renew-till`, Unix seconds.
    pub renew_till: Option<i64>,
    /// `caddr`.
    pub caddr: Option<TypedSeq<'a>>,
    /// `authorization-data` (the PAC is inside AD-IF-RELEVANT: [`super::authz::find_pac`]).
    pub authorization_data: Option<TypedSeq<'a>>,
}

impl<'a> EncTicketView<'a> {
    /// Reads `plain` here, or with rasn into `decoded` where this reader refuses it; `None` when
    /// neither reads it.
    pub fn read(plain: &'a [u8], decoded: &'a mut Option<EncTicketPart>) -> Option<Self> {
        if let Ok(v) = Self::read_der(plain) {
            return Some(v);
        }
        let e: &EncTicketPart = decoded.insert(rasn::ber::decode(plain).ok()?);
        Some(Self {
            flags: FlagsView::Decoded(&e.flags.0),
            key: Typed {
                r#type: e.key.r#type,
                value: &e.key.value,
            },
            crealm: e.crealm.as_bytes(),
            cname: NameView::Decoded(&e.cname),
            transited: Typed {
                r#type: e.transited.r#type,
                value: &e.transited.contents,
            },
            authtime: krb_secs(&e.auth_time),
            starttime: e.start_time.as_ref().map(krb_secs),
            endtime: krb_secs(&e.end_time),
            renew_till: e.renew_till.as_ref().map(krb_secs),
            caddr: e.caddr.as_ref().map(|a| {
                TypedSeq::Decoded(
                    a.iter()
                        .map(|h| Typed {
                            r#type: h.addr_type,
                            value: &h.address,
                        })
                        .collect(),
                )
            }),
            authorization_data: e.authorization_data.as_ref().map(|ad| {
                TypedSeq::Decoded(
                    ad.iter()
                        .map(|v| Typed {
                            r#type: v.r#type,
                            value: &v.data,
                        })
                        .collect(),
                )
            }),
        })
    }

    /// This reader alone (the fuzz target compares it with rasn).
    pub fn read_der(plain: &'a [u8]) -> Result<Self, NotDer> {
        // Decrypted plaintext may carry padding after the DER (RFC 3961 ciphers pad to their
        // block); what follows the EncTicketPart is not part of it.
        let mut outer = Der(plain);
        let app = outer.take(ENC_TICKET_PART)?;
        let mut d = Der(Der::whole(app, SEQUENCE)?);
        let flags = bit_string(d.field(0, BIT_STRING)?)?;
        let key = Typed::read(d.field(1, SEQUENCE)?)?;
        let crealm = d.field(2, KERBEROS_STRING)?;
        let cname = NameView::read(d.field(3, SEQUENCE)?)?;
        let transited = Typed::read(d.field(4, SEQUENCE)?)?;
        let time = |c: Option<&[u8]>| c.map(kerberos_time).transpose();
        let authtime = kerberos_time(d.field(5, GENERALIZED_TIME)?)?;
        let starttime = time(d.optional_field(6, GENERALIZED_TIME)?)?;
        let endtime = kerberos_time(d.field(7, GENERALIZED_TIME)?)?;
        let renew_till = time(d.optional_field(8, GENERALIZED_TIME)?)?;
        let caddr = d.optional_field(9, SEQUENCE)?.map(TypedSeq::read).transpose()?;
        let authorization_data = d.optional_field(10, SEQUENCE)?.map(TypedSeq::read).transpose()?;
        d.end()?;
        Ok(Self {
            flags: FlagsView::Der(flags),
            key,
            crealm,
            cname,
            transited,
            authtime,
            starttime,
            endtime,
            renew_till,
            caddr,
            authorization_data,
        })
    }

    /// The `invalid` flag: a postdated ticket not yet validated (RFC 4120 §2.2).
    pub fn invalid(&self) -> bool {
        self.flags.get(TKT_FLAG_INVALID)
    }

    /// Whether every field is what rasn decoded into `e` (tests and the `enc_ticket` fuzz
    /// target).
    pub fn matches(&self, e: &EncTicketPart) -> bool {
        let bits = &e.flags.0;
        let same_flags =
            self.flags.len() == bits.len() && (0..bits.len()).all(|n| self.flags.get(n) == flag(bits, n));
        let seq = |v: &Option<TypedSeq<'_>>, d: Option<Vec<(i32, &[u8])>>| {
            v.as_ref()
                .map(|s| s.iter().map(|t| (t.r#type, t.value)).collect::<Vec<_>>())
                == d
        };
        same_flags
            && (self.key.r#type, self.key.value) == (e.key.r#type, &e.key.value[..])
            && self.crealm == e.crealm.as_bytes()
            && self.cname.matches(&e.cname)
            && (self.transited.r#type, self.transited.value)
                == (e.transited.r#type, &e.transited.contents[..])
            && self.authtime == krb_secs(&e.auth_time)
            && self.starttime == e.start_time.as_ref().map(krb_secs)
            && self.endtime == krb_secs(&e.end_time)
            && self.renew_till == e.renew_till.as_ref().map(krb_secs)
            && seq(
                &self.caddr,
                e.caddr
                    .as_ref()
                    .map(|a| a.iter().map(|h| (h.addr_type, &h.address[..])).collect()),
            )
            && seq(
                &self.authorization_data,
                e.authorization_data
                    .as_ref()
                    .map(|ad| ad.iter().map(|v| (v.r#type, &v.data[..])).collect()),
            )
    }
}

#[cfg(test)]
#[path = "enc_ticket_tests.rs"]
mod tests;
