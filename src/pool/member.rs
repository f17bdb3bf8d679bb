//! A pool member at run time: address, weight, health, ejection, drain flags and the count of
//! open sessions. The hot path reads only atomics; the mutexes are touched by health checks,
//! failed connects and the admin API.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use super::eject::Ejection;
use super::health_state::{HealthState, Transition};
use super::select::member_seed;
use crate::observe;

/// A member as one pool sees it (a CAS server listed in two pools is two `Member`s: each pool
/// checks its own port).
#[derive(Debug)]
pub struct Member {
    /// Member name (the key in `[members]`).
    pub name: String,
    /// Host name or address to connect to.
    pub host: String,
    /// Port for this pool's protocol.
    pub port: u16,
    pool: Arc<str>,
    label: Arc<str>,
    seed: u64,
    weight: AtomicU32,
    cfg_drain: AtomicBool,
    draining: AtomicBool,
    retiring: AtomicBool,
    healthy: AtomicBool,
    /// Nanoseconds after [`epoch`] until which the member is ejected; 0 = not ejected.
    ejected_until: AtomicU64,
    active: AtomicU64,
    /// Set by a failed connect, cleared by a successful one (so success takes no lock).
    suspect: AtomicBool,
    /// Set when the member accepted and then did not answer in time (response head, TLS
    /// handshake). Such an ejection is not lifted by what a hung member still does — accept a
    /// connect, pass a TCP health check — only by an answer (a response head in time, an HTTP
    /// health check) or by the end of its back-off.
    unanswered: AtomicBool,
    health: Mutex<HealthState>,
    eject: Mutex<Ejection>,
    last_error: Mutex<Option<String>>,
    pub(super) server_name: Option<ServerName<'static>>,
}

