//! Latency histograms and access-log counters, as handles looked up once (per listener, route
//! or pool) so that a request records with no label lookup and no allocation.

use metrics::{counter, histogram, Histogram};

use super::names::*;

/// An access-log line was dropped (queue full or a failed write).
pub fn access_log_dropped() {
    counter!(ACCESS_LOG_DROPPED).increment(1);
}

/// `kedge_http_request_duration_seconds` of one route of a listener (or of the requests no
/// route matched: `route = "none"`), one handle per status class.
#[derive(Clone)]
pub struct RequestDurations([Histogram; 5]);

impl std::fmt::Debug for RequestDurations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestDurations")
    }
}

impl RequestDurations {
    /// The handles of `route` (a prefix from the config) on `listener`.
    pub fn new(listener: &str, route: &str) -> Self {
        let h = |class: &'static str| {
            histogram!(HTTP_REQUEST_DURATION, "listener" => listener.to_owned(),
                "route" => route.to_owned(), "status" => class)
        };
        Self([h("1xx"), h("2xx"), h("3xx"), h("4xx"), h("5xx")])
    }

    /// Records one request that got `status` after `seconds`.
    pub fn record(&self, status: u16, seconds: f64) {
        let i = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[i].record(seconds);
    }
}

/// `kedge_backend_response_duration_seconds` of `pool`.
pub fn backend_response_duration(pool: &str) -> Histogram {
    histogram!(BACKEND_RESPONSE_DURATION, "pool" => pool.to_owned())
}

/// `kedge_rpc_bind_duration_seconds` of `listener`.
pub fn rpc_bind_duration(listener: &str) -> Histogram {
    histogram!(RPC_BIND_DURATION, "listener" => listener.to_owned())
}
