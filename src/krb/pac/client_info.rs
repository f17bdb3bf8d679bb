//! `PAC_CLIENT_INFO` (MS-PAC 2.7), buffer type 10: the client's name and the ticket's authtime,
//! which the acceptor compares with the ticket's cname and authtime.

use super::filetime::FileTime;
use super::ndr::{to_utf16le, utf16le};
use super::PacError;

const NAME: &str = "PAC_CLIENT_INFO";

/// The decoded `PAC_CLIENT_INFO` (MS-PAC 2.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// `ClientId`: the TGT's authtime as a FILETIME.
    pub logon_time: FileTime,
    /// `Name`: the client's name (for a plain user, the principal name without the realm).
    pub name: String,
}

impl ClientInfo {
    /// `ClientId` in whole Unix seconds, to compare with the ticket's authtime.
    pub fn logon_time_unix(&self) -> i64 {
        self.logon_time.to_unix()
    }
}

/// Decodes a `PAC_CLIENT_INFO` (MS-PAC 2.7): ClientId (8), NameLength (2, bytes), Name (UTF-16LE).
pub(crate) fn parse(buf: &[u8]) -> Result<ClientInfo, PacError> {
    let head = buf
        .get(..10)
        .ok_or(PacError::malformed(NAME, "shorter than 10 bytes"))?;
    let mut ft = [0u8; 8];
    ft.copy_from_slice(&head[..8]);
    let name_len = usize::from(u16::from_le_bytes([head[8], head[9]]));
    let name = buf
        .get(10..10 + name_len)
        .ok_or(PacError::malformed(NAME, "NameLength runs past the buffer"))?;
    let name = utf16le(name).ok_or(PacError::malformed(NAME, "Name is not valid UTF-16"))?;
    Ok(ClientInfo {
        logon_time: FileTime(u64::from_le_bytes(ft)),
        name,
    })
}

/// Encodes a `PAC_CLIENT_INFO` (MS-PAC 2.7).
pub(crate) fn encode(info: &ClientInfo) -> Result<Vec<u8>, PacError> {
    let name = to_utf16le(&info.name);
    let len =
        u16::try_from(name.len()).map_err(|_| PacError::Encode("client name longer than 32767 units"))?;
    let mut out = Vec::with_capacity(10 + name.len());
    out.extend_from_slice(&info.logon_time.0.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&name);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_info_round_trips() {
        let info = ClientInfo {
            logon_time: FileTime::from_unix(1_700_000_000),
            name: "alice".into(),
        };
        let bytes = encode(&info).unwrap();
        assert_eq!(bytes.len(), 20);
        assert_eq!(parse(&bytes).unwrap(), info);
        assert_eq!(parse(&bytes).unwrap().logon_time_unix(), 1_700_000_000);
    }

    #[test]
    fn name_length_past_the_buffer_is_refused() {
        let mut bytes = encode(&ClientInfo {
            logon_time: FileTime(0),
            name: "bob".into(),
        })
        .unwrap();
        bytes[8] = 8;
        assert!(parse(&bytes).is_err());
        bytes[8] = 5; // odd
        assert!(parse(&bytes).is_err());
        assert!(parse(&bytes[..9]).is_err());
    }
}
