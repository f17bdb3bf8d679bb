//! Recording functions of the edge, one place for every metric name it emits.
//!
//! Shared metrics go through `crate::observe` (which also keeps the `/status` tallies); the
//! HTTP-edge-only counters (errors by side, responses by class, backend connections by mode)
//! are named here.

use metrics::counter;

pub use crate::observe::{ByteMeter, ConnectionGuard};

/// One authentication attempt: `result` is `ok` or `refused`, `reason` the stable label
/// (`ok`, an [`AuthError::reason`](crate::krb::error::AuthError::reason), `bad_base64`, …);
/// `seconds` the validation time, `None` when no validation ran.
pub fn auth_attempt(
    protocol: &'static str,
    service: &str,
    result: &'static str,
    reason: &'static str,
    seconds: Option<f64>,
) {
    crate::observe::auth_attempt(protocol, &service.to_ascii_lowercase(), result, reason, seconds);
    if reason == "KRB_AP_ERR_REPEAT" {
        crate::observe::replay_rejected(protocol);
    }
}

/// An NTLM credential refused by policy.
pub fn ntlm_rejected(protocol: &'static str) {
    crate::observe::ntlm_rejected(protocol);
}

/// A listener limit was hit (`max_connections`, `header_timeout`, `header_bytes`, `token_bytes`,
/// `idle_timeout`, `tls_handshake_timeout`).
pub fn limit_exceeded(listener: &str, limit: &'static str) {
    crate::observe::limit_exceeded(listener, limit);
}

/// An error answered (or a connection ended) on the edge, by side and label.
pub fn edge_error(listener: &str, side: &'static str, label: &'static str) {
    counter!(
        crate::observe::HTTP_ERRORS,
        "listener" => listener.to_string(),
        "side" => side,
        "kind" => label
    )
    .increment(1);
}

/// Counts a client connection as active until the guard drops.
pub fn connection_opened(listener: &str) -> ConnectionGuard {
    crate::observe::connection_opened(listener)
}

/// Byte meters of a listener: (client → kedge, kedge → client). Fetched once per listener,
/// added to per read/write without a registry lookup.
pub fn bytes_counters(listener: &str) -> (ByteMeter, ByteMeter) {
    use crate::observe::Direction;
    (
        crate::observe::byte_meter(listener, Direction::ClientToBackend),
        crate::observe::byte_meter(listener, Direction::BackendToClient),
    )
}

/// A backend connection opened for a client connection or the assert pool (`mode`:
/// `passthrough` or `assert`).
pub fn backend_connection(pool: &str, mode: &'static str) {
    counter!(crate::observe::BACKEND_CONNECTIONS, "pool" => pool.to_string(), "mode" => mode).increment(1);
}
