//! Recording functions for TLS certificates (reloads, expiry, handshake failures) and for the
//! last-reload times of the config, keytab and certificates.

use std::time::SystemTime;

use metrics::{counter, gauge, Gauge};

use super::names::*;

/// What was (re)loaded, for `kedge_last_reload_timestamp_seconds{what}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The configuration file (at start, and each applied SIGHUP).
    Config,
    /// The ASA keytab.
    Keytab,
    /// A listener's TLS certificates.
    Tls,
}

impl Reloaded {
    fn label(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Keytab => "keytab",
            Self::Tls => "tls",
        }
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `what` was loaded successfully at `now`.
pub fn reloaded(what: Reloaded, now: SystemTime) {
    gauge!(LAST_RELOAD, "what" => what.label()).set(unix(now));
}

/// A TLS reload of `listener` that found new files was installed (`true`) or refused.
pub fn tls_reload(listener: &str, ok: bool) {
    counter!(TLS_RELOADS, "listener" => listener.to_owned(), "result" => if ok { "ok" } else { "rejected" })
        .increment(1);
}

/// Makes both `kedge_tls_reloads_total` series of `listener` exist (at 0) from its start, so
/// `increase()` sees the first reload.
pub fn tls_reloads_known(listener: &str) {
    for result in ["ok", "rejected"] {
        counter!(TLS_RELOADS, "listener" => listener.to_owned(), "result" => result).increment(0);
    }
}

/// The certificate `name` served on `listener` expires at `not_after` (unix seconds).
pub fn tls_certificate_expiry(listener: &str, name: &str, not_after: i64) {
    certificate_expiry(listener, name).set(not_after as f64);
}

/// The certificate `name` is no longer served on `listener`: its expiry reads NaN (the
/// exporter cannot drop one series), which no threshold matches.
pub fn tls_certificate_retired(listener: &str, name: &str) {
    certificate_expiry(listener, name).set(f64::NAN);
}

/// The expiry gauge of certificate `name` on `listener`.
fn certificate_expiry(listener: &str, name: &str) -> Gauge {
    gauge!(TLS_CERTIFICATE_EXPIRY, "listener" => listener.to_owned(), "name" => name.to_owned())
}

/// A TLS handshake on `listener` failed; `reason` is a
/// [`crate::edge::http::tls::HandshakeFailure`] label.
pub fn tls_handshake_failed(listener: &str, reason: &'static str) {
    counter!(TLS_HANDSHAKE_FAILURES, "listener" => listener.to_owned(), "reason" => reason).increment(1);
}
