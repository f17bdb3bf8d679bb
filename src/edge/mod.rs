//! The async edge: listeners, TLS, per-connection Negotiate state, RPC first-bind inspection,
//! forwarding and shutdown.
//!
//! This is the only part of kedge that knows about connections. The protocol cores (`krb`, `rpc`)
//! are called with bytes and `now`; everything here owns sockets, clocks and tasks.

pub mod authenticate;
pub mod http;
pub mod metrics;
pub mod proxy_protocol;
pub mod rpc;
pub mod shutdown;
pub mod source_limits;
pub mod workers;

pub use authenticate::Authenticate;
pub use http::{serve_http, EdgeContext, ServeError};
