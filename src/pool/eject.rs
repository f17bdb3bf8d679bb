//! Passive ejection: a member that refused a connect is left out for a back-off that doubles on
//! each further failure in a row, up to a cap. Pure: time comes in as `now`.

use std::time::{Duration, Instant};

/// The passive-ejection state of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ejection {
    strikes: u32,
    until: Option<Instant>,
}

impl Ejection {
    /// A connect failed at `now`: eject for `base · 2^(strikes−1)`, at most `max`. Returns the
    /// back-off chosen.
    pub fn fail(&mut self, now: Instant, base: Duration, max: Duration) -> Duration {
        self.strikes = self.strikes.saturating_add(1);
        let factor = 1u32.checked_shl(self.strikes - 1).unwrap_or(u32::MAX);
        let backoff = base.saturating_mul(factor).min(max);
        self.until = Some(now + backoff);
        backoff
    }

    /// A connect succeeded: the member is trusted again and the next failure starts at `base`.
    pub fn succeed(&mut self) {
        *self = Self::default();
    }

    /// An active health check passed: the ejection ends now, but the strike count stays so a
    /// member that keeps refusing connects is ejected for longer each time.
    pub fn lift(&mut self) {
        self.until = None;
    }

    /// Consecutive connect failures.
    pub fn strikes(&self) -> u32 {
        self.strikes
    }

    /// Whether the member is ejected at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| u > now)
    }

    /// When the current ejection ends, if one is in force at some time.
    pub fn until(&self) -> Option<Instant> {
        self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn back_off_doubles_on_repeated_failures_up_to_the_cap() {
        let now = Instant::now();
        let mut e = Ejection::default();
        let got: Vec<_> = (0..6).map(|_| e.fail(now, BASE, MAX).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
        for _ in 0..100 {
            e.fail(now, BASE, MAX);
        }
        assert_eq!(e.fail(now, BASE, MAX), MAX);
    }

    #[test]
    fn ejection_expires_by_itself() {
        let now = Instant::now();
        let mut e = Ejection::default();
        e.fail(now, BASE, MAX);
        assert!(e.is_ejected(now));
        assert!(e.is_ejected(now + Duration::from_millis(999)));
        assert!(!e.is_ejected(now + BASE));
    }

    #[test]
    fn success_resets_the_back_off() {
        let now = Instant::now();
        let mut e = Ejection::default();
        e.fail(now, BASE, MAX);
        e.fail(now, BASE, MAX);
        e.succeed();
        assert!(!e.is_ejected(now));
        assert_eq!(e.fail(now, BASE, MAX), BASE);
    }

    #[test]
    fn passing_health_check_lifts_the_ejection_but_keeps_the_strikes() {
        let now = Instant::now();
        let mut e = Ejection::default();
        e.fail(now, BASE, MAX);
        e.lift();
        assert!(!e.is_ejected(now));
        assert_eq!(e.fail(now, BASE, MAX), 2 * BASE);
    }
}
