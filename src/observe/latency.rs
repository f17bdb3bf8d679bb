//! Latency histograms, response and authentication counters, as handles looked up once (per
//! listener, route or pool) so that a request records with no label lookup and no allocation.
//! What every request writes is striped by thread (`striped.rs`).

use std::sync::{Arc, OnceLock};

use metrics::{counter, histogram, Histogram};

use super::names::*;
use super::striped::{self, StripedCounter, StripedHistogram};
use super::{AUTH_BUCKETS, LATENCY_BUCKETS};

/// An access-log line was dropped (queue full or a failed write).
pub fn access_log_dropped() {
    counter!(ACCESS_LOG_DROPPED).increment(1);
}

/// `kedge_http_request_duration_seconds` of one route of a listener (or of the requests no
/// route matched: `route = "none"`), one striped histogram per status class.
#[derive(Clone)]
pub struct RequestDurations([Arc<StripedHistogram>; 5]);

impl std::fmt::Debug for RequestDurations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestDurations")
    }
}

impl RequestDurations {
    /// The histograms of `route` (a prefix from the config) on `listener`.
    pub fn new(listener: &str, route: &str) -> Self {
        let h = |class: &'static str| {
            striped::histogram(
                HTTP_REQUEST_DURATION,
                HTTP_REQUEST_DURATION_HELP,
                &[("listener", listener), ("route", route), ("status", class)],
                LATENCY_BUCKETS,
            )
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
pub fn backend_response_duration(pool: &str) -> Arc<StripedHistogram> {
    striped::histogram(
        BACKEND_RESPONSE_DURATION,
        BACKEND_RESPONSE_DURATION_HELP,
        &[("pool", pool)],
        LATENCY_BUCKETS,
    )
}

/// `kedge_auth_duration_seconds` of `protocol`: every token validated on it, accepted or
/// refused.
pub fn auth_duration(protocol: &str) -> Arc<StripedHistogram> {
    edge_auth_duration(protocol)
        .cloned()
        .unwrap_or_else(|| auth_duration_lookup(protocol))
}

/// Records one token validated on `protocol` in `seconds` (an RPC bind, a refusal), with no
/// lookup and no reference count written for the edges' own protocols.
pub fn record_auth_duration(protocol: &str, seconds: f64) {
    match edge_auth_duration(protocol) {
        Some(h) => h.record(seconds),
        None => auth_duration_lookup(protocol).record(seconds),
    }
}

/// The histograms of the edges' protocols (`http`, `rpc`), looked up once per process.
fn edge_auth_duration(protocol: &str) -> Option<&'static Arc<StripedHistogram>> {
    static HTTP: OnceLock<Arc<StripedHistogram>> = OnceLock::new();
    static RPC: OnceLock<Arc<StripedHistogram>> = OnceLock::new();
    let cell = match protocol {
        "http" => &HTTP,
        "rpc" => &RPC,
        _ => return None,
    };
    Some(cell.get_or_init(|| auth_duration_lookup(protocol)))
}

/// Another protocol's histogram (none today but tests'): through the registry on each call.
fn auth_duration_lookup(protocol: &str) -> Arc<StripedHistogram> {
    striped::histogram(
        AUTH_DURATION,
        AUTH_DURATION_HELP,
        &[("protocol", protocol)],
        AUTH_BUCKETS,
    )
}

/// `kedge_rpc_bind_duration_seconds` of `listener`.
pub fn rpc_bind_duration(listener: &str) -> Histogram {
    histogram!(RPC_BIND_DURATION, "listener" => listener.to_owned())
}

/// `kedge_http_responses_total` of one listener, one striped counter per status class.
#[derive(Clone)]
pub struct ResponseCounters([Arc<StripedCounter>; 5]);

impl std::fmt::Debug for ResponseCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseCounters")
    }
}

impl ResponseCounters {
    /// The counters of `listener`.
    pub fn new(listener: &str) -> Self {
        let c = |class: &'static str| {
            striped::counter(HTTP_RESPONSES, &[("listener", listener), ("class", class)])
        };
        Self([c("1xx"), c("2xx"), c("3xx"), c("4xx"), c("5xx")])
    }

    /// Counts one response with `status`.
    pub fn count(&self, status: u16) {
        let i = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[i].add(1);
    }
}

/// The striped counter of `kedge_auth_total{protocol, service, result="ok", reason}`: the only
/// place a success is counted, whether per route ([`AuthSuccesses`]) or per call
/// ([`auth_attempt`](super::auth_attempt)).
pub(super) fn auth_ok_total(protocol: &str, service: &str, reason: &str) -> Arc<StripedCounter> {
    striped::counter(
        AUTH_TOTAL,
        &[
            ("protocol", protocol),
            ("service", service),
            ("result", "ok"),
            ("reason", reason),
        ],
    )
}

/// A successful authentication for one service on one protocol, as counted by
/// [`auth_attempt`](super::auth_attempt) with result and reason `ok`: the same series, looked
/// up once (per route) instead of per request.
#[derive(Clone)]
pub struct AuthSuccesses {
    total: Arc<StripedCounter>,
    duration: Arc<StripedHistogram>,
}

impl std::fmt::Debug for AuthSuccesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthSuccesses")
    }
}

impl AuthSuccesses {
    /// The handles of `service` (any case: the label is lowercase) on `protocol`; the series'
    /// striped counter is the one `auth_attempt` counts a success in, so both ways add up.
    pub fn new(protocol: &str, service: &str) -> Self {
        Self {
            total: auth_ok_total(protocol, &service.to_ascii_lowercase(), "ok"),
            duration: auth_duration(protocol),
        }
    }

    /// One token accepted after `seconds` of validation.
    pub fn record(&self, seconds: f64) {
        super::tally::tally().auth_ok.add(1);
        self.total.add(1);
        self.duration.record(seconds);
    }
}
