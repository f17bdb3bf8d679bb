//! The bench client behind `kedge-bench`: mints real AP-REQs locally with the ASA key and drives
//! HTTP Negotiate and MS-RPC bind load against kedge (or anything else), reporting throughput and
//! HdrHistogram latency percentiles (DESIGN.md §5 "bench client", §7 targets).
//!
//! Code map:
//! - [`credentials`]: picks the service key for an SPN out of a keytab.
//! - [`tokens`]: [`tokens::TokenMinter`] makes fresh tokens the way a real client does — one
//!   service ticket per user (with an AD-sized PAC if asked), a new authenticator per token.
//! - [`wire`]: the token's outer DER written in one pass around the pre-encoded ticket.
//! - [`feed`]: background mint threads that keep tokens ready so minting never paces the load.
//! - [`http`], [`rpc`]: the two load drivers; [`tls`] builds their client TLS settings.
//! - [`stats`]: latency histograms, error kinds and the [`stats::Report`] both drivers return.
//! - [`limits`]: when a run stops (duration, count, hard time cap) and duration parsing.
//!
//! Nothing here runs unbounded: every run has a request/bind budget or a duration, and a hard cap
//! on wall time.

pub mod credentials;
pub mod error;
pub mod feed;
pub mod http;
pub mod limits;
pub mod rpc;
pub mod stats;
pub mod tls;
pub mod tokens;
pub mod wire;

pub use error::BenchError;
