//! Recording functions of the edge, one place for every metric name it emits.
//!
//! These call the `metrics` macros directly; when `crate::observe` grows its recording
//! functions, each body here becomes a one-line call into it.

use metrics::{counter, gauge, histogram, Counter, Gauge};

/// One authentication attempt: `result` is `ok` or `refused`, `reason` the stable label
/// (`ok`, an [`AuthError::reason`](crate::krb::error::AuthError::reason), `bad_base64`, …).
pub fn auth_attempt(
    protocol: &'static str,
    service: &str,
    result: &'static str,
    reason: &'static str,
    seconds: f64,
) {
    counter!(
        "kedge_auth_total",
        "protocol" => protocol,
        "service" => service.to_ascii_lowercase(),
        "result" => result,
        "reason" => reason
    )
    .increment(1);
    histogram!("kedge_auth_duration_seconds", "protocol" => protocol).record(seconds);
}

/// An NTLM credential refused by policy.
pub fn ntlm_rejected(protocol: &'static str) {
    counter!("kedge_ntlm_rejected_total", "protocol" => protocol).increment(1);
}

/// A listener limit was hit (`max_connections`, `header_timeout`, `header_bytes`, `token_bytes`,
/// `idle_timeout`, `tls_handshake_timeout`).
pub fn limit_exceeded(listener: &str, limit: &'static str) {
    counter!("kedge_limit_exceeded_total", "listener" => listener.to_string(), "limit" => limit).increment(1);
}

/// An error answered (or a connection ended) on the edge, by side and label.
pub fn edge_error(listener: &str, side: &'static str, label: &'static str) {
    counter!(
        "kedge_http_errors_total",
        "listener" => listener.to_string(),
        "side" => side,
        "kind" => label
    )
    .increment(1);
}

/// A response sent to a client, by status class (`2xx` … `5xx`).
pub fn response(listener: &str, status: u16) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!("kedge_http_responses_total", "listener" => listener.to_string(), "class" => class).increment(1);
}

/// Keeps `kedge_connections_active{listener}` up while alive.
#[derive(Debug)]
pub struct ConnectionGuard {
    gauge: Gauge,
}

/// Counts a client connection as active until the guard drops.
pub fn connection_opened(listener: &str) -> ConnectionGuard {
    counter!("kedge_connections_total", "listener" => listener.to_string()).increment(1);
    let gauge = gauge!("kedge_connections_active", "listener" => listener.to_string());
    gauge.increment(1.0);
    ConnectionGuard { gauge }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// Byte counters of a listener: (client → kedge, kedge → client). Fetched once per connection,
/// incremented per read/write without a registry lookup.
pub fn bytes_counters(listener: &str) -> (Counter, Counter) {
    (
        counter!("kedge_bytes_total", "listener" => listener.to_string(), "direction" => "in"),
        counter!("kedge_bytes_total", "listener" => listener.to_string(), "direction" => "out"),
    )
}

/// A backend connection opened for a client connection or the assert pool (`mode`:
/// `passthrough` or `assert`).
pub fn backend_connection(pool: &str, mode: &'static str) {
    counter!("kedge_backend_connections_total", "pool" => pool.to_string(), "mode" => mode).increment(1);
}
