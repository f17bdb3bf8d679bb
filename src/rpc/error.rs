//! Why a connection-oriented MS-RPC PDU was refused (C706 ch. 12, MS-RPCE 2.2.2).
//!
//! Every variant is plain data — numbers, UUIDs and service names, never token bytes — so an
//! `RpcError` can go to logs and metrics as it is. `reject_reason()` maps each one to the
//! `bind_nak` reason the edge answers with.

use super::bind_nak::RejectReason;
use super::uuid::Uuid;

/// A malformed, unsupported or unacceptable bind / alter_context PDU (C706 12.6, MS-RPCE 2.2.2).
// Variant fields are named for the PDU fields and limits their variant's doc names.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// Fewer bytes than the PDU needs (C706 12.6.3: the common header is 16 bytes, the PDU
    /// `frag_length`).
    #[error("truncated PDU: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    /// `rpc_vers` is not 5 or `rpc_vers_minor` not 0/1 (C706 12.6.3.1).
    #[error("unsupported RPC protocol version {major}.{minor} (need 5.0 or 5.1)")]
    BadVersion { major: u8, minor: u8 },
    /// The integer representation nibble of `packed_drep` is neither big (0) nor little (1)
    /// endian (C706 14.1 / 12.6.3.1).
    #[error("unsupported data representation {0:02x?}")]
    BadDrep([u8; 4]),
    /// `frag_length` is smaller than the header plus the fields it must hold (C706 12.6.3.1).
    #[error("frag_length {frag_length} is too small (at least {min})")]
    FragTooShort { frag_length: usize, min: usize },
    /// `frag_length` exceeds the configured limit.
    #[error("frag_length {frag_length} exceeds the limit of {max} bytes")]
    FragTooLong { frag_length: usize, max: usize },
    /// The PDU is not of the type asked for (bind 11 / alter_context 14, bind_ack 12, bind_nak 13).
    #[error("unexpected PDU type {ptype} (expected {expected})")]
    UnexpectedType { ptype: u8, expected: &'static str },
    /// A bind split over several PDUs (PFC_FIRST_FRAG / PFC_LAST_FRAG not both set, C706 12.6.3.1,
    /// MS-RPCE 3.3.1.5.7). First-bind tokens fit in one PDU in practice; kedge refuses the rest.
    #[error("fragmented bind (pfc_flags {pfc_flags:#04x}): a first bind must fit in one PDU")]
    FragmentedBind { pfc_flags: u8 },
    /// `auth_length` does not fit in the PDU with its 8-byte sec_trailer (C706 13.2.6.1).
    #[error("auth_length {auth_length} does not fit in frag_length {frag_length}")]
    AuthLengthInconsistent { auth_length: usize, frag_length: usize },
    /// `auth_pad_length` is above 15 or overlaps the presentation context list (C706 13.2.6.1,
    /// MS-RPCE 2.2.2.11).
    #[error("auth_pad_length {pad} is inconsistent with the PDU body ({room} bytes free)")]
    BadAuthPad { pad: usize, room: usize },
    /// The presentation context list runs past the body (C706 12.6.4.3).
    #[error("presentation context list overruns the PDU body")]
    ContextListOverrun,
    /// The PDU body is not well formed in some other way (`what` names the field).
    #[error("malformed {what}")]
    Malformed { what: &'static str },
    /// A value does not fit the 16-bit field it is encoded into (building a PDU).
    #[error("{what} too long to encode ({len} bytes)")]
    TooLong { what: &'static str, len: usize },
    /// A bind naming no presentation context (C706 12.6.4.3) — nothing to authorize.
    #[error("bind carries no presentation context")]
    NoContexts,
    /// The bind asks for an interface kedge has no policy for.
    #[error("interface {uuid} v{major}.{minor} is not in the interface map")]
    UnknownInterface { uuid: Uuid, major: u16, minor: u16 },
    /// The bind's contexts need different services (or one needs none and another one).
    #[error("bind mixes interfaces needing different services: {first} and {second}")]
    MixedServices { first: String, second: String },
    /// A UUID string is not in the canonical `8-4-4-4-12` hex form (C706 Appendix A).
    #[error("invalid UUID string {0:?}")]
    BadUuid(String),
    /// An interface map entry names no usable SPN service.
    #[error(
        "invalid service name {0:?} (expected an SPN service class such as exchangeMDB, or \"no-auth\")"
    )]
    BadService(String),
}

impl RpcError {
    /// Stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            RpcError::Truncated { .. } => "truncated",
            RpcError::BadVersion { .. } => "bad_version",
            RpcError::BadDrep(_) => "bad_drep",
            RpcError::FragTooShort { .. } => "frag_too_short",
            RpcError::FragTooLong { .. } => "frag_too_long",
            RpcError::UnexpectedType { .. } => "unexpected_type",
            RpcError::FragmentedBind { .. } => "fragmented_bind",
            RpcError::AuthLengthInconsistent { .. } => "auth_length_inconsistent",
            RpcError::BadAuthPad { .. } => "bad_auth_pad",
            RpcError::ContextListOverrun => "context_list_overrun",
            RpcError::Malformed { .. } => "malformed",
            RpcError::TooLong { .. } => "too_long",
            RpcError::NoContexts => "no_contexts",
            RpcError::UnknownInterface { .. } => "unknown_interface",
            RpcError::MixedServices { .. } => "mixed_services",
            RpcError::BadUuid(_) => "bad_uuid",
            RpcError::BadService(_) => "bad_service",
        }
    }

    /// The `bind_nak` reject reason that fits this error (C706 12.6.3.1, MS-RPCE 2.2.2.5).
    pub fn reject_reason(&self) -> RejectReason {
        match self {
            RpcError::BadVersion { .. } => RejectReason::ProtocolVersionNotSupported,
            RpcError::FragTooLong { .. } | RpcError::FragmentedBind { .. } => {
                RejectReason::LocalLimitExceeded
            }
            _ => RejectReason::ReasonNotSpecified,
        }
    }
}
