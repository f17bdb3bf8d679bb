//! MS-PAC: the Privilege Attribute Certificate in a ticket's authorization data
//! (AD-IF-RELEVANT → AD-WIN2K-PAC, type 128).
//!
//! [`Pac::parse`] checks the PACTYPE header and buffer table (MS-PAC 2.3, 2.4) and decodes the
//! buffers kedge uses: LOGON_INFO (2.5, NDR), the signatures (2.8), PAC_CLIENT_INFO (2.7),
//! UPN_DNS_INFO (2.10) and PAC_REQUESTOR (2.15). [`Pac::verify_server_signature`] checks the server
//! signature with the service key the way MIT `krb5_pac_verify` does. [`PacBuilder`] makes
//! Windows-shaped PACs for tests and for the bench client.
//!
//! Pure code: untrusted bytes in, values or a [`PacError`] out; no input makes it panic.
//!
//! Files: `ndr.rs` (the NDR subset), `logon_info.rs`, `client_info.rs`, `upn_dns_info.rs`,
//! `signature.rs`, `sid.rs`, `filetime.rs`, `build.rs`.

mod build;
pub(crate) mod client_info;
mod error;
mod filetime;
pub(crate) mod logon_info;
mod ndr;
mod sid;
mod signature;
pub(crate) mod upn_dns_info;

#[cfg(test)]
pub(crate) mod tests;

pub use build::PacBuilder;
pub use client_info::ClientInfo;
pub use error::PacError;
pub use filetime::FileTime;
pub use logon_info::{
    GroupMembership, LogonInfo, SidAndAttributes, LOGON_EXTRA_SIDS, LOGON_RESOURCE_GROUPS, SE_GROUP_DEFAULT,
};
pub use sid::{decimal, Sid, MAX_SUB_AUTHORITIES};
pub use signature::{checksum_len, SignatureData, KERB_NON_KERB_CKSUM_SALT};
pub use upn_dns_info::{UpnDnsInfo, UPN_CONSTRUCTED, UPN_EXTENDED};

use crate::krb::crypto::Key;

/// `ulType` of KERB_VALIDATION_INFO, the logon information (MS-PAC 2.4, 2.5).
pub const PAC_LOGON_INFO: u32 = 1;
/// `ulType` of PAC_CREDENTIAL_INFO (MS-PAC 2.6).
pub const PAC_CREDENTIALS_INFO: u32 = 2;
/// `ulType` of the server signature (MS-PAC 2.8.1).
pub const PAC_SERVER_CHECKSUM: u32 = 6;
/// `ulType` of the KDC (privilege server) signature (MS-PAC 2.8.2).
pub const PAC_PRIVSVR_CHECKSUM: u32 = 7;
/// `ulType` of PAC_CLIENT_INFO (MS-PAC 2.7).
pub const PAC_CLIENT_INFO: u32 = 10;
/// `ulType` of S4U_DELEGATION_INFO (MS-PAC 2.9).
pub const PAC_DELEGATION_INFO: u32 = 11;
/// `ulType` of UPN_DNS_INFO (MS-PAC 2.10).
pub const PAC_UPN_DNS_INFO: u32 = 12;
/// `ulType` of PAC_CLIENT_CLAIMS_INFO (MS-PAC 2.11).
pub const PAC_CLIENT_CLAIMS_INFO: u32 = 13;
/// `ulType` of PAC_DEVICE_INFO (MS-PAC 2.12).
pub const PAC_DEVICE_INFO: u32 = 14;
/// `ulType` of the device claims PAC_CLIENT_CLAIMS_INFO (MS-PAC 2.13).
pub const PAC_DEVICE_CLAIMS_INFO: u32 = 15;
/// `ulType` of the ticket signature (MS-PAC 2.8.3).
pub const PAC_TICKET_CHECKSUM: u32 = 16;
/// `ulType` of PAC_ATTRIBUTES_INFO (MS-PAC 2.14).
pub const PAC_ATTRIBUTES_INFO: u32 = 17;
/// `ulType` of PAC_REQUESTOR (MS-PAC 2.15).
pub const PAC_REQUESTOR: u32 = 18;
/// `ulType` of the extended KDC (full PAC) signature (MS-PAC 2.8.4).
pub const PAC_FULL_CHECKSUM: u32 = 19;

