//! DER as Kerberos peers send it (X.690 §10 over RFC 4120 §5's ASN.1): the cursor and the
//! primitives the borrowed message readers share ([`super::ap_req`], [`super::enc_ticket`]), and
//! the small structures several messages hold (PrincipalName, EncryptionKey / Checksum and the
//! other `{ type, octets }` pairs, and sequences of them).
//!
//! Every reader here takes DER only and answers [`NotDer`] for anything else (indefinite
//! lengths, high tag numbers, integers over 64 bits, times other than `YYYYMMDDHHMMSSZ`); the
//! message readers then hand such bytes to rasn, the reference, so a form only rasn reads is
//! judged as before.

use rasn_kerberos::PrincipalName;

/// Universal tags (one byte: every tag in Kerberos messages has a low number).
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
/// KerberosString (RFC 4120 §5.2.1): a GeneralString whose contents are taken as octets, any
/// byte. The RFC constrains it to IA5 and lets implementations accept other characters (MAY);
/// MIT and AD put UTF-8 names and realms there (`weiß` is `… C3 9F`), and the acceptor compares
/// them as octets. (rasn's GeneralString refuses 0x80..=0xA0, so rasn cannot read such names.)
pub(crate) const KERBEROS_STRING: u8 = 0x1B;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;

/// `[n]`, constructed (every context tag of RFC 4120 is EXPLICIT).
pub(crate) const fn ctx(n: u8) -> u8 {
    0xA0 | n
}

/// Not DER this reader takes (rasn may still read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotDer;

pub(crate) type R<T> = Result<T, NotDer>;

/// A cursor over DER contents.
pub(crate) struct Der<'a>(pub(crate) &'a [u8]);

impl<'a> Der<'a> {
    /// The next element's tag and contents.
    pub(crate) fn next(&mut self) -> R<(u8, &'a [u8])> {
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
    pub(crate) fn take(&mut self, tag: u8) -> R<&'a [u8]> {
        match self.next()? {
            (t, c) if t == tag => Ok(c),
            _ => Err(NotDer),
        }
    }

    /// The next element if it has `tag` (an OPTIONAL field).
    pub(crate) fn optional(&mut self, tag: u8) -> R<Option<&'a [u8]>> {
        if self.0.first() == Some(&tag) {
            self.take(tag).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `[n] EXPLICIT` around one element with `tag`.
    pub(crate) fn field(&mut self, n: u8, tag: u8) -> R<&'a [u8]> {
        Der::whole(self.take(ctx(n))?, tag)
    }

    /// An OPTIONAL `[n] EXPLICIT` field.
    pub(crate) fn optional_field(&mut self, n: u8, tag: u8) -> R<Option<&'a [u8]>> {
        self.optional(ctx(n))?
            .map(|wrapped| Der::whole(wrapped, tag))
            .transpose()
    }

    pub(crate) fn end(&self) -> R<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(NotDer)
        }
    }

    /// The contents of the only element, `tag`, of `bytes`.
    pub(crate) fn whole(bytes: &'a [u8], tag: u8) -> R<&'a [u8]> {
        let mut d = Der(bytes);
        let contents = d.take(tag)?;
        d.end()?;
        Ok(contents)
    }
}

/// A DER INTEGER that fits an `i64` (minimal two's complement).
pub(crate) fn integer(c: &[u8]) -> R<i64> {
    if c.is_empty() || c.len() > 8 {
        return Err(NotDer);
    }
    if c.len() > 1 && ((c[0] == 0 && c[1] & 0x80 == 0) || (c[0] == 0xFF && c[1] & 0x80 != 0)) {
        return Err(NotDer);
    }
    let start = if c[0] & 0x80 != 0 { -1i64 } else { 0 };
    Ok(c.iter().fold(start, |acc, &b| (acc << 8) | i64::from(b)))
}

pub(crate) fn int32(c: &[u8]) -> R<i32> {
    i32::try_from(integer(c)?).map_err(|_| NotDer)
}

pub(crate) fn uint32(c: &[u8]) -> R<u32> {
    u32::try_from(integer(c)?).map_err(|_| NotDer)
}

/// A DER BIT STRING's bit `n` (MSB first; bits past its end are clear).
pub(crate) fn bit(c: &[u8], n: usize) -> bool {
    let bits = (c.len() - 1) * 8 - usize::from(c[0]);
    n < bits && c[1 + n / 8] & (0x80 >> (n % 8)) != 0
}

/// A DER BIT STRING's contents: the unused-bit count, then the bits, unused ones zero.
pub(crate) fn bit_string(c: &[u8]) -> R<&[u8]> {
    match c {
        [0] => Ok(c),
        [unused, .., last] if *unused <= 7 && last & ((1u8 << unused) - 1) == 0 => Ok(c),
        _ => Err(NotDer),
    }
}

