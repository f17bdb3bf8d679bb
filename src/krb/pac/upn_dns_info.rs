//! `UPN_DNS_INFO` (MS-PAC 2.10), buffer type 12: the user's UPN and DNS domain, and with the S
//! flag (extended form) the sAMAccountName and the user's SID.

use super::ndr::{to_utf16le, utf16le};
use super::sid::Sid;
use super::PacError;

const NAME: &str = "UPN_DNS_INFO";

/// `Flags` bit U: the user has no UPN attribute; the UPN was built from name and domain.
pub const UPN_CONSTRUCTED: u32 = 0x1;
/// `Flags` bit S: the extended form, with SamName and Sid.
pub const UPN_EXTENDED: u32 = 0x2;

/// The decoded `UPN_DNS_INFO` (MS-PAC 2.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpnDnsInfo {
    /// The user principal name (`alice@contoso.com`).
    pub upn: String,
    /// The DNS domain name (`CONTOSO.COM`).
    pub dns_domain: String,
    /// `Flags` ([`UPN_CONSTRUCTED`], [`UPN_EXTENDED`]).
    pub flags: u32,
    /// `SamName`, present with the S flag (MS-PAC 2.10.1).
    pub sam_name: Option<String>,
    /// `Sid`, present with the S flag (MS-PAC 2.10.1).
    pub sid: Option<Sid>,
}

/// The (length, offset) string at `off..off+len` within the buffer, offsets from its start.
fn field<'a>(buf: &'a [u8], len: u16, off: u16, what: &'static str) -> Result<&'a [u8], PacError> {
    let start = usize::from(off);
    buf.get(start..start + usize::from(len))
        .ok_or(PacError::malformed(NAME, what))
}

fn u16_at(buf: &[u8], at: usize) -> Result<u16, PacError> {
    match buf.get(at..at + 2) {
        Some(b) => Ok(u16::from_le_bytes([b[0], b[1]])),
        None => Err(PacError::malformed(NAME, "truncated header")),
    }
}

/// Decodes a `UPN_DNS_INFO` (MS-PAC 2.10, 2.10.1).
pub(crate) fn parse(buf: &[u8]) -> Result<UpnDnsInfo, PacError> {
    let flags_bytes = buf
        .get(8..12)
        .ok_or(PacError::malformed(NAME, "truncated header"))?;
    let flags = u32::from_le_bytes([flags_bytes[0], flags_bytes[1], flags_bytes[2], flags_bytes[3]]);
    let text = |len_at: usize, what: &'static str| -> Result<String, PacError> {
        let raw = field(buf, u16_at(buf, len_at)?, u16_at(buf, len_at + 2)?, what)?;
        utf16le(raw).ok_or(PacError::malformed(NAME, "name is not valid UTF-16"))
    };
    let upn = text(0, "UPN runs past the buffer")?;
    let dns_domain = text(4, "DNS domain runs past the buffer")?;
    let (sam_name, sid) = if flags & UPN_EXTENDED != 0 {
        let sam = text(12, "SamName runs past the buffer")?;
        let raw = field(
            buf,
            u16_at(buf, 16)?,
            u16_at(buf, 18)?,
            "Sid runs past the buffer",
        )?;
        (Some(sam), Some(Sid::from_bytes(raw)?))
    } else {
        (None, None)
    };
    Ok(UpnDnsInfo {
        upn,
        dns_domain,
        flags,
        sam_name,
        sid,
    })
}

/// Encodes a `UPN_DNS_INFO` as Windows lays it out: the header, then each string 8-aligned. The
/// S flag is set when `sam_name` and `sid` are both given.
pub(crate) fn encode(info: &UpnDnsInfo) -> Result<Vec<u8>, PacError> {
    let extended = match (&info.sam_name, &info.sid) {
        (Some(sam), Some(sid)) => Some((to_utf16le(sam), sid.to_bytes())),
        (None, None) => None,
        _ => {
            return Err(PacError::Encode(
                "UPN_DNS_INFO needs both SamName and Sid, or neither",
            ))
        }
    };
    let mut flags = info.flags & !UPN_EXTENDED;
    let header_len = if extended.is_some() {
        flags |= UPN_EXTENDED;
        20
    } else {
        12
    };
    let mut parts = vec![to_utf16le(&info.upn), to_utf16le(&info.dns_domain)];
    if let Some((sam, sid)) = extended {
        parts.push(sam);
        parts.push(sid);
    }
    let mut header = Vec::with_capacity(header_len);
    let mut body = vec![0u8; header_len];
    let too_big = || PacError::Encode("UPN_DNS_INFO larger than 64 KiB");
    for (i, p) in parts.iter().enumerate() {
        while body.len() % 8 != 0 {
            body.push(0);
        }
        let len = u16::try_from(p.len()).map_err(|_| too_big())?;
        let off = u16::try_from(body.len()).map_err(|_| too_big())?;
        header.extend_from_slice(&len.to_le_bytes());
        header.extend_from_slice(&off.to_le_bytes());
        if i == 1 {
            header.extend_from_slice(&flags.to_le_bytes());
        }
        body.extend_from_slice(p);
    }
    body[..header_len].copy_from_slice(&header);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_upn_dns_info_round_trips() {
        let info = UpnDnsInfo {
            upn: "alice@contoso.com".into(),
            dns_domain: "CONTOSO.COM".into(),
            flags: UPN_EXTENDED,
            sam_name: Some("alice".into()),
            sid: Some("S-1-5-21-1-2-3-1105".parse().unwrap()),
        };
        let bytes = encode(&info).unwrap();
        assert_eq!(parse(&bytes).unwrap(), info);
    }

    #[test]
    fn plain_upn_dns_info_round_trips() {
        let info = UpnDnsInfo {
            upn: "bob@contoso.com".into(),
            dns_domain: "CONTOSO.COM".into(),
            flags: UPN_CONSTRUCTED,
            sam_name: None,
            sid: None,
        };
        let bytes = encode(&info).unwrap();
        assert_eq!(&bytes[12..16], &[0; 4], "UPN starts 8-aligned");
        assert_eq!(parse(&bytes).unwrap(), info);
    }

    #[test]
    fn offsets_past_the_buffer_are_refused() {
        let info = UpnDnsInfo {
            upn: "a@b".into(),
            dns_domain: "B".into(),
            flags: 0,
            sam_name: None,
            sid: None,
        };
        let mut bytes = encode(&info).unwrap();
        bytes[2] = 0xff;
        bytes[3] = 0xff;
        assert!(parse(&bytes).is_err());
        let mut bytes = encode(&info).unwrap();
        bytes[8] = UPN_EXTENDED as u8; // claims SamName/Sid fields it does not have
        assert!(parse(&bytes).is_err());
    }
}
