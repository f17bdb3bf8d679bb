//! Security identifiers (MS-DTYP 2.4.2): the binary form (2.4.2.2), the NDR `RPC_SID` form (2.4.2.3)
//! and the string form `S-1-5-21-…` (2.4.2.1).

use std::fmt;
use std::str::FromStr;

use super::PacError;

/// The most sub-authorities a SID can carry (MS-DTYP 2.4.2: `SubAuthorityCount` ≤ 15).
pub const MAX_SUB_AUTHORITIES: usize = 15;

/// The only SID revision defined (MS-DTYP 2.4.2: `Revision` must be 0x01).
pub const SID_REVISION: u8 = 1;

/// The largest identifier authority: 48 bits (MS-DTYP 2.4.1.1, six big-endian bytes).
const MAX_AUTHORITY: u64 = (1 << 48) - 1;

/// A security identifier (MS-DTYP 2.4.2): revision 1, a 48-bit identifier authority and up to 15
/// 32-bit sub-authorities, the last of which is usually a relative identifier (RID).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    authority: u64,
    sub_authorities: Vec<u32>,
}

impl Sid {
    /// A revision-1 SID (MS-DTYP 2.4.2); refuses an authority wider than 48 bits or more than 15
    /// sub-authorities.
    pub fn new(authority: u64, sub_authorities: &[u32]) -> Result<Self, PacError> {
        if authority > MAX_AUTHORITY {
            return Err(PacError::InvalidSid("identifier authority wider than 48 bits"));
        }
        if sub_authorities.len() > MAX_SUB_AUTHORITIES {
            return Err(PacError::InvalidSid("more than 15 sub-authorities"));
        }
        Ok(Self {
            authority,
            sub_authorities: sub_authorities.to_vec(),
        })
    }

    /// The SID revision (always 1, MS-DTYP 2.4.2).
    pub fn revision(&self) -> u8 {
        SID_REVISION
    }

    /// The 48-bit identifier authority (MS-DTYP 2.4.1.1), 5 for `SECURITY_NT_AUTHORITY`.
    pub fn authority(&self) -> u64 {
        self.authority
    }

    /// The sub-authorities, domain part first and RID last (MS-DTYP 2.4.2).
    pub fn sub_authorities(&self) -> &[u32] {
        &self.sub_authorities
    }

    /// The last sub-authority (the relative identifier), if any.
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities.last().copied()
    }

    /// This SID with `rid` appended: a domain SID plus a RID gives an account SID (MS-PAC 2.5,
    /// `UserId` and `GroupIds` are relative to `LogonDomainId`). Fails where the SID already has 15
    /// sub-authorities.
    pub fn with_rid(&self, rid: u32) -> Result<Self, PacError> {
        if self.sub_authorities.len() >= MAX_SUB_AUTHORITIES {
            return Err(PacError::InvalidSid(
                "cannot append a RID to a SID with 15 sub-authorities",
            ));
        }
        let mut sub_authorities = Vec::with_capacity(self.sub_authorities.len() + 1);
        sub_authorities.extend_from_slice(&self.sub_authorities);
        sub_authorities.push(rid);
        Ok(Self {
            authority: self.authority,
            sub_authorities,
        })
    }

    /// Length of the binary form (MS-DTYP 2.4.2.2): 8 + 4 per sub-authority.
    pub fn encoded_len(&self) -> usize {
        8 + 4 * self.sub_authorities.len()
    }

    /// The binary form (MS-DTYP 2.4.2.2): Revision, SubAuthorityCount, the authority as 6
    /// big-endian bytes, then the sub-authorities little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_body(&mut out);
        out
    }

    /// Appends the binary form (MS-DTYP 2.4.2.2); the NDR `RPC_SID` (2.4.2.3) is the same bytes
    /// preceded by the conformant count.
    pub(crate) fn write_body(&self, out: &mut Vec<u8>) {
        out.push(SID_REVISION);
        // The constructor bounds the count to 15.
        out.push(self.sub_authorities.len() as u8);
        out.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for sa in &self.sub_authorities {
            out.extend_from_slice(&sa.to_le_bytes());
        }
    }

    /// Parses the binary form (MS-DTYP 2.4.2.2) that fills `bytes` exactly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PacError> {
        let (sid, used) = Self::parse_prefix(bytes)?;
        if used != bytes.len() {
            return Err(PacError::InvalidSid("trailing bytes after the SID"));
        }
        Ok(sid)
    }

    /// Parses the binary form at the start of `bytes`, returning the SID and the bytes it used.
    pub(crate) fn parse_prefix(bytes: &[u8]) -> Result<(Self, usize), PacError> {
        let head = bytes
            .get(..8)
            .ok_or(PacError::InvalidSid("truncated SID header"))?;
        if head[0] != SID_REVISION {
            return Err(PacError::InvalidSid("SID revision is not 1"));
        }
        let count = usize::from(head[1]);
        if count > MAX_SUB_AUTHORITIES {
            return Err(PacError::InvalidSid("more than 15 sub-authorities"));
        }
        let mut auth = [0u8; 8];
        auth[2..].copy_from_slice(&head[2..8]);
        let authority = u64::from_be_bytes(auth);
        let len = 8 + 4 * count;
        let body = bytes
            .get(8..len)
            .ok_or(PacError::InvalidSid("truncated SID sub-authorities"))?;
        let sub_authorities = body
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((
            Self {
                authority,
                sub_authorities,
            },
            len,
        ))
    }
}

