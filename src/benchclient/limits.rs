//! When a run stops: after a duration, after a number of requests (binds), and in any case at a
//! hard cap on wall time, so no run is unbounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::BenchError;

/// Default hard cap on a run's wall time.
pub const DEFAULT_MAX_TIME: Duration = Duration::from_secs(600);

/// How long and how much a run may do.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Stop starting requests after this long.
    pub duration: Option<Duration>,
    /// Stop after this many requests in all (each connection takes them from one budget).
    pub count: Option<u64>,
    /// Hard cap on the measured phase, whatever the above say.
    pub max_time: Duration,
    /// Paced load: start requests at this many per second in all, at fixed intervals (open
    /// loop, as wrk2), instead of as fast as the connections allow.
    pub rate: Option<f64>,
}

impl Limits {
    /// Checks that at least one bound is set and the cap is positive.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.duration.is_none() && self.count.is_none() {
            return Err(BenchError::Invalid("give --duration or a request count".into()));
        }
        if self.max_time.is_zero() {
            return Err(BenchError::Invalid("--max-time must be positive".into()));
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(BenchError::Invalid(format!(
                    "--rate {r}: must be a positive number of requests per second"
                )));
            }
        }
        Ok(())
    }

    /// The deadline of a run started at `start`.
    pub fn deadline(&self, start: Instant) -> Instant {
        let d = self.duration.map_or(self.max_time, |d| d.min(self.max_time));
        start + d
    }
}

/// The shared budget of a running load: every request asks it first.
pub struct Budget {
    limits: Limits,
    start: Instant,
    deadline: Instant,
    taken: AtomicU64,
    slots: AtomicU64,
}

impl Budget {
    /// A budget for a run starting now.
    pub fn start(limits: Limits, start: Instant) -> Self {
        Self {
            limits,
            start,
            deadline: limits.deadline(start),
            taken: AtomicU64::new(0),
            slots: AtomicU64::new(0),
        }
    }

    /// Claims one request; `false` once the count or the time is used up.
    pub fn take(&self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        match self.limits.count {
            Some(n) => self.taken.fetch_add(1, Ordering::Relaxed) < n,
            None => true,
        }
    }

    /// With `rate`, when the next request is due: slot n of the run starts at n / rate seconds.
    pub fn next_slot(&self) -> Option<Instant> {
        let rate = self.limits.rate?;
        let n = self.slots.fetch_add(1, Ordering::Relaxed);
        Some(self.start + Duration::from_secs_f64(n as f64 / rate))
    }

    /// Waits for the next slot of a paced run and returns the time latency counts from; without
    /// a rate, returns now. When the slot has already passed (this connection's previous request
    /// came back late), latency counts from the slot, so a stalled server is charged for every
    /// request it delayed (no coordinated omission); when the client sleeps for the slot, it
    /// counts from the wakeup, so the timer's millisecond granularity is not charged to the server.
    pub async fn pace(&self) -> Instant {
        match self.next_slot() {
            Some(at) if at > Instant::now() => {
                tokio::time::sleep_until(at.into()).await;
                Instant::now()
            }
            Some(at) => at,
            None => Instant::now(),
        }
    }

    /// The run's deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `1.5s` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, BenchError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| BenchError::Duration(s.into()))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" | "µs" => n / 1_000_000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(BenchError::Duration(s.into())),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(BenchError::Duration(s.into()));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn budget_stops_at_the_count() {
        let limits = Limits {
            duration: None,
            count: Some(3),
            max_time: Duration::from_secs(60),
            rate: None,
        };
        let b = Budget::start(limits, Instant::now());
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
        assert_eq!(b.next_slot(), None, "unpaced");
    }

    #[test]
    fn paced_slots_are_evenly_spaced_from_the_start() {
        let start = Instant::now();
        let limits = Limits {
            duration: Some(Duration::from_secs(1)),
            count: None,
            max_time: Duration::from_secs(60),
            rate: Some(4.0),
        };
        limits.validate().unwrap();
        let b = Budget::start(limits, start);
        let slots: Vec<Duration> = (0..5).map(|_| b.next_slot().unwrap() - start).collect();
        assert_eq!(slots, [0, 250, 500, 750, 1000].map(Duration::from_millis));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let l = Limits {
                rate: Some(bad),
                ..limits
            };
            assert!(l.validate().is_err(), "rate {bad}");
        }
    }

    #[tokio::test]
    async fn pace_waits_for_the_slot_and_reports_it() {
        let start = Instant::now();
        let limits = Limits {
            duration: Some(Duration::from_secs(10)),
            count: None,
            max_time: Duration::from_secs(60),
            rate: Some(100.0),
        };
        let b = Budget::start(limits, start);
        // Slot 0 has passed: latency counts from it.
        assert_eq!(b.pace().await, start);
        // Slot 1 (10 ms) is ahead: the client sleeps and counts from its wakeup.
        let second = b.pace().await;
        assert!(
            second - start >= Duration::from_millis(10),
            "slept until the slot"
        );
        // Far behind schedule: the missed slots count from when they were due.
        let (_, _) = (b.next_slot(), b.next_slot());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(b.pace().await - start, Duration::from_millis(40));
    }
}
