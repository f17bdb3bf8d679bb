//! Why a PAC (MS-PAC 2) was refused. Errors name the structure and the rule; none carries key
//! material or more than a few header numbers of the PAC.

use crate::krb::crypto::CryptoError;

/// A malformed PAC, or one whose server signature does not verify (MS-PAC 2.3–2.10).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacError {
    /// The PACTYPE header (MS-PAC 2.3) is cut short or names more buffers than the blob holds.
    #[error("PAC truncated: {0}")]
    Truncated(&'static str),
    /// PACTYPE `Version` is not 0 (MS-PAC 2.3).
    #[error("PAC version {0} (only 0 is defined)")]
    BadVersion(u32),
    /// PACTYPE `cBuffers` is 0 or beyond kedge's limit.
    #[error("PAC declares {0} buffers")]
    BufferCount(u32),
    /// A PAC_INFO_BUFFER (MS-PAC 2.4) points outside the blob, into the header, off the 8-byte
    /// alignment, or over another buffer.
    #[error("PAC buffer {index} (type {buffer_type}) {reason}")]
    BadBuffer {
        /// Position in the buffer table.
        index: usize,
        /// `ulType`.
        buffer_type: u32,
        /// Which placement rule it breaks.
        reason: &'static str,
    },
    /// Two buffers of a type that must appear at most once (MS-PAC 2.4).
    #[error("PAC has more than one buffer of type {0}")]
    DuplicateBuffer(u32),
    /// A buffer kedge needs is absent.
    #[error("PAC has no {0} buffer")]
    MissingBuffer(&'static str),
    /// A buffer's contents break its structure's rules (NDR for LOGON_INFO, MS-PAC 2.5; fixed
    /// layouts for the others).
    #[error("PAC {buffer} malformed: {reason}")]
    Malformed {
        /// The structure (`KERB_VALIDATION_INFO`, `PAC_CLIENT_INFO`, …).
        buffer: &'static str,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A SID (MS-DTYP 2.4.2) that is malformed or cannot be built.
    #[error("invalid SID: {0}")]
    InvalidSid(&'static str),
    /// A value too large for its field when building a PAC.
    #[error("cannot encode PAC: {0}")]
    Encode(&'static str),
    /// The signature's checksum type is not the one the key's enctype uses (MS-PAC 2.8).
    #[error("PAC {which} signature type {got} does not match the key's checksum type {want}")]
    ChecksumTypeMismatch {
        /// `server` or `KDC`.
        which: &'static str,
        /// The type in the PAC.
        got: i32,
        /// The type the key's enctype calls for.
        want: i32,
    },
    /// The signature does not verify: the PAC was modified or the key is wrong
    /// (KRB_AP_ERR_MODIFIED).
    #[error("PAC {0} signature does not verify (KRB_AP_ERR_MODIFIED)")]
    BadSignature(&'static str),
    /// The crypto layer refused the checksum computation.
    #[error("PAC signature: {0}")]
    Crypto(#[from] CryptoError),
}

impl PacError {
    /// A `Malformed` error for `buffer`.
    pub(crate) fn malformed(buffer: &'static str, reason: &'static str) -> Self {
        Self::Malformed { buffer, reason }
    }
}
