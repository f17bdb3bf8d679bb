//! Counters and histograms that every request writes, striped by thread.
//!
//! The `metrics` handles are one shared atomic per series (a histogram is a shared lock-free
//! list of samples, drained every few seconds): two worker threads recording into the same
//! series move its cache line between their cores on every request. Measured on the HTTP edge
//! (2 workers, one token per connection), the request histograms and response counters cost
//! about 1 µs of kedge's 15 µs per request. Here each thread writes a stripe of its own (a
//! cache-line-aligned block no other thread normally touches), and a scrape adds the stripes up.
//!
//! Counters keep their `metrics` handle for the exposition: a scrape sets it to the stripes'
//! sum ([`sync`]). Histograms are rendered here ([`render_histograms`]), in the Prometheus text
//! format, after the recorder's own output; their names are not registered with the recorder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::stripes::{this_thread as stripe, Padded, STRIPES};

/// Buckets a striped histogram can have (bounds, `+Inf` excluded).
pub const MAX_BOUNDS: usize = 23;

/// A counter whose threads add to stripes of their own (each alone on its cache lines).
#[derive(Debug)]
pub struct StripedCounter([Padded<AtomicU64>; STRIPES]);

impl StripedCounter {
    /// Zero.
    pub const fn new() -> Self {
        Self([const { Padded(AtomicU64::new(0)) }; STRIPES])
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0[stripe()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The total so far.
    pub fn sum(&self) -> u64 {
        self.0
            .iter()
            .fold(0u64, |t, s| t.wrapping_add(s.0.load(Ordering::Relaxed)))
    }
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self::new()
    }
}

/// One stripe of a histogram: a count per bucket (not cumulative; the last is `+Inf`) and the
/// sum in nanoseconds. The number of samples is the buckets' total.
#[derive(Debug)]
struct HistogramStripe {
    buckets: [AtomicU64; MAX_BOUNDS + 1],
    sum_nanos: AtomicU64,
}

impl HistogramStripe {
    const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; MAX_BOUNDS + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// A histogram of seconds over fixed bucket bounds, striped by thread.
#[derive(Debug)]
pub struct StripedHistogram {
    bounds: &'static [f64],
    /// Each stripe alone on its cache lines.
    stripes: Box<[Padded<HistogramStripe>; STRIPES]>,
}

/// What a histogram holds at one moment: cumulative bucket counts (one per bound, then
/// `+Inf`), the sum of the samples in seconds and their number.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// Samples at or below each bound, and in total (`+Inf`) last.
    pub cumulative: Vec<u64>,
    /// Sum of the samples, seconds.
    pub sum: f64,
    /// Number of samples.
    pub count: u64,
}

impl StripedHistogram {
    /// An empty histogram over `bounds` (ascending, at most `MAX_BOUNDS`, 23).
    pub fn new(bounds: &'static [f64]) -> Self {
        assert!(bounds.len() <= MAX_BOUNDS, "at most {MAX_BOUNDS} bucket bounds");
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bucket bounds ascend");
        Self {
            bounds,
            stripes: Box::new([const { Padded(HistogramStripe::new()) }; STRIPES]),
        }
    }

    /// Records one sample of `seconds` (negative and NaN count as 0).
    pub fn record(&self, seconds: f64) {
        let secs = if seconds.is_nan() { 0.0 } else { seconds.max(0.0) };
        let bucket = self.bounds.partition_point(|b| *b < secs);
        let s = &self.stripes[stripe()];
        s.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-int: a sample of centuries does not wrap the sum.
        s.sum_nanos
            .fetch_add((secs * 1e9).round() as u64, Ordering::Relaxed);
    }

    /// The stripes added up. Taken while threads record, the sum may lag or lead the buckets
    /// by the samples recorded meanwhile; the count is the buckets' total, so `_count` always
    /// equals the `+Inf` bucket.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut per_bucket = vec![0u64; self.bounds.len() + 1];
        let mut nanos = 0u64;
        for s in self.stripes.iter() {
            for (t, b) in per_bucket.iter_mut().zip(&s.buckets) {
                *t = t.wrapping_add(b.load(Ordering::Relaxed));
            }
            nanos = nanos.wrapping_add(s.sum_nanos.load(Ordering::Relaxed));
        }
        let mut running = 0u64;
        let cumulative = per_bucket
            .iter()
            .map(|n| {
                running = running.wrapping_add(*n);
                running
            })
            .collect::<Vec<_>>();
        let total = *cumulative.last().unwrap_or(&0);
        HistogramSnapshot {
            cumulative,
            sum: nanos as f64 / 1e9,
            count: total,
        }
    }
}

