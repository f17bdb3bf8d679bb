//! What a run measured: per-worker tallies (merged at the end, so the hot path shares nothing),
//! HdrHistogram latencies, failures by kind, and the [`Report`] printed as text or JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::feed::FeedStats;

/// Highest latency the histograms track (longer ones are clamped): one minute, in µs.
const MAX_LATENCY_US: u64 = 60_000_000;

/// One worker's tallies.
pub struct Tally {
    /// Latency of every completed exchange (response or reply PDU received), µs.
    pub latency: Histogram<u64>,
    /// Exchanges that ended as expected (expected status, bind_ack accepted).
    pub ok: u64,
    /// Exchanges that completed (any response or reply).
    pub completed: u64,
    /// Completed exchanges by outcome (`200`, `401`, `bind_ack`, `bind_nak reason 2`, …).
    pub outcomes: BTreeMap<String, u64>,
    /// Failures by kind (`status 401`, `connect`, `tls`, `timeout`, `closed`, `mutual`, …).
    pub errors: BTreeMap<String, u64>,
    /// Connections opened.
    pub connects: u64,
    /// Tokens sent.
    pub tokens_sent: u64,
    /// AP-REPs checked and found good.
    pub mutual_ok: u64,
    /// The first message seen for each failure kind that has one.
    pub first_errors: BTreeMap<String, String>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static histogram bounds are valid"),
            ok: 0,
            completed: 0,
            outcomes: BTreeMap::new(),
            errors: BTreeMap::new(),
            connects: 0,
            tokens_sent: 0,
            mutual_ok: 0,
            first_errors: BTreeMap::new(),
        }
    }

    /// Records a completed exchange that took `d`, with its outcome.
    pub fn completed(&mut self, d: Duration, outcome: &str, ok: bool) {
        let us = (d.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let _ = self.latency.record(us);
        self.completed += 1;
        if ok {
            self.ok += 1;
        }
        bump(&mut self.outcomes, outcome);
    }

    /// Counts a failure of `kind`.
    pub fn error(&mut self, kind: &str) {
        bump(&mut self.errors, kind);
    }

    /// Counts a failure of `kind`, keeping the first `detail` seen for it.
    pub fn error_with(&mut self, kind: &str, detail: impl std::fmt::Display) {
        bump(&mut self.errors, kind);
        if !self.first_errors.contains_key(kind) {
            self.first_errors.insert(kind.to_owned(), detail.to_string());
        }
    }

    /// Adds another worker's tally into this one.
    pub fn merge(&mut self, other: &Tally) {
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        self.completed += other.completed;
        for (k, v) in &other.outcomes {
            *self.outcomes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.connects += other.connects;
        self.tokens_sent += other.tokens_sent;
        self.mutual_ok += other.mutual_ok;
        for (k, v) in &other.first_errors {
            self.first_errors.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(v) => *v += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

/// Latency percentiles, µs.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Percentiles of `h` (µs).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// `http` or `rpc`.
    pub kind: &'static str,
    /// URL or address driven.
    pub target: String,
    /// Auth mode (`fresh-token`, `per-connection`, `none`, `auth16`, `auth9`).
    pub mode: String,
    /// Concurrent connections (workers).
    pub connections: usize,
    /// Measured wall time, seconds.
    pub elapsed_s: f64,
    /// Completed exchanges (a response or reply PDU received).
    pub completed: u64,
    /// Exchanges with the expected outcome.
    pub ok: u64,
    /// All failures (unexpected outcomes plus exchanges that never completed).
    pub errors: u64,
    /// Failures by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first message seen for failure kinds that carry one (TLS, connect, HTTP errors).
    pub first_errors: BTreeMap<String, String>,
    /// Completed exchanges by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Completed exchanges per second.
    pub throughput: f64,
    /// Expected-outcome exchanges per second.
    pub ok_throughput: f64,
    /// Latency of completed exchanges, µs.
    pub latency_us: Latency,
    /// Connections opened.
    pub connects: u64,
    /// Tokens sent.
    pub tokens_sent: u64,
    /// AP-REPs verified (with `--mutual`).
    pub mutual_verified: u64,
    /// Token feed counters.
    pub mint: Option<FeedStats>,
    /// `/proc/loadavg` when the run started and ended (1, 5, 15 min).
    pub loadavg_start: Option<String>,
    /// See `loadavg_start`.
    pub loadavg_end: Option<String>,
    /// The paced rate (`--rate`), when the run was paced; latency then counts from each
    /// request's scheduled time.
    pub paced_rate: Option<f64>,
}

/// The first three fields of `/proc/loadavg`, where there is one.
pub fn loadavg() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

impl Report {
    /// Builds the report from the merged tally.
    pub fn new(
        kind: &'static str,
        target: String,
        mode: String,
        connections: usize,
        elapsed: Duration,
        tally: &Tally,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let errors = tally.errors.values().sum();
        Self {
            kind,
            target,
            mode,
            connections,
            elapsed_s: elapsed.as_secs_f64(),
            completed: tally.completed,
            ok: tally.ok,
            errors,
            errors_by_kind: tally.errors.clone(),
            first_errors: tally.first_errors.clone(),
            outcomes: tally.outcomes.clone(),
            throughput: tally.completed as f64 / secs,
            ok_throughput: tally.ok as f64 / secs,
            latency_us: Latency::of(&tally.latency),
            connects: tally.connects,
            tokens_sent: tally.tokens_sent,
            mutual_verified: tally.mutual_ok,
            mint: None,
            loadavg_start: None,
            loadavg_end: None,
            paced_rate: None,
        }
    }
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

fn join(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.kind == "rpc" { "binds" } else { "req" };
        writeln!(
            f,
            "kedge-bench {} {}  mode {}, {} connections, {:.2} s",
            self.kind, self.target, self.mode, self.connections, self.elapsed_s
        )?;
        writeln!(
            f,
            "  completed    {} (ok {}, errors {})",
            self.completed, self.ok, self.errors
        )?;
        writeln!(
            f,
            "  throughput   {:.0} {unit}/s (ok {:.0} {unit}/s){}",
            self.throughput,
            self.ok_throughput,
            self.paced_rate
                .map(|r| format!(", paced at {r:.0}/s (a late request counts from its scheduled start)"))
                .unwrap_or_default()
        )?;
        let l = &self.latency_us;
        writeln!(
            f,
            "  latency      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {:.3} ms)",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            l.mean / 1000.0
        )?;
        writeln!(f, "  outcomes     {}", join(&self.outcomes))?;
        if !self.errors_by_kind.is_empty() {
            writeln!(f, "  errors       {}", join(&self.errors_by_kind))?;
        }
        for (kind, msg) in &self.first_errors {
            writeln!(f, "  first error  {kind}: {msg}")?;
        }
        writeln!(
            f,
            "  connections  {} opened; tokens sent {}{}",
            self.connects,
            self.tokens_sent,
            if self.mutual_verified > 0 {
                format!("; AP-REPs verified {}", self.mutual_verified)
            } else {
                String::new()
            }
        )?;
        if let Some(m) = &self.mint {
            writeln!(
                f,
                "  minting      {} thread(s): {} background, {} inline, {} stale",
                m.threads, m.minted_background, m.minted_inline, m.dropped_stale
            )?;
        }
        if let (Some(a), Some(b)) = (&self.loadavg_start, &self.loadavg_end) {
            writeln!(f, "  load average {a} (start) → {b} (end)")?;
        }
        Ok(())
    }
}
