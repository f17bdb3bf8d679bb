//! Typed recording functions: the only places that name a metric.

use metrics::{counter, gauge, histogram, Gauge, SharedString};

use super::names::*;
use super::striped::StripedCounter;
use super::tally::{bump, tally};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One authentication attempt: `result` is `ok` or `fail`, `reason` the error's `reason()`
/// (`ok` on success); `seconds` the validation time, `None` for a credential refused before any
/// validation ran (NTLM by policy, bad base64, an unsupported scheme): those are counted but stay
/// out of the latency histogram, which they would drag towards zero.
///
/// A success is counted in the series' striped counter, the one [`super::AuthSuccesses`] counts
/// in (a scrape sets the series to the stripes' sum, which would overwrite a count made beside
/// them), so successes counted either way all show.
pub fn auth_attempt(protocol: &str, service: &str, result: &str, reason: &str, seconds: Option<f64>) {
    if result == "ok" {
        tally().auth_ok.add(1);
        super::latency::auth_ok_total(protocol, service, reason).add(1);
    } else {
        bump(&tally().auth_fail, 1);
        counter!(AUTH_TOTAL, "protocol" => protocol.to_owned(), "service" => service.to_owned(),
            "result" => SharedString::from("fail"), "reason" => reason.to_owned())
        .increment(1);
    }
    if let Some(seconds) = seconds {
        super::latency::record_auth_duration(protocol, seconds);
    }
}

/// An NTLM offer refused by policy.
pub fn ntlm_rejected(protocol: &str) {
    bump(&tally().ntlm_rejected, 1);
    counter!(NTLM_REJECTED, "protocol" => protocol.to_owned()).increment(1);
}

/// An authenticator refused as a replay.
pub fn replay_rejected(protocol: &str) {
    bump(&tally().replay_rejected, 1);
    counter!(REPLAY_REJECTED, "protocol" => protocol.to_owned()).increment(1);
}

/// Counts one open client connection on `listener` until dropped.
#[derive(Debug)]
#[must_use = "the connection is counted only while the guard lives"]
pub struct ConnectionGuard {
    gauge: Gauge,
    per_listener: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

fn listener_counter(listener: &str) -> std::sync::Arc<std::sync::atomic::AtomicI64> {
    static MAP: std::sync::OnceLock<dashmap::DashMap<String, std::sync::Arc<std::sync::atomic::AtomicI64>>> =
        std::sync::OnceLock::new();
    let map = MAP.get_or_init(dashmap::DashMap::new);
    if let Some(c) = map.get(listener) {
        return c.clone();
    }
    map.entry(listener.to_owned()).or_default().clone()
}

/// Open client connections on `listener` (for `/status`).
pub fn listener_connections(listener: &str) -> i64 {
    listener_counter(listener).load(Ordering::Relaxed)
}

/// A client connection was accepted on `listener`; keep the guard for its lifetime.
pub fn connection_opened(listener: &str) -> ConnectionGuard {
    tally().connections_active.fetch_add(1, Ordering::Relaxed);
    bump(&tally().connections_total, 1);
    let gauge = gauge!(CONNECTIONS_ACTIVE, "listener" => listener.to_owned());
    gauge.increment(1.0);
    let per_listener = listener_counter(listener);
    per_listener.fetch_add(1, Ordering::Relaxed);
    ConnectionGuard { gauge, per_listener }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        tally().connections_active.fetch_sub(1, Ordering::Relaxed);
        self.per_listener.fetch_sub(1, Ordering::Relaxed);
        self.gauge.decrement(1.0);
    }
}

/// Counts one open backend session of `pool` until dropped (held by [`crate::pool::MemberLease`]).
#[derive(Debug)]
#[must_use = "the session is counted only while the guard lives"]
pub struct SessionGuard {
    gauge: Gauge,
}

/// A backend session of `pool` began; keep the guard for its lifetime.
pub fn session_opened(pool: impl Into<SharedString>) -> SessionGuard {
    tally().sessions_active.fetch_add(1, Ordering::Relaxed);
    let gauge = gauge!(SESSIONS_ACTIVE, "pool" => pool.into());
    gauge.increment(1.0);
    SessionGuard { gauge }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        tally().sessions_active.fetch_sub(1, Ordering::Relaxed);
        self.gauge.decrement(1.0);
    }
}

/// Direction of relayed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the client towards the backend.
    ClientToBackend,
    /// From the backend towards the client.
    BackendToClient,
}

impl Direction {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToBackend => "client_to_backend",
            Direction::BackendToClient => "backend_to_client",
        }
    }
}

/// Counts relayed bytes of one listener and direction; get one per connection with
/// [`byte_meter`] and call [`ByteMeter::add`] per chunk (no label work per chunk).
#[derive(Clone, Debug)]
pub struct ByteMeter {
    counter: Arc<StripedCounter>,
}

/// A byte meter for `listener` and `direction`.
pub fn byte_meter(listener: &str, direction: Direction) -> ByteMeter {
    ByteMeter {
        counter: super::striped::counter(
            BYTES_TOTAL,
            &[("listener", listener), ("direction", direction.as_str())],
        ),
    }
}

impl ByteMeter {
    /// `n` more bytes went through (into stripes of this thread's: no cache line shared with
    /// the other workers per chunk). `/status`'s byte totals are summed from the same series.
    pub fn add(&self, n: u64) {
        self.counter.add(n);
    }
}

