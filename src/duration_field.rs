//! Durations in the configuration: every `…_ms` and `…_secs` field takes a number in its unit,
//! as always, or a human-readable string (`"5s"`, `"20m"`, `"1h 30m"`, `"250ms"`; humantime's
//! syntax). A string that is not a whole number of the field's unit is refused with the field's
//! path and line (`"1500ms"` for a `…_secs` field), never rounded silently.
//!
//! Use with `#[serde(deserialize_with = "crate::duration_field::millis")]` or `…::secs`.

use std::time::Duration;

use serde::de::{Deserializer, Error};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Number(u64),
    Text(String),
}

fn parse<'de, D: Deserializer<'de>>(d: D, unit: Duration, unit_name: &str) -> Result<u64, D::Error> {
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(s) => {
            let dur = humantime::parse_duration(s.trim()).map_err(|e| {
                D::Error::custom(format!("{s:?} is not a duration ({e}); e.g. \"5s\", \"20m\""))
            })?;
            let units = dur.as_nanos() / unit.as_nanos();
            if dur.as_nanos() % unit.as_nanos() != 0 {
                return Err(D::Error::custom(format!(
                    "{s:?} is not a whole number of {unit_name}"
                )));
            }
            u64::try_from(units).map_err(|_| D::Error::custom(format!("{s:?} is too long")))
        }
    }
}

/// A duration field in milliseconds: `250`, or `"250ms"`, `"5s"`, `"2m"`.
pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    parse(d, Duration::from_millis(1), "milliseconds")
}

/// A duration field in seconds: `1200`, or `"20m"`, `"2h"`, `"7days"`.
pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    parse(d, Duration::from_secs(1), "seconds")
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "super::millis")]
        timeout_ms: u64,
        #[serde(deserialize_with = "super::secs")]
        idle_secs: u64,
    }

    fn load(text: &str) -> Result<T, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_keep_their_unit_and_strings_are_converted() {
        let t = load("timeout_ms = 250\nidle_secs = 1200\n").unwrap();
        assert_eq!((t.timeout_ms, t.idle_secs), (250, 1200));
        let t = load("timeout_ms = \"5s\"\nidle_secs = \"20m\"\n").unwrap();
        assert_eq!((t.timeout_ms, t.idle_secs), (5_000, 1_200));
        let t = load("timeout_ms = \"1m 500ms\"\nidle_secs = \"7days\"\n").unwrap();
        assert_eq!((t.timeout_ms, t.idle_secs), (60_500, 7 * 86_400));
    }

    #[test]
    fn bad_or_fractional_strings_name_the_field_and_line() {
        let e = load("timeout_ms = 1\nidle_secs = \"1500ms\"\n").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("not a whole number of seconds"),
            "{e}"
        );
        let e = load("timeout_ms = \"soon\"\nidle_secs = 1\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("is not a duration"), "{e}");
        assert!(load("timeout_ms = -5\nidle_secs = 1\n").is_err());
    }
}
