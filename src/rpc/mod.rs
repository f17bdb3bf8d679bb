//! MS-RPC connection-oriented PDUs, as far as the edge needs them: the common header, bind and
//! alter_context with their auth verifier, bind_nak, bind_ack, and the interface → SPN service
//! map (The Open Group C706 "DCE 1.1: Remote Procedure Call" ch. 12–13, and [MS-RPCE] 2.2.2).
//!
//! Pure: bytes in, values or [`RpcError`] out; no I/O, no tokio. Untrusted bytes never panic:
//! every offset is checked, lengths cannot overflow, and allocation is bounded by the 8-bit
//! counts of the PDU itself.
//!
//! The edge reads 16 bytes, sizes the PDU with [`pdu_length`] (bounded by a config limit), reads
//! the rest, [`parse_bind`]s it, asks [`InterfaceMap::required_service`] which SPN the bind needs,
//! validates the token at [`BindInfo::token`] with `krb`, and either forwards the bind unchanged
//! or answers [`build_bind_nak`].

#![deny(missing_docs)]

mod bind;
mod bind_ack;
mod bind_nak;
mod cursor;
mod error;
mod header;
mod interfaces;
mod sec_trailer;
mod uuid;

#[cfg(test)]
mod captures_tests;
#[cfg(test)]
mod robustness_tests;

pub use bind::{parse_bind, BindInfo, PresentationContext, SyntaxId};
pub use bind_ack::{parse_bind_ack, AckResult, BindAck, ContextResult};
pub use bind_nak::{build_bind_nak, parse_bind_nak, BindNak, RejectReason};
pub use error::RpcError;
pub use header::{
    pdu_length, CommonHeader, Drep, Endian, PacketType, HEADER_LEN, PFC_CONC_MPX, PFC_FIRST_FRAG,
    PFC_LAST_FRAG, PFC_OBJECT_UUID, PFC_SUPPORT_HEADER_SIGN,
};
pub use interfaces::{InterfaceMap, Requirement, EMSMDB, EPM, NSPI, RFR};
pub use sec_trailer::{AuthLevel, AuthType, AuthVerifier, MAX_AUTH_PAD, SEC_TRAILER_LEN};
pub use uuid::Uuid;
