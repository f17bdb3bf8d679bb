//! Metrics: one process-global Prometheus recorder, the name, help text and unit of every metric,
//! and small typed recording functions so the edges never spell a metric name themselves.
//!
//! Label sets are bounded by construction: listener, pool and member names come from the config,
//! protocol/service/result/reason from fixed vocabularies. A principal is never a label (logs name
//! principals; metrics do not).

pub mod access_log;
pub mod escape;
mod latency;
pub mod logging;
mod names;
mod record;
mod record_tls;
pub mod refusal_log;
mod striped;
pub use striped::{StripedCounter, StripedHistogram};
mod tally;

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use escape::escaped;
pub use latency::*;
pub use names::*;
pub use record::*;
pub use record_tls::*;
pub use tally::{tally, Counters, Tally};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets of `kedge_auth_duration_seconds`: a Kerberos validation takes 5–10 µs; a slow one
/// (big PAC, contended replay cache) up to a few ms; with a shared replay store, a LAN round
/// trip more.
pub const AUTH_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05,
];

/// Buckets of `kedge_backend_connect_duration_seconds`: LAN connects up to the connect timeout.
pub const CONNECT_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0,
];

/// Buckets of `kedge_replay_store_duration_seconds`: a LAN round trip to Redis takes 100 µs to
/// a few ms; the call timeout bounds it (200 ms by default, at most 10 s).
pub const REPLAY_STORE_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Buckets of the request and upstream latency histograms
/// (`kedge_http_request_duration_seconds`, `kedge_backend_response_duration_seconds`,
/// `kedge_rpc_bind_duration_seconds`): a LAN member answers in 1–100 ms, Exchange's long polls
/// (MAPI NotificationWait, EWS streaming) take minutes.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Installs the Prometheus recorder as the process's global `metrics` recorder (once; later
/// calls return the same handle) and describes every kedge metric.
///
/// Call it before building pools and listeners. If another recorder was installed first (a
/// test harness, an embedding program), kedge keeps its own registry for `/metrics` and logs a
/// warning: values recorded through the `metrics` macros then go to the other recorder.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(BACKEND_CONNECT_DURATION.into()), CONNECT_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(REPLAY_STORE_DURATION.into()), REPLAY_STORE_BUCKETS)
            })
            .and_then(|b| {
                // The HTTP request, backend response and token validation histograms are
                // striped (`striped.rs`) and rendered after the recorder's output.
                b.set_buckets_for_metric(Matcher::Full(RPC_BIND_DURATION.into()), LATENCY_BUCKETS)
            })
            .expect("bucket lists are non-empty")
            .build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %e, "a metrics recorder was already installed; /metrics shows only kedge's own");
        }
        names::describe_all();
        names::describe_tls_and_reloads();
        spawn_upkeep(handle.clone());
        handle
    })
}

/// The recorder's handle, installing it on first use (tests call this to render metrics).
pub fn handle() -> &'static PrometheusHandle {
    install()
}

/// The Prometheus text exposition of every metric, the process metrics collected now.
pub fn render() -> String {
    let handle = handle();
    names::process_collector().collect();
    striped::sync();
    let mut text = handle.render();
    striped::render_histograms(&mut text);
    text
}

/// Histograms keep raw samples until drained; without a scrape they would grow forever, so a
/// small thread drains them on a timer whether or not the admin listener runs.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("kedge-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the metrics upkeep thread");
    }
}
