//! The replay cache (RFC 4120 §3.2.3; to be built).

/// Replay cache (stub).
pub struct ReplayCache {}
