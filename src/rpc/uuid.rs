//! DCE UUIDs as they appear in PDUs (C706 Appendix A, 12.6.3.1 `p_syntax_id_t`).
//!
//! On the wire a UUID is the NDR structure `{u32 time_low; u16 time_mid; u16 time_hi_and_version;
//! u8 clock_seq[2]; u8 node[6]}`: the first three fields follow the PDU's integer representation
//! (little-endian for every Windows client), the last eight bytes are copied as they are.

use std::fmt;
use std::str::FromStr;

use super::error::RpcError;
use super::header::Endian;

/// A UUID held in canonical (string) byte order: `a4f1db00-ca47-…` is `[0xa4, 0xf1, 0xdb, 0x00, …]`.
/// C706 Appendix A.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// The NDR transfer syntax `8a885d04-1ceb-11c9-9fe8-08002b104860` v2.0 (C706 14).
    pub const NDR: Uuid = Uuid([
        0x8a, 0x88, 0x5d, 0x04, 0x1c, 0xeb, 0x11, 0xc9, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60,
    ]);

    /// A UUID from its 16 bytes in canonical (string) order.
    pub const fn from_bytes(bytes: [u8; 16]) -> Uuid {
        Uuid(bytes)
    }

    /// The 16 bytes in canonical (string) order.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Decodes the 16-byte NDR form (C706 Appendix A) with the first three fields in `endian`.
    pub fn from_wire(wire: &[u8; 16], endian: Endian) -> Uuid {
        let mut b = *wire;
        if endian == Endian::Little {
            b[0..4].reverse();
            b[4..6].reverse();
            b[6..8].reverse();
        }
        Uuid(b)
    }

    /// Encodes the 16-byte NDR form (C706 Appendix A) with the first three fields in `endian`.
    pub fn to_wire(&self, endian: Endian) -> [u8; 16] {
        // The byte swap is its own inverse.
        Uuid::from_wire(&self.0, endian).0
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for Uuid {
    type Err = RpcError;

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case, optionally in braces), the
    /// string form of C706 Appendix A.
    fn from_str(s: &str) -> Result<Uuid, RpcError> {
        let bad = || RpcError::BadUuid(s.chars().take(64).collect());
        let t = s.trim();
        let t = t
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(t)
            .as_bytes();
        if t.len() != 36 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < t.len() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if t[i] != b'-' {
                    return Err(bad());
                }
                i += 1;
                continue;
            }
            let hi = hex_val(t[i]).ok_or_else(bad)?;
            let lo = t.get(i + 1).copied().and_then(hex_val).ok_or_else(bad)?;
            *out.get_mut(n).ok_or_else(bad)? = (hi << 4) | lo;
            n += 1;
            i += 2;
        }
        if n != 16 {
            return Err(bad());
        }
        Ok(Uuid(out))
    }
}

impl fmt::Display for Uuid {
    /// Lower-case canonical form, `a4f1db00-ca47-1067-b31f-00dd010662da`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_form_round_trips_in_lower_case() {
        let u: Uuid = "A4F1DB00-CA47-1067-B31F-00DD010662DA".parse().unwrap();
        assert_eq!(u.to_string(), "a4f1db00-ca47-1067-b31f-00dd010662da");
        assert_eq!(u.as_bytes()[0], 0xa4);
    }

    #[test]
    fn braces_are_accepted() {
        let u: Uuid = "{e1af8308-5d1f-11c9-91a4-08002b14a0fa}".parse().unwrap();
        assert_eq!(u.to_string(), "e1af8308-5d1f-11c9-91a4-08002b14a0fa");
    }

    #[test]
    fn malformed_strings_are_refused() {
        for s in [
            "",
            "a4f1db00ca471067b31f00dd010662da",
            "a4f1db00-ca47-1067-b31f-00dd010662d",
            "a4f1db00-ca47-1067-b31f-00dd010662dz",
            "a4f1db0-0ca47-1067-b31f-00dd010662da",
            "a4f1db00-ca47-1067-b31f_00dd010662da",
            "é4f1db00-ca47-1067-b31f-00dd010662d",
        ] {
            assert!(s.parse::<Uuid>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn wire_form_swaps_the_first_three_fields_when_little_endian() {
        let u: Uuid = "a4f1db00-ca47-1067-b31f-00dd010662da".parse().unwrap();
        let le = u.to_wire(Endian::Little);
        assert_eq!(&le[..8], &[0x00, 0xdb, 0xf1, 0xa4, 0x47, 0xca, 0x67, 0x10]);
        assert_eq!(&le[8..], &u.as_bytes()[8..]);
        assert_eq!(u.to_wire(Endian::Big), *u.as_bytes());
        assert_eq!(Uuid::from_wire(&le, Endian::Little), u);
    }
}