/// The instant member times are counted from (process-wide, so atomics can hold them).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Member {
    pub(super) fn new(
        pool: &Arc<str>,
        name: &str,
        host: &str,
        port: u16,
        weight: u32,
        drain: bool,
        server_name: Option<ServerName<'static>>,
    ) -> Self {
        let _ = epoch();
        let m = Self {
            name: name.into(),
            host: host.into(),
            port,
            pool: pool.clone(),
            label: Arc::from(name),
            seed: member_seed(name),
            weight: AtomicU32::new(weight),
            cfg_drain: AtomicBool::new(drain),
            draining: AtomicBool::new(drain),
            retiring: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0),
            active: AtomicU64::new(0),
            suspect: AtomicBool::new(false),
            unanswered: AtomicBool::new(false),
            health: Mutex::new(HealthState::new()),
            eject: Mutex::new(Ejection::default()),
            last_error: Mutex::new(None),
            server_name,
        };
        observe::backend_up(m.pool.clone(), m.label.clone(), true);
        m
    }

    /// The pool this member belongs to.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// Current weight (0 takes no new sessions).
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Sessions currently open to this member through this pool.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether the active health check considers the member up.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether the member is drained (by config or the admin API): no new sessions.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed) || self.is_retiring()
    }

    /// Whether the member was removed from the pool by a reload and lives on only until its
    /// last session ends.
    pub fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::Relaxed)
    }

    /// Whether passive ejection keeps the member out at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && until > nanos_since_epoch(now)
    }

    /// How long the current ejection still lasts.
    pub fn ejected_for(&self, now: Instant) -> Option<Duration> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        let now = nanos_since_epoch(now);
        (until > now).then(|| Duration::from_nanos(until - now))
    }

    /// Whether the member may take a new session at `now` (ignoring passive ejection, which only
    /// moves it to the back of the line).
    pub fn is_eligible(&self) -> bool {
        self.is_healthy() && !self.is_draining() && self.weight() > 0
    }

    /// A copy of the health counters.
    pub fn health(&self) -> HealthState {
        self.health.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Why the last health check or connect failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn seed(&self) -> u64 {
        self.seed
    }

    /// The member's name, shared (a cheap key for maps of per-member state).
    pub fn key(&self) -> &Arc<str> {
        &self.label
    }

    pub(super) fn label(&self) -> Arc<str> {
        self.label.clone()
    }

    pub(super) fn pool_label(&self) -> Arc<str> {
        self.pool.clone()
    }

    pub(super) fn set_draining(&self, drain: bool) {
        self.draining.store(drain, Ordering::Relaxed);
    }

    /// A reload kept this member: new weight, and the config's `drain` if it changed (a drain set
    /// through the admin API survives reloads that do not touch `drain`).
    pub(super) fn update(&self, weight: u32, cfg_drain: bool) {
        self.weight.store(weight, Ordering::Relaxed);
        if self.cfg_drain.swap(cfg_drain, Ordering::Relaxed) != cfg_drain {
            self.set_draining(cfg_drain);
        }
        self.retiring.store(false, Ordering::Relaxed);
    }

    pub(super) fn retire(&self) {
        self.retiring.store(true, Ordering::Relaxed);
    }

    pub(super) fn acquire(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn release(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    fn set_error(&self, err: Option<String>) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = err;
    }

    /// Applies one active-check result; logs and counts a change of health.
    /// `answers`: the check proves the member answers requests (an HTTP check), not only that it
    /// accepts connections (TCP): only such a check lifts an ejection for not answering.
    pub(super) fn record_check(&self, result: Result<(), String>, rise: u32, fall: u32, answers: bool) {
        let ok = result.is_ok();
        let transition = {
            let mut h = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            h.record(ok, rise, fall)
        };
        if ok && (answers || !self.unanswered.load(Ordering::Relaxed)) {
            let mut e = self.eject.lock().unwrap_or_else(PoisonError::into_inner);
            e.lift();
            self.ejected_until.store(0, Ordering::Relaxed);
            self.unanswered.store(false, Ordering::Relaxed);
        }
        match transition {
            Some(Transition::Up) => {
                self.healthy.store(true, Ordering::Relaxed);
                tracing::info!(pool = %self.pool, member = %self.name, "member is up");
            }
            Some(Transition::Down) => {
                self.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(pool = %self.pool, member = %self.name,
                    error = result.as_ref().err().map(String::as_str).unwrap_or(""), "member is down");
            }
            None => {}
        }
        if let Some(t) = transition {
            observe::backend_health_transition(self.pool.clone(), self.label.clone(), t == Transition::Up);
        }
        // Every round, not only on change: the gauge is right even if the recorder came late.
        observe::backend_up(self.pool.clone(), self.label.clone(), self.is_healthy());
        self.set_error(result.err());
    }

    /// A connect to the member failed at `now` (or it accepted and then did not answer in time):
    /// eject it for a growing back-off.
    pub(super) fn connect_failed(&self, now: Instant, err: String, base: Duration, max: Duration) {
        let (backoff, until) = {
            let mut e = self.eject.lock().unwrap_or_else(PoisonError::into_inner);
            let b = e.fail(now, base, max);
            (b, e.until().map(nanos_since_epoch).unwrap_or(0))
        };
        self.ejected_until.store(until, Ordering::Relaxed);
        self.suspect.store(true, Ordering::Relaxed);
        tracing::warn!(pool = %self.pool, member = %self.name, error = %err,
            backoff_ms = backoff.as_millis() as u64, "member failed; ejected");
        observe::backend_ejected(self.pool.clone(), self.label.clone());
        self.set_error(Some(err));
    }

    /// The member accepted a connection and then did not answer in time: ejected as by
    /// [`connect_failed`](Self::connect_failed), and kept out until it answers again or the
    /// back-off ends (a TCP check or a connect it still accepts does not lift it).
    pub(super) fn answer_failed(&self, now: Instant, err: String, base: Duration, max: Duration) {
        self.unanswered.store(true, Ordering::Relaxed);
        self.connect_failed(now, err, base, max);
    }

    /// The member answered a request in time: an ejection for not answering ends.
    pub fn answered(&self) {
        // Read first: every request of every worker comes here, and a swap would write the
        // member's cache line each time (moving it between the workers' cores) to store the
        // `false` it almost always holds.
        if self.unanswered.load(Ordering::Relaxed) && self.unanswered.swap(false, Ordering::Relaxed) {
            self.eject
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .succeed();
            self.suspect.store(false, Ordering::Relaxed);
            self.ejected_until.store(0, Ordering::Relaxed);
        }
    }

    /// A connect succeeded: forget past connect failures (but not a failure to answer: a hung
    /// member still accepts connects).
    pub(super) fn connect_succeeded(&self) {
        if self.unanswered.load(Ordering::Relaxed) {
            return;
        }
        if self.suspect.swap(false, Ordering::Relaxed) {
            self.eject
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .succeed();
            self.ejected_until.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(10);

    fn member() -> Member {
        Member::new(&Arc::from("cas"), "m3", "127.0.0.1", 443, 1, false, None)
    }

    #[test]
    fn a_member_that_accepts_and_never_answers_stays_ejected_through_tcp_checks_and_connects() {
        let m = member();
        let now = Instant::now();
        m.answer_failed(now, "no response head within 1500 ms".into(), BASE, BASE * 4);
        assert!(m.is_ejected(now));
        // What a hung member still does: accept a connect, pass a TCP health check.
        m.connect_succeeded();
        m.record_check(Ok(()), 2, 3, false);
        assert!(m.is_ejected(now), "a TCP check or a connect must not lift it");
        // An answer does.
        m.answered();
        assert!(!m.is_ejected(now));
    }

    #[test]
    fn an_http_check_lifts_an_ejection_for_not_answering() {
        let m = member();
        let now = Instant::now();
        m.answer_failed(now, "no response head".into(), BASE, BASE * 4);
        m.record_check(Ok(()), 2, 3, true);
        assert!(!m.is_ejected(now));
    }

    #[test]
    fn a_refused_connect_is_still_lifted_by_a_tcp_check_or_a_connect() {
        let m = member();
        let now = Instant::now();
        m.connect_failed(now, "connection refused".into(), BASE, BASE * 4);
        m.record_check(Ok(()), 2, 3, false);
        assert!(!m.is_ejected(now));
        m.connect_failed(now, "connection refused".into(), BASE, BASE * 4);
        m.connect_succeeded();
        assert!(!m.is_ejected(now));
    }
}
