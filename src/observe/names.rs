//! Every metric's name, and its help text and unit (`describe_*`), in one place.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Counter `{protocol, service, result, reason}`: authentication attempts.
pub const AUTH_TOTAL: &str = "kedge_auth_total";
/// Histogram `{protocol}`: time to validate one token, seconds (with the shared replay store's
/// call where one is configured).
pub const AUTH_DURATION: &str = "kedge_auth_duration_seconds";
/// `# HELP` of [`AUTH_DURATION`] (a striped histogram, rendered by `striped.rs`).
pub const AUTH_DURATION_HELP: &str =
    "Time to validate one Kerberos token, including the shared replay store's call where configured.";
/// Counter `{protocol}`: NTLM offers refused by policy.
pub const NTLM_REJECTED: &str = "kedge_ntlm_rejected_total";
/// Counter `{protocol}`: authenticators refused as replays.
pub const REPLAY_REJECTED: &str = "kedge_replay_rejected_total";
/// Gauge `{listener}`: open client connections.
pub const CONNECTIONS_ACTIVE: &str = "kedge_connections_active";
/// Gauge `{pool}`: open backend sessions (one per [`crate::pool::MemberLease`]).
pub const SESSIONS_ACTIVE: &str = "kedge_sessions_active";
/// Counter `{listener, direction}`: bytes relayed; direction `client_to_backend` or
/// `backend_to_client`.
pub const BYTES_TOTAL: &str = "kedge_bytes_total";
/// Gauge `{pool, member}`: 1 while the member passes its health checks.
pub const BACKEND_UP: &str = "kedge_backend_up";
/// Histogram `{pool}`: time to connect to a member, seconds.
pub const BACKEND_CONNECT_DURATION: &str = "kedge_backend_connect_duration_seconds";
/// Counter `{pool, member}`: sessions sent to a member.
pub const BACKEND_SELECTIONS: &str = "kedge_backend_selections_total";
/// Counter `{pool}`: connects that moved on to the next candidate.
pub const BACKEND_FAILOVERS: &str = "kedge_backend_failovers_total";
/// Counter `{pool, member, to}`: health state changes, `to` = `up` or `down`.
pub const BACKEND_HEALTH_TRANSITIONS: &str = "kedge_backend_health_transitions_total";
/// Counter `{pool, member}`: passive ejections after a failed connect.
pub const BACKEND_EJECTIONS: &str = "kedge_backend_ejections_total";
/// Gauge `{slot}`: kvno of the `latest` and `previous` ASA credentials.
pub const KEYTAB_KVNO: &str = "kedge_keytab_kvno";
/// Counter `{result}`: keytab reloads, `ok` or `rejected`.
pub const KEYTAB_RELOADS: &str = "kedge_keytab_reloads_total";
/// Configuration reloads (SIGHUP) by result.
pub const CONFIG_RELOADS: &str = "kedge_config_reloads_total";
/// Counter `{listener, limit}`: requests or connections refused by a limit.
pub const LIMIT_EXCEEDED: &str = "kedge_limit_exceeded_total";
/// Gauge: live replay-cache entries.
pub const REPLAY_CACHE_ENTRIES: &str = "kedge_replay_cache_entries";
/// Counter: authenticators refused because the replay cache was full.
pub const REPLAY_CACHE_FULL: &str = "kedge_replay_cache_full_total";
/// Gauge: service tickets kept opened (`[kerberos] ticket_cache_bytes`).
pub const TICKET_CACHE_ENTRIES: &str = "kedge_ticket_cache_entries";
/// Gauge: bytes the kept tickets count against `ticket_cache_bytes`.
pub const TICKET_CACHE_BYTES: &str = "kedge_ticket_cache_bytes";
/// Counter `{result}`: ticket-cache lookups, `hit` or `miss`.
pub const TICKET_CACHE_LOOKUPS: &str = "kedge_ticket_cache_lookups_total";
/// Counter `{result}`: calls to the shared replay store, `fresh`, `replay`, `error` (not
/// connected, or an error) or `timeout`.
pub const REPLAY_STORE_CALLS: &str = "kedge_replay_store_calls_total";
/// Histogram: time of one shared replay store call, seconds (calls made, not those refused at
/// once while the store is down).
pub const REPLAY_STORE_DURATION: &str = "kedge_replay_store_duration_seconds";
/// Gauge: 1 while a connection to the shared replay store is open, else 0.
pub const REPLAY_STORE_UP: &str = "kedge_replay_store_up";
/// Counter `{protocol, fail}`: authentications the shared store gave no verdict on, by the
/// policy applied: `closed` (refused) or `local` (accepted on the local cache alone).
pub const REPLAY_STORE_DEGRADED: &str = "kedge_replay_store_degraded_total";
/// Counter `{listener, side, kind}`: HTTP errors answered (or connections ended) by the edge.
pub const HTTP_ERRORS: &str = "kedge_http_errors_total";
/// Counter `{listener, class}`: HTTP responses sent to clients by status class.
pub const HTTP_RESPONSES: &str = "kedge_http_responses_total";
/// Counter `{pool, mode}`: backend connections opened (passthrough: one per client connection).
pub const BACKEND_CONNECTIONS: &str = "kedge_backend_connections_total";
/// Counter: access-log lines dropped (the writer's queue full, or the write failed).
pub const ACCESS_LOG_DROPPED: &str = "kedge_access_log_dropped_total";
/// Histogram `{listener, route, status}`: time from a request's head to its response head,
/// seconds; `route` the route's prefix (`none` where no route matched), `status` its class.
pub const HTTP_REQUEST_DURATION: &str = "kedge_http_request_duration_seconds";
/// `# HELP` of [`HTTP_REQUEST_DURATION`] (a striped histogram, rendered by `striped.rs`).
pub const HTTP_REQUEST_DURATION_HELP: &str =
    "Time from an HTTP request's head to its response head, by listener, route prefix and status class.";
