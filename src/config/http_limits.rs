//! `[http.limits]`: an HTTP listener's bounds on heads, tokens, time and connections, and the
//! per-source caps.

use serde::{Deserialize, Serialize};

/// Limits of an HTTP listener.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLimits {
    /// Maximum bytes of the request head (request line + headers); default 96 KiB so a 64 KiB
    /// Authorization header (48,000-byte Windows token, base64) fits.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Maximum number of request headers.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Maximum decoded Negotiate token bytes (default 64 KiB).
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Time allowed to receive a request head, milliseconds (slowloris).
    #[serde(
        default = "default_header_timeout_ms",
        deserialize_with = "crate::duration_field::millis"
    )]
    pub header_timeout_ms: u64,
    /// Idle time before a client connection is closed, seconds (default 20 min, above Outlook's
    /// 12–15 min keep-alives).
    #[serde(
        default = "default_idle_timeout_secs",
        deserialize_with = "crate::duration_field::secs"
    )]
    pub idle_timeout_secs: u64,
    /// Maximum concurrent client connections on the listener.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// On shutdown, how long in-flight connections may finish before they are cut, seconds.
    #[serde(
        default = "default_shutdown_grace_secs",
        deserialize_with = "crate::duration_field::secs"
    )]
    pub shutdown_grace_secs: u64,
    /// Once kedge has refused a request on a connection that is not authenticated (a 401, a
    /// bad Authorization header, …), the connection must authenticate within this time or is
    /// closed, milliseconds (default 5,000; a Negotiate client answers a 401 at once).
    #[serde(
        default = "default_unauthenticated_timeout_ms",
        deserialize_with = "crate::duration_field::millis"
    )]
    pub unauthenticated_timeout_ms: u64,
    /// Refused requests an unauthenticated connection may have; the last one is answered with
    /// `Connection: close` (default 3; 0 = no limit).
    #[serde(default = "default_max_failed_auth")]
    pub max_failed_auth: u32,
    /// Per-source-address connection limits.
    #[serde(default)]
    pub per_source: SourceLimitsConfig,
}

/// Per-source-address limits of a listener (`per_source = { … }`). IPv6 sources count per /64.
/// Connections over a limit are closed at once and counted
/// (`kedge_limit_exceeded_total{limit="per_source_connections"|"per_source_rate"}`). Behind a
/// NAT or a proxy that hides client addresses, raise them or set them to 0 (off).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SourceLimitsConfig {
    /// Concurrent connections per source (default 1,000; 0 = no limit).
    #[serde(default = "default_per_source_connections")]
    pub max_connections: usize,
    /// New connections per second per source, sustained (default 100; 0 = no limit).
    #[serde(default = "default_per_source_rate")]
    pub rate_per_sec: u32,
    /// New connections a source may open at once before the rate applies (default 200).
    #[serde(default = "default_per_source_burst")]
    pub burst: u32,
}

fn default_per_source_connections() -> usize {
    1_000
}
fn default_per_source_rate() -> u32 {
    100
}
fn default_per_source_burst() -> u32 {
    200
}

impl Default for SourceLimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: default_per_source_connections(),
            rate_per_sec: default_per_source_rate(),
            burst: default_per_source_burst(),
        }
    }
}

impl SourceLimitsConfig {
    /// No per-source limit (load generators on one address, tests).
    pub fn off() -> Self {
        Self {
            max_connections: 0,
            rate_per_sec: 0,
            burst: 0,
        }
    }
}

fn default_unauthenticated_timeout_ms() -> u64 {
    5_000
}
fn default_max_failed_auth() -> u32 {
    3
}

fn default_max_header_bytes() -> usize {
    96 * 1024
}
fn default_max_headers() -> usize {
    100
}
fn default_max_token_bytes() -> usize {
    64 * 1024
}
fn default_header_timeout_ms() -> u64 {
    15_000
}
fn default_idle_timeout_secs() -> u64 {
    1_200
}
pub(super) fn default_max_connections() -> usize {
    20_000
}
pub(super) fn default_shutdown_grace_secs() -> u64 {
    30
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            max_token_bytes: default_max_token_bytes(),
            header_timeout_ms: default_header_timeout_ms(),
            idle_timeout_secs: default_idle_timeout_secs(),
            max_connections: default_max_connections(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
            unauthenticated_timeout_ms: default_unauthenticated_timeout_ms(),
            max_failed_auth: default_max_failed_auth(),
            per_source: SourceLimitsConfig::default(),
        }
    }
}