/// A series' name and labels, in the order they are written.
type SeriesKey = (&'static str, Vec<(&'static str, String)>);

/// Every striped series of the process, by name and labels: asking twice for one series gives
/// the same stripes (as the `metrics` registry gives the same handle).
#[derive(Default)]
struct Registry {
    counters: BTreeMap<SeriesKey, (Arc<StripedCounter>, metrics::Counter)>,
    histograms: BTreeMap<SeriesKey, Arc<StripedHistogram>>,
    help: BTreeMap<&'static str, &'static str>,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The striped counter of series `name{labels}`, exposed through the recorder's counter of the
/// same series (set to the stripes' sum at each scrape).
pub fn counter(name: &'static str, labels: &[(&'static str, &str)]) -> Arc<StripedCounter> {
    let key = series_key(name, labels);
    let mut r = registry();
    if let Some((c, _)) = r.counters.get(&key) {
        return c.clone();
    }
    let owned: Vec<metrics::Label> = key
        .1
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, v.clone()))
        .collect();
    let handle = metrics::counter!(name, owned);
    let c = Arc::new(StripedCounter::new());
    r.counters.insert(key, (c.clone(), handle));
    c
}

/// The striped histogram of series `name{labels}` over `bounds`; `help` is the family's
/// `# HELP` text.
pub fn histogram(
    name: &'static str,
    help: &'static str,
    labels: &[(&'static str, &str)],
    bounds: &'static [f64],
) -> Arc<StripedHistogram> {
    let key = series_key(name, labels);
    let mut r = registry();
    r.help.insert(name, help);
    r.histograms
        .entry(key)
        .or_insert_with(|| Arc::new(StripedHistogram::new(bounds)))
        .clone()
}

fn series_key(name: &'static str, labels: &[(&'static str, &str)]) -> SeriesKey {
    (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
}

/// The sum of every striped counter of family `name` whose label `key` is `value` (the
/// `/status` totals across listeners; a lock and a walk of the registry, so not per request).
pub fn family_sum(name: &'static str, (key, value): (&str, &str)) -> u64 {
    registry()
        .counters
        .iter()
        .filter(|((n, labels), _)| *n == name && labels.iter().any(|(k, v)| *k == key && v == value))
        .map(|(_, (c, _))| c.sum())
        .fold(0u64, u64::wrapping_add)
}

/// Sets every striped counter's recorder handle to the stripes' sum (before a render).
pub fn sync() {
    for (c, handle) in registry().counters.values() {
        handle.absolute(c.sum());
    }
}

/// Appends every striped histogram to `out` in the Prometheus text format (0.0.4).
pub fn render_histograms(out: &mut String) {
    let r = registry();
    let mut family = None;
    for ((name, labels), h) in &r.histograms {
        if family != Some(*name) {
            family = Some(*name);
            let help = r.help.get(name).copied().unwrap_or("");
            let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
            let _ = writeln!(out, "# TYPE {name} histogram");
        }
        let snap = h.snapshot();
        let mut base = String::new();
        for (k, v) in labels {
            let _ = write!(base, "{k}=\"{}\",", escape_label(v));
        }
        for (bound, n) in h.bounds.iter().zip(&snap.cumulative) {
            let _ = writeln!(out, "{name}_bucket{{{base}le=\"{bound}\"}} {n}");
        }
        let total = snap.cumulative.last().copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{base}le=\"+Inf\"}} {total}");
        let plain = match base.trim_end_matches(',') {
            "" => String::new(),
            l => format!("{{{l}}}"),
        };
        let _ = writeln!(out, "{name}_sum{plain} {}", snap.sum);
        let _ = writeln!(out, "{name}_count{plain} {}", snap.count);
    }
}

/// A label value as the text format needs it: `\`, `"` and line feeds escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// HELP text: `\` and line feeds escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

#[cfg(test)]
#[path = "striped_tests.rs"]
mod tests;