/// Histogram `{pool}`: time from sending a request to a member until its response head, seconds.
pub const BACKEND_RESPONSE_DURATION: &str = "kedge_backend_response_duration_seconds";
/// `# HELP` of [`BACKEND_RESPONSE_DURATION`] (a striped histogram, rendered by `striped.rs`).
pub const BACKEND_RESPONSE_DURATION_HELP: &str =
    "Time from sending a request to a pool member until its response head.";
/// Histogram `{listener}`: time from accepting an RPC connection until its first bind is
/// forwarded (read, admission, backend connect), seconds.
pub const RPC_BIND_DURATION: &str = "kedge_rpc_bind_duration_seconds";
/// Gauge `{version}`: always 1; carries the running version.
pub const BUILD_INFO: &str = "kedge_build_info";

// ---- TLS certificates, reload times and process metrics ------------------------------------

/// Counter `{listener, result}`: TLS certificate reloads (SIGHUP or a file change) that found
/// new files, `ok` (installed) or `rejected` (the old certificates stay).
pub const TLS_RELOADS: &str = "kedge_tls_reloads_total";
/// Gauge `{listener, name}`: a served certificate's notAfter, unix seconds; `name` is its first
/// SNI name. NaN once a reload replaced that certificate with one of another name.
pub const TLS_CERTIFICATE_EXPIRY: &str = "kedge_tls_certificate_expiry_timestamp_seconds";
/// Counter `{listener, reason}`: TLS handshakes that failed, by
/// [`crate::edge::http::tls::HandshakeFailure`] label: `timeout`, `malformed`, `protocol`,
/// `certificate_rejected`, `io`.
pub const TLS_HANDSHAKE_FAILURES: &str = "kedge_tls_handshake_failures_total";
/// Gauge `{what}`: when the running `config`, `keytab` or `tls` certificates were last loaded
/// (the start included), unix seconds.
pub const LAST_RELOAD: &str = "kedge_last_reload_timestamp_seconds";

/// The `process_*` metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, `process_max_fds`, `process_virtual_memory_bytes`,
/// `process_virtual_memory_max_bytes`, `process_start_time_seconds`, `process_threads`): named
/// and described by the `metrics-process` crate, collected on each scrape.
pub fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

pub(super) fn describe_tls_and_reloads() {
    describe_counter!(
        TLS_RELOADS,
        Unit::Count,
        "TLS certificate reloads that found new files, by listener and result (ok|rejected)."
    );
    describe_gauge!(
        TLS_CERTIFICATE_EXPIRY,
        Unit::Seconds,
        "notAfter of each served TLS certificate (unix time), by listener and first SNI name."
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        Unit::Count,
        "Failed TLS handshakes by listener and reason (timeout|malformed|protocol|certificate_rejected|io)."
    );
    describe_gauge!(
        LAST_RELOAD,
        Unit::Seconds,
        "When the running config, keytab or TLS certificates were last loaded (unix time)."
    );
    process_collector().describe();
}

// ---- end of TLS certificates, reload times and process metrics -----------------------------

