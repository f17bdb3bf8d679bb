//! Refusals summarized by rate: a flood of junk must not flood the journal.
//!
//! Every refusal on an edge (a 401, a `bind_nak`, a connection over a limit) is logged at INFO
//! or WARN with a `reason` field. Per call site and reason, the first `burst` events of each
//! interval are logged in full; the rest are counted, and when the interval ends one summary
//! line per (site, reason) says how many were left out:
//! `KRB_AP_ERR_MODIFIED: 4211 more in the last 60 s`.
//!
//! It works as a [`Layer`] whose `event_enabled` drops the suppressed events before any
//! formatting, so the edges log as they always did and need not know about it; a small thread
//! ends each interval and writes the summaries.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::escape::escaped;

/// Events of these targets with a `reason` field are refusals.
const EDGE_TARGET: &str = "kedge::edge::";
/// Distinct (site, reason) pairs tracked per interval; beyond this, events pass unsummarized
/// (reasons are fixed vocabularies, so this is never reached in practice).
const MAX_KEYS: usize = 1024;

/// One (call site, reason) pair's count in the current interval.
#[derive(Debug)]
struct Slot {
    target: &'static str,
    level: Level,
    logged: u32,
    suppressed: u64,
}

/// What was left out of one interval for one call site and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Module of the call site (`kedge::edge::http::handler`).
    pub target: &'static str,
    /// Level the refusals were logged at.
    pub level: Level,
    /// The refusal reason.
    pub reason: String,
    /// Events counted but not logged.
    pub suppressed: u64,
}

/// The counts: which events of the current interval pass, and what the interval left out.
/// Pure bookkeeping; the interval is ended by whoever calls [`RefusalLimiter::end_interval`].
#[derive(Debug)]
pub struct RefusalLimiter {
    burst: u32,
    slots: Mutex<HashMap<(&'static str, String), Slot>>,
}

impl RefusalLimiter {
    /// Lets `burst` events per (site, reason) through per interval.
    pub fn new(burst: u32) -> Self {
        Self {
            burst,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an event of call site `site` (unique per site, as `Metadata::name` is) with
    /// `reason` is logged in full (`false`: counted for the summary).
    pub fn admit(&self, site: &'static str, target: &'static str, level: Level, reason: &str) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let key = (site, reason.to_owned());
        if slots.len() >= MAX_KEYS && !slots.contains_key(&key) {
            return true;
        }
        let slot = slots.entry(key).or_insert_with(|| Slot {
            target,
            level,
            logged: 0,
            suppressed: 0,
        });
        if slot.logged < self.burst {
            slot.logged += 1;
            true
        } else {
            slot.suppressed += 1;
            false
        }
    }

    /// Ends the interval: what it left out, per site and reason, and a fresh start for all.
    pub fn end_interval(&self) -> Vec<Summary> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Summary> = slots
            .drain()
            .filter(|(_, s)| s.suppressed > 0)
            .map(|((_, reason), s)| Summary {
                target: s.target,
                level: s.level,
                reason,
                suppressed: s.suppressed,
            })
            .collect();
        out.sort_by(|a, b| (a.target, &a.reason).cmp(&(b.target, &b.reason)));
        out
    }
}

/// The layer: drops refusals over the burst, and (through a thread it starts) writes the
/// summaries each interval.
pub struct RefusalSummaries {
    limiter: Arc<RefusalLimiter>,
}

impl RefusalSummaries {
    /// `burst` full lines per (site, reason) per `interval`, then a summary. The summary thread
    /// stops once the layer (and so the subscriber holding it) is dropped.
    pub fn new(interval: Duration, burst: u32) -> Self {
        let limiter = Arc::new(RefusalLimiter::new(burst));
        let weak = Arc::downgrade(&limiter);
        let spawned = std::thread::Builder::new()
            .name("kedge-log-summary".into())
            .spawn(move || summarize_every(weak, interval.max(Duration::from_millis(100))));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the refusal summary thread");
        }
        Self { limiter }
    }
}

fn summarize_every(limiter: Weak<RefusalLimiter>, interval: Duration) {
    let secs = interval.as_secs_f64();
    loop {
        std::thread::sleep(interval);
        let Some(l) = limiter.upgrade() else { return };
        for s in l.end_interval() {
            let reason = escaped(&s.reason);
            macro_rules! summary {
                ($lvl:expr) => {
                    tracing::event!(
                        $lvl,
                        reason = s.reason.as_str(),
                        source = s.target,
                        suppressed = s.suppressed,
                        interval_secs = secs,
                        "{reason}: {} more in the last {secs} s",
                        s.suppressed
                    )
                };
            }
            if s.level == Level::WARN {
                summary!(Level::WARN)
            } else {
                summary!(Level::INFO)
            }
        }
    }
}

/// Whether events of this call site are refusals to summarize.
fn is_refusal_site(meta: &Metadata<'_>) -> bool {
    matches!(*meta.level(), Level::INFO | Level::WARN)
        && meta.target().starts_with(EDGE_TARGET)
        && meta.fields().field("reason").is_some()
}

/// Picks the `reason` field out of an event.
#[derive(Default)]
struct ReasonOf(Option<String>);

impl Visit for ReasonOf {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "reason" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "reason" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: Subscriber> Layer<S> for RefusalSummaries {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if !is_refusal_site(meta) {
            return true;
        }
        let mut reason = ReasonOf::default();
        event.record(&mut reason);
        match reason.0 {
            Some(r) => self.limiter.admit(meta.name(), meta.target(), *meta.level(), &r),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "kedge::edge::test";

    #[test]
    fn the_first_burst_per_reason_passes_then_the_rest_is_counted() {
        let l = RefusalLimiter::new(3);
        let passed = (0..10)
            .filter(|_| l.admit("a", T, Level::INFO, "KRB_AP_ERR_MODIFIED"))
            .count();
        assert_eq!(passed, 3);
        assert!(
            l.admit("a", T, Level::INFO, "bad_base64"),
            "another reason has its own burst"
        );
        assert!(
            l.admit("b", T, Level::INFO, "KRB_AP_ERR_MODIFIED"),
            "another site too"
        );
        let s = l.end_interval();
        assert_eq!(
            s,
            vec![Summary {
                target: T,
                level: Level::INFO,
                reason: "KRB_AP_ERR_MODIFIED".into(),
                suppressed: 7
            }]
        );
    }

    #[test]
    fn a_new_interval_starts_with_a_full_burst_and_nothing_to_report() {
        let l = RefusalLimiter::new(1);
        assert!(l.admit("a", T, Level::INFO, "r"));
        assert!(!l.admit("a", T, Level::INFO, "r"));
        assert_eq!(l.end_interval().len(), 1);
        assert!(l.admit("a", T, Level::INFO, "r"));
        assert!(
            l.end_interval().is_empty(),
            "nothing left out in the second interval"
        );
    }

    #[test]
    fn a_zero_burst_logs_summaries_only() {
        let l = RefusalLimiter::new(0);
        assert!(!l.admit("a", T, Level::WARN, "r"));
        assert_eq!(l.end_interval()[0].suppressed, 1);
    }
}