/// A KerberosTime, `YYYYMMDDHHMMSSZ` (RFC 4120 §5.2.3), as Unix seconds.
pub(crate) fn kerberos_time(c: &[u8]) -> R<i64> {
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

/// A PrincipalName (RFC 4120 §5.2.2): its type and its components as encoded, any bytes.
#[derive(Debug, Clone, Copy)]
pub enum NameView<'a> {
    /// Read here: `name-type` and the contents of the `name-string` SEQUENCE OF.
    Der {
        /// `name-type`.
        name_type: i32,
        /// The KerberosStrings, one after another (any bytes).
        strings: &'a [u8],
    },
    /// Decoded by rasn.
    Decoded(&'a PrincipalName),
}

impl<'a> NameView<'a> {
    pub(crate) fn read(c: &'a [u8]) -> R<Self> {
        let mut d = Der(c);
        let name_type = int32(d.field(0, INTEGER)?)?;
        let strings = d.field(1, SEQUENCE)?;
        d.end()?;
        let mut each = Der(strings);
        while !each.0.is_empty() {
            each.take(KERBEROS_STRING)?;
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

    /// Whether this is `p`'s name exactly: the type and every component, byte for byte (the
    /// authenticator's cname against the ticket's, RFC 4120 §3.2.3; the realm is compared apart).
    pub fn is(&self, p: &EncodedPrincipal) -> bool {
        self.name_type() == p.name_type && self.components().eq(p.components.iter().map(|c| &c[..]))
    }

    /// Whether this is what rasn decoded into `name` (type and every component, byte for byte).
    pub fn matches(&self, name: &PrincipalName) -> bool {
        self.name_type() == name.r#type && self.components().eq(name.string.iter().map(|s| s.as_bytes()))
    }
}

/// A principal as a ticket encodes it, owned: the name type, and the components and realm as
/// bytes, whatever bytes they are (UTF-8 from MIT and AD; RFC 4120 §5.2.1). A kept ticket holds
/// its client this way for the match with each authenticator's cname and crealm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPrincipal {
    /// `name-type`.
    pub name_type: i32,
    /// The `name-string` components.
    pub components: Vec<Box<[u8]>>,
    /// The realm.
    pub realm: Box<[u8]>,
}

impl EncodedPrincipal {
    /// `name` in `realm`, copied.
    pub fn of(name: &NameView<'_>, realm: &[u8]) -> Self {
        Self {
            name_type: name.name_type(),
            components: name.components().map(Box::from).collect(),
            realm: realm.into(),
        }
    }
}

/// `SEQUENCE { [0] Int32, [1] OCTET STRING }`, a type and its bytes: a Checksum or an
/// EncryptionKey (RFC 4120 §5.2.9), a TransitedEncoding (§5.3), a HostAddress (§5.2.5) or an
/// AuthorizationData entry (§5.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typed<'a> {
    /// `cksumtype`, `keytype`, `tr-type`, `addr-type` or `ad-type`.
    pub r#type: i32,
    /// `checksum`, `keyvalue`, `contents`, `address` or `ad-data`.
    pub value: &'a [u8],
}

impl<'a> Typed<'a> {
    pub(crate) fn read(c: &'a [u8]) -> R<Self> {
        let mut d = Der(c);
        let r#type = int32(d.field(0, INTEGER)?)?;
        let value = d.field(1, OCTET_STRING)?;
        d.end()?;
        Ok(Self { r#type, value })
    }
}

/// A SEQUENCE OF [`Typed`]: HostAddresses (RFC 4120 §5.2.5) or AuthorizationData (§5.2.6).
#[derive(Debug, Clone)]
pub enum TypedSeq<'a> {
    /// Read here: the SEQUENCE OF's contents, every entry checked.
    Der(&'a [u8]),
    /// Decoded by rasn.
    Decoded(Vec<Typed<'a>>),
}

impl<'a> TypedSeq<'a> {
    /// The contents of a SEQUENCE OF `SEQUENCE { [0] Int32, [1] OCTET STRING }`.
    pub(crate) fn read(c: &'a [u8]) -> R<Self> {
        let mut each = Der(c);
        while !each.0.is_empty() {
            Typed::read(each.take(SEQUENCE)?)?;
        }
        Ok(Self::Der(c))
    }

    /// A whole DER SEQUENCE OF (e.g. AD-IF-RELEVANT's `ad-data`), nothing after it.
    pub fn read_whole(bytes: &'a [u8]) -> Result<Self, NotDer> {
        Self::read(Der::whole(bytes, SEQUENCE)?)
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = Typed<'a>> + '_ {
        let (der, decoded) = match self {
            Self::Der(c) => (Some(Der(c)), None),
            Self::Decoded(v) => (None, Some(v.iter().copied())),
        };
        // Entries were checked when read: a failure here cannot happen and ends the walk.
        let der = der
            .into_iter()
            .flat_map(|mut d| std::iter::from_fn(move || d.take(SEQUENCE).and_then(Typed::read).ok()));
        der.chain(decoded.into_iter().flatten())
    }
}

/// Bit `n` of KerberosFlags as rasn decodes them (MSB first; bits past the end are clear).
pub(crate) fn flag(bits: &rasn::types::BitString, n: usize) -> bool {
    bits.get(n).is_some_and(|b| *b)
}

/// The big-integer fields rasn reads as any size: out of `i64`, a value no check accepts.
pub(crate) fn int(i: &rasn::types::Integer) -> i64 {
    i64::try_from(i).unwrap_or(i64::MIN)
}

#[cfg(test)]
#[path = "der_tests.rs"]
mod tests;
