//! The health state machine of one member (pingora/HAProxy style): `rise` consecutive passing
//! checks bring a down member up, `fall` consecutive failing checks take an up member down.
//! Pure: no I/O, no clock.

/// A change of health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The member became healthy.
    Up,
    /// The member became unhealthy.
    Down,
}

/// Consecutive-result counters and the current verdict.
///
/// A new member is presumed up so a fresh process serves at once; until its first check has
/// reported, a single failure takes it down (nothing vouches for it yet), after that `fall`
/// failures in a row are needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthState {
    up: bool,
    confirmed: bool,
    successes: u32,
    failures: u32,
}

impl Default for HealthState {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthState {
    /// A member not checked yet (presumed up).
    pub fn new() -> Self {
        Self {
            up: true,
            confirmed: false,
            successes: 0,
            failures: 0,
        }
    }

    /// Records one check result; returns the transition it caused, if any.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<Transition> {
        let first = !self.confirmed;
        self.confirmed = true;
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if !self.up && self.successes >= rise.max(1) {
                self.up = true;
                return Some(Transition::Up);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.up && (first || self.failures >= fall.max(1)) {
                self.up = false;
                return Some(Transition::Down);
            }
        }
        None
    }

    /// Whether the member is considered healthy.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Whether at least one check has reported.
    pub fn is_checked(&self) -> bool {
        self.confirmed
    }

    /// Consecutive passing checks.
    pub fn successes(&self) -> u32 {
        self.successes
    }

    /// Consecutive failing checks.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirmed_up() -> HealthState {
        let mut s = HealthState::new();
        assert_eq!(s.record(true, 2, 3), None);
        s
    }

    #[test]
    fn up_member_falls_after_fall_consecutive_failures() {
        let mut s = confirmed_up();
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), Some(Transition::Down));
        assert!(!s.is_up());
        assert_eq!(s.record(false, 2, 3), None);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut s = confirmed_up();
        s.record(false, 2, 3);
        s.record(false, 2, 3);
        s.record(true, 2, 3);
        s.record(false, 2, 3);
        assert_eq!(s.record(false, 2, 3), None);
        assert!(s.is_up());
    }

    #[test]
    fn down_member_rises_after_rise_consecutive_successes() {
        let mut s = confirmed_up();
        for _ in 0..3 {
            s.record(false, 2, 3);
        }
        assert_eq!(s.record(true, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), Some(Transition::Up));
        assert!(s.is_up());
    }

    #[test]
    fn unchecked_member_goes_down_on_its_first_failure() {
        let mut s = HealthState::new();
        assert!(s.is_up());
        assert_eq!(s.record(false, 2, 3), Some(Transition::Down));
    }
}