/// The PACTYPE header before the buffer table (MS-PAC 2.3): cBuffers and Version.
const PACTYPE_LEN: usize = 8;
/// One PAC_INFO_BUFFER (MS-PAC 2.4): ulType, cbBufferSize, Offset.
const INFO_BUFFER_LEN: usize = 16;
/// Buffers start on 8-byte boundaries (MS-PAC 2.4).
const PAC_ALIGNMENT: u64 = 8;
/// kedge's cap on cBuffers. Windows PACs have about ten; MIT allows 4096.
pub const MAX_BUFFERS: u32 = 256;

/// One PAC_INFO_BUFFER (MS-PAC 2.4): a buffer's type, size and offset in the PAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacBuffer {
    /// `ulType` (`PAC_LOGON_INFO`, …).
    pub buffer_type: u32,
    /// `cbBufferSize` in bytes.
    pub size: u32,
    /// `Offset` from the start of the PAC, a multiple of 8.
    pub offset: u64,
}

impl PacBuffer {
    /// The byte range, already checked by [`Pac::parse`] to lie inside the PAC.
    fn range(&self) -> std::ops::Range<usize> {
        // Parse checked offset + size <= the PAC length, which is a usize.
        let start = self.offset as usize;
        start..start + self.size as usize
    }
}

/// A parsed PAC (MS-PAC 2.3): its raw bytes, buffer table and decoded buffers.
#[derive(Clone)]
pub struct Pac {
    bytes: Vec<u8>,
    buffers: Vec<PacBuffer>,
    logon_info: Option<LogonInfo>,
    client_info: Option<ClientInfo>,
    upn_dns_info: Option<UpnDnsInfo>,
    server_signature: Option<SignatureData>,
    kdc_signature: Option<SignatureData>,
    requestor_sid: Option<Sid>,
}

impl Pac {
    /// Parses a PACTYPE (MS-PAC 2.3): cBuffers (1..=[`MAX_BUFFERS`]), Version 0, the
    /// PAC_INFO_BUFFER table (2.4) whose buffers must be 8-aligned, inside the blob, after the
    /// header, not overlapping each other and of distinct types; then decodes the buffers kedge
    /// knows. Unknown buffer types are kept raw.
    pub fn parse(bytes: &[u8]) -> Result<Pac, PacError> {
        let mut pac = Self::parse_deferred(bytes)?;
        pac.logon_info = pac.buffer(PAC_LOGON_INFO).map(logon_info::parse).transpose()?;
        pac.upn_dns_info = pac
            .buffer(PAC_UPN_DNS_INFO)
            .map(upn_dns_info::parse)
            .transpose()?;
        Ok(pac)
    }

