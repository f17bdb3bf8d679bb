//! The process's log subscriber: `RUST_LOG` filter (default `info`), text (coloured only on a
//! terminal) or flat JSON (`KEDGE_LOG_FORMAT=json`), refusals summarized by rate ([`super::refusal_log`]), and one
//! record per line whatever a field holds.

use std::io::{self, Write};
use std::time::Duration;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::EnvFilter;

use super::refusal_log::RefusalSummaries;
use crate::config::LoggingConfig;

/// How lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    Text {
        /// ANSI colours.
        ansi: bool,
    },
    /// One JSON object per line.
    Json,
}

/// The subscriber kedge runs with, writing to `writer` (tests pass a buffer).
pub fn subscriber<W>(
    cfg: &LoggingConfig,
    filter: EnvFilter,
    format: LogFormat,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let refusals = RefusalSummaries::new(Duration::from_secs(cfg.refusal_interval_secs), cfg.refusal_burst);
    let base = tracing_subscriber::registry().with(filter).with(refusals);
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(OneLine(writer));
    match format {
        LogFormat::Text { ansi } => Box::new(base.with(fmt.with_ansi(ansi))),
        // Flat: an event's fields beside `timestamp`, `level` and `message`, not nested under
        // `fields`, so a log shipper can index them without a mapping.
        LogFormat::Json => Box::new(base.with(fmt.json().flatten_event(true))),
    }
}

/// Installs [`subscriber`] as the process's global subscriber, writing to stderr, with the
/// filter from `RUST_LOG` (default `info`) and the format from `KEDGE_LOG_FORMAT`. A second
/// call keeps the first subscriber.
pub fn init(cfg: &LoggingConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("KEDGE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let format = if json {
        LogFormat::Json
    } else {
        LogFormat::Text {
            ansi: colour_on_stderr(std::env::var_os("NO_COLOR").as_deref()),
        }
    };
    let _ = tracing::subscriber::set_global_default(subscriber(cfg, filter, format, io::stderr));
}

/// Colour only for a person at a terminal: never into a pipe, a file or the journal (where
/// escape codes are noise an operator has to strip), and never with `NO_COLOR` set
/// (no-color.org).
fn colour_on_stderr(no_color: Option<&std::ffi::OsStr>) -> bool {
    use std::io::IsTerminal;
    no_color.is_none_or(|v| v.is_empty()) && io::stderr().is_terminal()
}

/// A writer that keeps each record on one line: a line break inside a record (a field whose
/// `Display` holds one) is written as `\n` / `\r`. The formatter hands over a whole record,
/// ending in `\n`, per write.
struct OneLine<W>(W);

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for OneLine<W> {
    type Writer = OneLineWriter<W::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter(self.0.make_writer())
    }
}

struct OneLineWriter<W>(W);

impl<W: Write> Write for OneLineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        if !body.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b => out.push(b),
            }
        }
        if body.len() < buf.len() {
            out.push(b'\n');
        }
        self.0.write_all(&out)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_turns_colour_off_even_on_a_terminal() {
        assert!(!colour_on_stderr(Some(std::ffi::OsStr::new("1"))));
    }

    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_records_are_flat() {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = subscriber(
            &LoggingConfig::default(),
            EnvFilter::new("info"),
            LogFormat::Json,
            move || out.clone(),
        );
        tracing::subscriber::with_default(sub, || {
            tracing::info!(listener = "https", status = 401, "request refused");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["message"], "request refused", "{text}");
        assert_eq!(v["listener"], "https", "{text}");
        assert_eq!(v["status"], 401, "{text}");
        assert!(v.get("fields").is_none(), "{text}");
    }

    #[test]
    fn a_record_with_a_line_break_stays_one_line() {
        let mut out = Vec::new();
        let mut w = OneLineWriter(&mut out);
        w.write_all(b"INFO reload refused error=bad:\n  a\r\n  b\n")
            .unwrap();
        w.write_all(b"INFO next\n").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "INFO reload refused error=bad:\\n  a\\r\\n  b\nINFO next\n"
        );
    }
}
