//! Formatting an [`Entry`] as one line: a flat JSON object (serde_json escapes every control
//! character and quote), or `key=value` text where every string from the wire goes through
//! [`escaped`] and is quoted. Either way a line is one line, whatever a client sent.

use std::fmt::Write;

use serde::Serialize;

use super::{AccessLogFormat, Entry};
use crate::observe::escaped;

/// The flat JSON shape: one level, absent fields left out.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    kind: &'static str,
    listener: &'a str,
    peer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
}

fn rfc3339(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Milliseconds with microsecond precision.
fn millis(e: &Entry) -> f64 {
    e.duration.as_micros() as f64 / 1000.0
}

/// Appends `e` as one line (ending in `\n`) to `out`.
pub fn write(out: &mut String, e: &Entry, format: AccessLogFormat) {
    let ua = e
        .user_agent
        .as_ref()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (route, interface) = match e.kind {
        super::Kind::Http => (e.route.as_deref(), None),
        super::Kind::Rpc => (None, e.route.as_deref()),
    };
    let line = Line {
        time: rfc3339(e.time),
        kind: e.kind.as_str(),
        listener: &e.listener,
        peer: e.peer.ip().to_string(),
        via: e.via.map(|v| v.ip().to_string()),
        route,
        interface,
        method: e.method.as_ref().map(http::Method::as_str),
        path: e.path.as_deref(),
        auth: e.auth,
        principal: e.principal.as_deref(),
        member: e.member.as_deref(),
        status: e.status,
        result: e.result,
        reason: e.reason.as_deref(),
        bytes_in: e.bytes_in,
        bytes_out: e.bytes_out,
        duration_ms: millis(e),
        user_agent: ua,
    };
    match format {
        AccessLogFormat::Json => {
            // Serializing strings and numbers into a String cannot fail.
            if let Ok(s) = serde_json::to_string(&line) {
                out.push_str(&s);
            }
        }
        AccessLogFormat::Text => text(out, &line),
    }
    out.push('\n');
}

fn text(out: &mut String, l: &Line<'_>) {
    let _ = write!(
        out,
        "{} {} listener={} peer={}",
        l.time,
        l.kind,
        escaped(l.listener),
        l.peer
    );
    for (key, v) in [
        ("via", l.via.as_deref()),
        ("route", l.route),
        ("interface", l.interface),
        ("method", l.method),
        ("path", l.path),
        ("auth", l.auth),
        ("principal", l.principal),
        ("member", l.member),
    ] {
        quoted(out, key, v);
    }
    if let Some(s) = l.status {
        let _ = write!(out, " status={s}");
    }
    quoted(out, "result", l.result);
    quoted(out, "reason", l.reason);
    let _ = write!(
        out,
        " bytes_in={} bytes_out={} duration_ms={}",
        l.bytes_in, l.bytes_out, l.duration_ms
    );
    quoted(out, "user_agent", l.user_agent.as_deref());
}

/// ` key="value"`, the value escaped; nothing where there is no value.
fn quoted(out: &mut String, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        let _ = write!(out, " {key}=\"{}\"", escaped(v));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::*;
    use std::time::{Duration, SystemTime};

    fn hostile() -> Entry {
        let mut e = Entry::new(
            Kind::Http,
            "https".into(),
            "203.0.113.7:40000".parse().unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        );
        e.route = Some("/mapi/".into());
        e.method = Some(http::Method::POST);
        e.path = Some("/mapi/emsmdb/\"x\n".into());
        e.principal = Some("alice\"\n@EVIL".into());
        e.status = Some(200);
        e.bytes_in = 10;
        e.bytes_out = 20;
        e.duration = Duration::from_micros(1_234);
        e.user_agent = Some(http::HeaderValue::from_bytes(b"Outlook\t\"16\"\xff").unwrap());
        e
    }

    #[test]
    fn json_lines_are_flat_objects_with_every_string_intact() {
        let mut s = String::new();
        write(&mut s, &hostile(), AccessLogFormat::Json);
        assert_eq!(s.matches('\n').count(), 1, "one line: {s}");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        let o = v.as_object().unwrap();
        assert!(o.values().all(|v| !v.is_object() && !v.is_array()), "flat: {s}");
        assert_eq!(o["time"], "2027-01-15T08:00:00.000Z");
        assert_eq!(o["principal"], "alice\"\n@EVIL");
        assert_eq!(o["user_agent"], "Outlook\t\"16\"\u{fffd}");
        assert_eq!(o["peer"], "203.0.113.7");
        assert_eq!(o["duration_ms"], 1.234);
        assert!(!o.contains_key("reason"));
    }

    #[test]
    fn text_lines_escape_and_quote_wire_strings() {
        let mut s = String::new();
        write(&mut s, &hostile(), AccessLogFormat::Text);
        assert_eq!(s.matches('\n').count(), 1, "one line: {s}");
        assert!(!s.contains('\t'), "{s}");
        assert!(s.contains(r#"user_agent="Outlook\t\"16\"\u{fffd}""#), "{s}");
        assert!(s.contains(r#"principal="alice\"\n@EVIL""#), "{s}");
        assert!(s.contains(" status=200 "), "{s}");
        assert!(
            s.starts_with("2027-01-15T08:00:00.000Z http listener=https peer=203.0.113.7 "),
            "{s}"
        );
    }
}