    /// Like [`Pac::parse`], but leaves LOGON_INFO and UPN_DNS_INFO encoded: the header, buffer
    /// table, client info and signatures are checked and decoded; [`Pac::logon_info_raw`] and
    /// [`decode_logon_info`] decode the rest when a caller needs SIDs. The acceptor uses this so
    /// a route without group rules does not pay for NDR-decoding a large group list (the server
    /// signature covers those bytes either way).
    pub fn parse_deferred(bytes: &[u8]) -> Result<Pac, PacError> {
        let head = bytes
            .get(..PACTYPE_LEN)
            .ok_or(PacError::Truncated("PACTYPE header"))?;
        let count = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let version = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if version != 0 {
            return Err(PacError::BadVersion(version));
        }
        if count == 0 || count > MAX_BUFFERS {
            return Err(PacError::BufferCount(count));
        }
        let header_len = PACTYPE_LEN + INFO_BUFFER_LEN * count as usize;
        let table = bytes
            .get(PACTYPE_LEN..header_len)
            .ok_or(PacError::Truncated("buffer table longer than the PAC"))?;
        let total = bytes.len() as u64;
        let mut buffers: Vec<PacBuffer> = Vec::with_capacity(count as usize);
        for (index, e) in table.chunks_exact(INFO_BUFFER_LEN).enumerate() {
            let buffer_type = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            let size = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let mut off = [0u8; 8];
            off.copy_from_slice(&e[8..16]);
            let offset = u64::from_le_bytes(off);
            let bad = |reason| PacError::BadBuffer {
                index,
                buffer_type,
                reason,
            };
            if offset % PAC_ALIGNMENT != 0 {
                return Err(bad("is not 8-byte aligned"));
            }
            if offset < header_len as u64 {
                return Err(bad("overlaps the PAC header"));
            }
            match offset.checked_add(u64::from(size)) {
                Some(end) if end <= total => {}
                _ => return Err(bad("runs past the end of the PAC")),
            }
            if buffers.iter().any(|b| b.buffer_type == buffer_type) {
                return Err(PacError::DuplicateBuffer(buffer_type));
            }
            buffers.push(PacBuffer {
                buffer_type,
                size,
                offset,
            });
        }
        check_no_overlap(&buffers)?;

        let mut pac = Pac {
            bytes: bytes.to_vec(),
            buffers,
            logon_info: None,
            client_info: None,
            upn_dns_info: None,
            server_signature: None,
            kdc_signature: None,
            requestor_sid: None,
        };
        pac.client_info = pac.buffer(PAC_CLIENT_INFO).map(client_info::parse).transpose()?;
        pac.server_signature = pac
            .buffer(PAC_SERVER_CHECKSUM)
            .map(signature::parse)
            .transpose()?;
        pac.kdc_signature = pac
            .buffer(PAC_PRIVSVR_CHECKSUM)
            .map(signature::parse)
            .transpose()?;
        pac.requestor_sid = pac.buffer(PAC_REQUESTOR).map(Sid::from_bytes).transpose()?;
        Ok(pac)
    }

    /// The PAC as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The PAC_INFO_BUFFER table in PAC order (MS-PAC 2.4).
    pub fn buffers(&self) -> &[PacBuffer] {
        &self.buffers
    }

    /// The raw contents of the buffer of `buffer_type`, if present (types are unique).
    pub fn buffer(&self, buffer_type: u32) -> Option<&[u8]> {
        let b = self.buffers.iter().find(|b| b.buffer_type == buffer_type)?;
        self.bytes.get(b.range())
    }

    /// The encoded KERB_VALIDATION_INFO buffer (MS-PAC 2.5), if the PAC has one.
    pub fn logon_info_raw(&self) -> Option<&[u8]> {
        self.buffer(PAC_LOGON_INFO)
    }

    /// The decoded KERB_VALIDATION_INFO (MS-PAC 2.5), if the PAC has one (and was fully parsed).
    pub fn logon_info(&self) -> Option<&LogonInfo> {
        self.logon_info.as_ref()
    }

    /// The decoded PAC_CLIENT_INFO (MS-PAC 2.7), if present.
    pub fn client_info(&self) -> Option<&ClientInfo> {
        self.client_info.as_ref()
    }

    /// The decoded UPN_DNS_INFO (MS-PAC 2.10), if present.
    pub fn upn_dns_info(&self) -> Option<&UpnDnsInfo> {
        self.upn_dns_info.as_ref()
    }

    /// The server signature (MS-PAC 2.8.1), if present. Not verified: see
    /// [`verify_server_signature`](Self::verify_server_signature).
    pub fn server_signature(&self) -> Option<&SignatureData> {
        self.server_signature.as_ref()
    }

    /// The KDC signature (MS-PAC 2.8.2), if present. Only the krbtgt key can verify it.
    pub fn kdc_signature(&self) -> Option<&SignatureData> {
        self.kdc_signature.as_ref()
    }

    /// The PAC_REQUESTOR SID (MS-PAC 2.15), if present (Windows KDCs since November 2021).
    pub fn requestor_sid(&self) -> Option<&Sid> {
        self.requestor_sid.as_ref()
    }

    /// Verifies the server signature (MS-PAC 2.8.1, as MIT `krb5_pac_verify`): exactly one
    /// server and one KDC signature buffer must exist; the server signature's type must be the
    /// checksum type of `service_key`'s enctype (16 for aes256, 15 for aes128, 19/20 for aes-sha2,
    /// -138 for rc4), and the keyed checksum (key usage 17) over the whole PAC, with everything
    /// after the SignatureType of both signature buffers zeroed, must match.
    pub fn verify_server_signature(&self, service_key: &Key) -> Result<(), PacError> {
        let (sig, zeroed) = self.server_signed_bytes()?;
        signature::verify("server", service_key, sig, &zeroed)
    }

