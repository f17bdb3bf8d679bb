//! Shared pieces of the HTTP edge tests (`tests/http_*.rs`): a scripted validator, a recording
//! backend, kedge on `127.0.0.1:0`, a keep-alive client and a test CA.
#![allow(dead_code)]

pub mod backend;
pub mod client;
pub mod fake;
pub mod kedge;
pub mod pki;
pub mod raw_member;

use std::time::Duration;

/// Upper bound for anything a test waits on (never a speed assertion, only a hang guard).
pub const BOUND: Duration = Duration::from_secs(20);

/// Runs `fut` within [`BOUND`] or fails the test.
pub async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still waiting after {BOUND:?}"),
    }
}

/// VmRSS of this process, KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