impl Sid {
    /// Appends the string form (the same text as `Display`) to `out` without the formatting
    /// machinery: group lists format dozens of SIDs per request.
    pub fn push_to(&self, out: &mut String) {
        out.push_str("S-1-");
        if self.authority >= 1 << 32 {
            use fmt::Write as _;
            let _ = write!(out, "0x{:012X}", self.authority);
        } else {
            push_decimal(out, self.authority);
        }
        for &sa in &self.sub_authorities {
            out.push('-');
            push_decimal(out, sa.into());
        }
    }
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    // ASCII digits: one copy, not a char (and its UTF-8 encoding) at a time.
    out.push_str(std::str::from_utf8(decimal(n, &mut digits)).unwrap_or_default());
}

/// `n` in decimal, written at the end of `buf` (no allocation).
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// The string form (MS-DTYP 2.4.2.1): `S-1-5-21-1-2-3`; an authority of 2^32 or more is written
/// in hexadecimal (`S-1-0x123456789ABC-…`).
impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-{}-", SID_REVISION)?;
        if self.authority >= 1 << 32 {
            write!(f, "0x{:012X}", self.authority)?;
        } else {
            write!(f, "{}", self.authority)?;
        }
        for sa in &self.sub_authorities {
            write!(f, "-{sa}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({self})")
    }
}

/// Parses the string form (MS-DTYP 2.4.2.1): `S-1-<authority>(-<sub-authority>)*`, the authority in
/// decimal or `0x` hexadecimal, at most 15 sub-authorities.
impl FromStr for Sid {
    type Err = PacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('-');
        if !matches!(parts.next(), Some("S" | "s")) {
            return Err(PacError::InvalidSid("SID string does not start with S-"));
        }
        if parts.next() != Some("1") {
            return Err(PacError::InvalidSid("SID string revision is not 1"));
        }
        let auth = parts
            .next()
            .ok_or(PacError::InvalidSid("SID string has no authority"))?;
        let authority = match auth.strip_prefix("0x").or_else(|| auth.strip_prefix("0X")) {
            Some(hex) if is_digits(hex, 16) => u64::from_str_radix(hex, 16).ok(),
            None if is_digits(auth, 10) => auth.parse::<u64>().ok(),
            _ => None,
        }
        .ok_or(PacError::InvalidSid("SID string has a bad authority"))?;
        let mut sub_authorities = Vec::new();
        for part in parts {
            if sub_authorities.len() == MAX_SUB_AUTHORITIES {
                return Err(PacError::InvalidSid("more than 15 sub-authorities"));
            }
            if !is_digits(part, 10) {
                return Err(PacError::InvalidSid("SID string has a bad sub-authority"));
            }
            let sa = part
                .parse::<u32>()
                .map_err(|_| PacError::InvalidSid("SID sub-authority does not fit 32 bits"))?;
            sub_authorities.push(sa);
        }
        Self::new(authority, &sub_authorities)
    }
}