    /// [`Pac::verify_server_signature`] with the service key's usage-17 ([`KERB_NON_KERB_CKSUM_SALT`])
    /// keys already derived, as the acceptor caches them.
    pub fn verify_server_signature_with(&self, keys: &crate::krb::crypto::UsageKeys) -> Result<(), PacError> {
        let (sig, zeroed) = self.server_signed_bytes()?;
        signature::verify_with("server", keys, sig, &zeroed)
    }

    /// The server signature and the bytes it covers: the PAC with both signatures' Signature
    /// fields zeroed. Both signature buffers must exist.
    fn server_signed_bytes(&self) -> Result<(&SignatureData, Vec<u8>), PacError> {
        let sig = self
            .server_signature
            .as_ref()
            .ok_or(PacError::MissingBuffer("server signature"))?;
        if self.kdc_signature.is_none() {
            return Err(PacError::MissingBuffer("KDC signature"));
        }
        let mut copy = self.bytes.clone();
        for t in [PAC_SERVER_CHECKSUM, PAC_PRIVSVR_CHECKSUM] {
            zero_signature(&mut copy, &self.buffers, t);
        }
        Ok((sig, copy))
    }

    /// Verifies the KDC signature (MS-PAC 2.8.2): the keyed checksum, with the krbtgt key and key
    /// usage 17, of the server signature's Signature bytes. Only a KDC (or a test) holds that
    /// key; an acceptor checks the server signature.
    pub fn verify_kdc_signature(&self, krbtgt_key: &Key) -> Result<(), PacError> {
        let server = self
            .server_signature
            .as_ref()
            .ok_or(PacError::MissingBuffer("server signature"))?;
        let kdc = self
            .kdc_signature
            .as_ref()
            .ok_or(PacError::MissingBuffer("KDC signature"))?;
        signature::verify("KDC", krbtgt_key, kdc, &server.signature)
    }
}

/// Decodes a KERB_VALIDATION_INFO buffer (MS-PAC 2.5), e.g. from [`Pac::logon_info_raw`].
pub fn decode_logon_info(raw: &[u8]) -> Result<LogonInfo, PacError> {
    logon_info::parse(raw)
}

/// Shows the buffer table and the decoded buffers, not the raw bytes.
impl std::fmt::Debug for Pac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pac")
            .field("len", &self.bytes.len())
            .field("buffers", &self.buffers)
            .field("logon_info", &self.logon_info)
            .field("client_info", &self.client_info)
            .field("upn_dns_info", &self.upn_dns_info)
            .field("server_signature", &self.server_signature)
            .field("kdc_signature", &self.kdc_signature)
            .field("requestor_sid", &self.requestor_sid)
            .finish()
    }
}

/// Zeroes everything after the SignatureType of the buffer of `buffer_type`, as MIT, Heimdal and
/// Samba do (that covers the Signature and any RODCIdentifier).
fn zero_signature(pac: &mut [u8], buffers: &[PacBuffer], buffer_type: u32) {
    if let Some(b) = buffers.iter().find(|b| b.buffer_type == buffer_type) {
        let r = b.range();
        if let Some(region) = pac.get_mut(r.start.saturating_add(4).min(r.end)..r.end) {
            region.fill(0);
        }
    }
}

/// Refuses buffers that share bytes: a signature buffer laid over LOGON_INFO would have the
/// zeroing of MS-PAC 2.8 change what the signature covers.
fn check_no_overlap(buffers: &[PacBuffer]) -> Result<(), PacError> {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (buffers[i].offset, buffers[i].size));
    for pair in order.windows(2) {
        let (a, b) = (&buffers[pair[0]], &buffers[pair[1]]);
        // Offsets and sizes were checked to fit the PAC, so this cannot overflow.
        if a.offset + u64::from(a.size) > b.offset {
            return Err(PacError::BadBuffer {
                index: pair[1],
                buffer_type: b.buffer_type,
                reason: "overlaps another buffer",
            });
        }
    }
    Ok(())
}
