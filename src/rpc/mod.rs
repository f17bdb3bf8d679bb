//! MS-RPC connection-oriented PDUs, as far as the edge needs them: the common header, bind and
//! alter_context with their auth verifier, rpc_auth_3, bind_nak, bind_ack, fault, the auth
//! verifier of any PDU, PDU boundaries in a byte stream ([`PduScanner`]) and the interface → SPN
//! service map (The Open Group C706 "DCE 1.1: Remote Procedure Call" ch. 12–13, and [MS-RPCE] 2.2.2).
//!
//! Pure: bytes in, values or [`RpcError`] out; no I/O, no tokio. Untrusted bytes never panic:
//! every offset is checked, lengths cannot overflow, and allocation is bounded by the 8-bit
//! counts of the PDU itself.
//!
//! The edge reads 16 bytes, sizes the PDU with [`pdu_length`] (bounded by a config limit), reads
//! the rest, [`parse_bind`]s it, asks [`InterfaceMap::required_service`] which SPN the bind needs,
//! validates the token at [`BindInfo::token`] with `krb`, and either forwards the bind unchanged
//! or answers [`build_bind_nak`]. Later, it walks the client's stream with [`PduScanner`],
//! holds bind / alter_context / auth3 PDUs whole and refuses one with [`build_bind_nak`] or
//! [`build_fault`].

#![deny(missing_docs)]

mod auth3;
mod bind;
mod bind_ack;
mod bind_nak;
mod cursor;
mod error;
mod fault;
mod header;
mod interfaces;
mod sec_trailer;
mod stream;
mod uuid;

#[cfg(test)]
mod captures_tests;
#[cfg(test)]
mod robustness_tests;

pub use auth3::{build_auth3, parse_auth3, Auth3};
pub use bind::{parse_bind, BindInfo, PresentationContext, SyntaxId};
pub use bind_ack::{parse_bind_ack, AckResult, BindAck, ContextResult};
pub use bind_nak::{build_bind_nak, parse_bind_nak, BindNak, RejectReason};
pub use error::RpcError;
pub use fault::{build_fault, parse_fault, Fault, FAULT_ACCESS_DENIED, PFC_DID_NOT_EXECUTE};
pub use header::{
    pdu_length, CommonHeader, Drep, Endian, PacketType, HEADER_LEN, PFC_CONC_MPX, PFC_FIRST_FRAG,
    PFC_LAST_FRAG, PFC_OBJECT_UUID, PFC_SUPPORT_HEADER_SIGN,
};
pub use interfaces::{InterfaceMap, Requirement, EMSMDB, EPM, NSPI, RFR};
pub use sec_trailer::{
    parse_auth_verifier, AuthLevel, AuthType, AuthVerifier, MAX_AUTH_PAD, SEC_TRAILER_LEN,
};
pub use stream::{is_held, PduScanner, Scanned};
pub use uuid::Uuid;