/// Non-empty and only digits of `radix` (no sign, no whitespace: `u64::from_str` would take `+`).
fn is_digits(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_digit(radix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_to_writes_what_display_writes() {
        for (authority, subs) in [
            (5u64, &[21u32, 3623811015, 3361044348, 30300820, 1013][..]),
            (0, &[0][..]),
            (18, &[1][..]),
            (u64::from(u32::MAX), &[u32::MAX, 0, 10, 99, 100][..]),
            (1 << 32, &[7][..]),
            ((1 << 48) - 1, &[][..]),
        ] {
            let sid = Sid::new(authority, subs).unwrap();
            let mut out = String::from("x,");
            sid.push_to(&mut out);
            assert_eq!(out, format!("x,{sid}"));
        }
        let mut out = String::new();
        push_decimal(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string());
        for n in [0, 7, 10, 1_700_000_000, u64::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn domain_user_sid_prints_and_parses_back() {
        let s = "S-1-5-21-3623811015-3361044348-30300820-1013";
        let sid: Sid = s.parse().unwrap();
        assert_eq!(sid.authority(), 5);
        assert_eq!(
            sid.sub_authorities(),
            &[21, 3623811015, 3361044348, 30300820, 1013]
        );
        assert_eq!(sid.rid(), Some(1013));
        assert_eq!(sid.to_string(), s);
    }

    #[test]
    fn binary_form_is_ms_dtyp_layout() {
        let sid: Sid = "S-1-5-32-544".parse().unwrap();
        let bytes = sid.to_bytes();
        assert_eq!(bytes, [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0]);
        assert_eq!(Sid::from_bytes(&bytes).unwrap(), sid);
    }

    #[test]
    fn wide_authority_prints_in_hex() {
        let sid = Sid::new(0x1234_5678_9ABC, &[7]).unwrap();
        assert_eq!(sid.to_string(), "S-1-0x123456789ABC-7");
        assert_eq!("S-1-0x123456789ABC-7".parse::<Sid>().unwrap(), sid);
    }

    #[test]
    fn sixteen_sub_authorities_are_refused() {
        let s = format!("S-1-5{}", "-1".repeat(16));
        assert!(s.parse::<Sid>().is_err());
        let fifteen: Sid = format!("S-1-5{}", "-1".repeat(15)).parse().unwrap();
        assert!(fifteen.with_rid(1).is_err());
        let mut bytes = fifteen.to_bytes();
        bytes[1] = 16;
        bytes.extend_from_slice(&[1, 0, 0, 0]);
        assert!(Sid::from_bytes(&bytes).is_err());
    }

    #[test]
    fn malformed_sid_strings_are_refused() {
        for s in [
            "",
            "S",
            "S-1",
            "S-2-5-21",
            "X-1-5",
            "S-1-5-",
            "S-1--5",
            "S-1-5-+3",
            "S-1-5-4294967296",
            "S-1-281474976710656",
            "S-1-0x",
            "S-1-5- 1",
        ] {
            assert!(s.parse::<Sid>().is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn sid_with_no_sub_authorities_round_trips() {
        let sid: Sid = "S-1-5".parse().unwrap();
        assert_eq!(sid.rid(), None);
        assert_eq!(Sid::from_bytes(&sid.to_bytes()).unwrap(), sid);
        assert_eq!(sid.to_string(), "S-1-5");
    }

    #[test]
    fn truncated_binary_sid_is_refused() {
        let bytes = "S-1-5-21-1-2-3".parse::<Sid>().unwrap().to_bytes();
        for n in 0..bytes.len() {
            assert!(Sid::from_bytes(&bytes[..n]).is_err());
        }
    }
}
