//! Typed errors of the bench client's setup. Failures *during* a run are not errors: they are
//! counted by kind in the [`Report`](super::stats::Report).

use std::path::PathBuf;

/// Why a bench run could not start.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A keytab could not be read or parsed.
    #[error("keytab {path}: {msg}")]
    Keytab { path: PathBuf, msg: String },
    /// No key in the keytab fits the SPN / kvno / enctype asked for.
    #[error("no key for {spn} in the keytab{detail}")]
    NoKey { spn: String, detail: String },
    /// A principal name does not parse or has the wrong shape.
    #[error("principal {name:?}: {msg}")]
    Principal { name: String, msg: String },
    /// A PAC could not be built.
    #[error("building the PAC: {0}")]
    Pac(String),
    /// The target URL or address is unusable.
    #[error("target {target:?}: {msg}")]
    Target { target: String, msg: String },
    /// TLS settings are unusable (CA file, server name).
    #[error("tls: {0}")]
    Tls(String),
    /// A duration argument does not parse.
    #[error("duration {0:?}: want e.g. 10s, 500ms, 2m or a number of seconds")]
    Duration(String),
    /// An RPC PDU could not be built.
    #[error("rpc: {0}")]
    Rpc(#[from] crate::rpc::RpcError),
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
}
