//! Time conversions between `SystemTime` (what callers pass in) and Kerberos times (RFC 4120 §5.2.3,
//! GeneralizedTime with one-second resolution plus `cusec` microseconds).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rasn_kerberos::KerberosTime;

/// Seconds since the Unix epoch (negative before 1970).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A KerberosTime as Unix seconds.
pub fn krb_secs(t: &KerberosTime) -> i64 {
    t.0.timestamp()
}

/// A KerberosTime for Unix seconds (UTC, `Z` form as DER requires).
pub fn krb_time(secs: i64) -> KerberosTime {
    let dt = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    KerberosTime(dt.fixed_offset())
}

/// `SystemTime` for Unix seconds.
pub fn system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kerberos_time_round_trips_unix_seconds() {
        let t = krb_time(1_764_000_000);
        assert_eq!(krb_secs(&t), 1_764_000_000);
        assert_eq!(unix_secs(system_time(1_764_000_000)), 1_764_000_000);
    }
}