/// `n` bytes relayed on `listener` in `direction` (prefer a [`ByteMeter`] on hot paths).
pub fn bytes(listener: &str, direction: Direction, n: u64) {
    byte_meter(listener, direction).add(n);
}

/// Sets the health gauge of a pool member.
pub fn backend_up(pool: impl Into<SharedString>, member: impl Into<SharedString>, up: bool) {
    gauge!(BACKEND_UP, "pool" => pool.into(), "member" => member.into()).set(if up { 1.0 } else { 0.0 });
}

/// Time one backend connect took.
pub fn backend_connect_duration(pool: impl Into<SharedString>, seconds: f64) {
    histogram!(BACKEND_CONNECT_DURATION, "pool" => pool.into()).record(seconds);
}

/// A session was sent to `member`.
pub fn backend_selected(pool: impl Into<SharedString>, member: impl Into<SharedString>) {
    counter!(BACKEND_SELECTIONS, "pool" => pool.into(), "member" => member.into()).increment(1);
}

/// A connect failed and the pool moved on to the next candidate.
pub fn backend_failover(pool: impl Into<SharedString>) {
    bump(&tally().backend_failovers, 1);
    counter!(BACKEND_FAILOVERS, "pool" => pool.into()).increment(1);
}

/// A member's health changed.
pub fn backend_health_transition(pool: impl Into<SharedString>, member: impl Into<SharedString>, up: bool) {
    let to = if up { "up" } else { "down" };
    counter!(BACKEND_HEALTH_TRANSITIONS, "pool" => pool.into(), "member" => member.into(), "to" => to)
        .increment(1);
}

/// A member was ejected after a failed connect.
pub fn backend_ejected(pool: impl Into<SharedString>, member: impl Into<SharedString>) {
    bump(&tally().backend_ejections, 1);
    counter!(BACKEND_EJECTIONS, "pool" => pool.into(), "member" => member.into()).increment(1);
}

/// A configuration reload (SIGHUP) was applied (`ok`) or refused.
pub fn config_reload(ok: bool) {
    counter!(CONFIG_RELOADS, "result" => if ok { "ok" } else { "rejected" }).increment(1);
}

/// Which ASA credential a kvno belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvnoSlot {
    /// The newest credential.
    Latest,
    /// The one before it (still accepted after a password roll).
    Previous,
}

/// Publishes the kvno of a credential slot (`None`: no such credential, shown as 0).
pub fn keytab_kvno(slot: KvnoSlot, kvno: Option<u32>) {
    let slot = match slot {
        KvnoSlot::Latest => "latest",
        KvnoSlot::Previous => "previous",
    };
    gauge!(KEYTAB_KVNO, "slot" => slot).set(f64::from(kvno.unwrap_or(0)));
}

/// A keytab reload was accepted (`true`) or refused (`false`).
pub fn keytab_reload(ok: bool) {
    let t = tally();
    bump(
        if ok {
            &t.keytab_reloads_ok
        } else {
            &t.keytab_reloads_rejected
        },
        1,
    );
    counter!(KEYTAB_RELOADS, "result" => if ok { "ok" } else { "rejected" }).increment(1);
}

/// A configured limit (`max_header_bytes`, `max_connections`, `header_timeout`, …) refused
/// something on `listener`.
pub fn limit_exceeded(listener: &str, limit: &'static str) {
    bump(&tally().limit_exceeded, 1);
    counter!(LIMIT_EXCEEDED, "listener" => listener.to_owned(), "limit" => limit).increment(1);
}

/// Publishes the number of live replay-cache entries.
pub fn replay_cache_entries(n: usize) {
    gauge!(REPLAY_CACHE_ENTRIES).set(n as f64);
}

/// Publishes the ticket cache's size and lookups.
pub fn ticket_cache(stats: crate::krb::ticket_cache::TicketCacheStats) {
    gauge!(TICKET_CACHE_ENTRIES).set(stats.entries as f64);
    gauge!(TICKET_CACHE_BYTES).set(stats.bytes as f64);
    counter!(TICKET_CACHE_LOOKUPS, "result" => "hit").absolute(stats.hits);
    counter!(TICKET_CACHE_LOOKUPS, "result" => "miss").absolute(stats.misses);
}

/// The replay cache was full and an authenticator was refused.
pub fn replay_cache_full() {
    bump(&tally().replay_cache_full, 1);
    counter!(REPLAY_CACHE_FULL).increment(1);
}

/// One call to the shared replay store: `result` is `fresh`, `replay`, `error` or `timeout`;
/// `seconds` its time where a call was made (`None`: refused at once, not connected).
pub fn replay_store_call(result: &'static str, seconds: Option<f64>) {
    counter!(REPLAY_STORE_CALLS, "result" => result).increment(1);
    if let Some(seconds) = seconds {
        histogram!(REPLAY_STORE_DURATION).record(seconds);
    }
}

/// Whether a connection to the shared replay store is open.
pub fn replay_store_up(up: bool) {
    gauge!(REPLAY_STORE_UP).set(if up { 1.0 } else { 0.0 });
}

/// An authentication the shared store gave no verdict on, handled by policy `fail`
/// (`closed`: refused, `local`: accepted on the local cache alone).
pub fn replay_store_degraded(protocol: &'static str, fail: &'static str) {
    counter!(REPLAY_STORE_DEGRADED, "protocol" => protocol, "fail" => fail).increment(1);
}