pub(super) fn describe_all() {
    describe_counter!(
        HTTP_ERRORS,
        Unit::Count,
        "HTTP errors answered or connections ended by the edge, by side (client|backend|internal) and kind."
    );
    describe_counter!(
        HTTP_RESPONSES,
        Unit::Count,
        "HTTP responses sent to clients by status class (1xx..5xx)."
    );
    describe_counter!(
        BACKEND_CONNECTIONS,
        Unit::Count,
        "Backend connections opened per pool and mode (passthrough|assert)."
    );
    describe_counter!(
        AUTH_TOTAL,
        Unit::Count,
        "Authentication attempts by protocol, SPN service, result (ok|fail) and reason."
    );
    describe_counter!(NTLM_REJECTED, Unit::Count, "NTLM offers refused by policy.");
    describe_counter!(
        REPLAY_REJECTED,
        Unit::Count,
        "Authenticators refused as replays (KRB_AP_ERR_REPEAT)."
    );
    describe_gauge!(
        CONNECTIONS_ACTIVE,
        Unit::Count,
        "Open client connections per listener."
    );
    describe_gauge!(SESSIONS_ACTIVE, Unit::Count, "Open backend sessions per pool.");
    describe_counter!(
        BYTES_TOTAL,
        Unit::Bytes,
        "Bytes relayed per listener and direction."
    );
    describe_gauge!(
        BACKEND_UP,
        Unit::Count,
        "1 while a pool member passes its health checks, else 0."
    );
    describe_histogram!(
        BACKEND_CONNECT_DURATION,
        Unit::Seconds,
        "Time to open a TCP connection to a pool member."
    );
    describe_counter!(
        BACKEND_SELECTIONS,
        Unit::Count,
        "Sessions sent to each pool member."
    );
    describe_counter!(
        BACKEND_FAILOVERS,
        Unit::Count,
        "Backend connects that failed over to the next candidate member."
    );
    describe_counter!(
        BACKEND_HEALTH_TRANSITIONS,
        Unit::Count,
        "Health state changes of pool members (to = up|down)."
    );
    describe_counter!(
        BACKEND_EJECTIONS,
        Unit::Count,
        "Passive ejections of pool members after a failed connect."
    );
    describe_gauge!(
        KEYTAB_KVNO,
        Unit::Count,
        "Key version number of the latest and previous ASA credentials."
    );
    describe_counter!(
        KEYTAB_RELOADS,
        Unit::Count,
        "Keytab reloads by result (ok|rejected)."
    );
    describe_counter!(
        CONFIG_RELOADS,
        Unit::Count,
        "Configuration reloads (SIGHUP) by result (ok|rejected)."
    );
    describe_counter!(
        LIMIT_EXCEEDED,
        Unit::Count,
        "Requests or connections refused by a configured limit."
    );
    describe_gauge!(
        REPLAY_CACHE_ENTRIES,
        Unit::Count,
        "Live entries in the replay cache."
    );
    describe_counter!(
        REPLAY_CACHE_FULL,
        Unit::Count,
        "Authenticators refused because the replay cache was full."
    );
    describe_gauge!(
        TICKET_CACHE_ENTRIES,
        Unit::Count,
        "Service tickets kept opened for the next token around them."
    );
    describe_gauge!(
        TICKET_CACHE_BYTES,
        Unit::Bytes,
        "Bytes the kept tickets count against ticket_cache_bytes."
    );
    describe_counter!(
        TICKET_CACHE_LOOKUPS,
        Unit::Count,
        "Ticket-cache lookups by result (hit|miss)."
    );
    describe_counter!(
        REPLAY_STORE_CALLS,
        Unit::Count,
        "Calls to the shared replay store by result (fresh|replay|error|timeout)."
    );
    describe_histogram!(
        REPLAY_STORE_DURATION,
        Unit::Seconds,
        "Time of one call to the shared replay store."
    );
    describe_gauge!(
        REPLAY_STORE_UP,
        Unit::Count,
        "1 while a connection to the shared replay store is open, else 0."
    );
    describe_counter!(
        REPLAY_STORE_DEGRADED,
        Unit::Count,
        "Authentications without a shared-store verdict, by policy: closed (refused) or local (accepted on the local cache)."
    );
    describe_counter!(
        ACCESS_LOG_DROPPED,
        Unit::Count,
        "Access-log lines dropped because the writer's queue was full or a write failed."
    );
    describe_histogram!(
        RPC_BIND_DURATION,
        Unit::Seconds,
        "Time from accepting an RPC connection until its first bind is forwarded to a member."
    );
    describe_gauge!(
        BUILD_INFO,
        Unit::Count,
        "Always 1; the version label names the running kedge."
    );
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}
