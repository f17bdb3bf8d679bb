//! Escaping attacker-controlled text before it reaches a log line.
//!
//! A ticket's `sname` and realm travel in clear, HTTP paths and header values are whatever the
//! client sent, and a log line is read by people and parsers that take a newline to start a new
//! record. Text from the wire therefore goes through [`escaped`] (or an error type whose
//! `Display` uses it, such as `AuthError`) before it is formatted into a log field: printable
//! ASCII passes, `\` and `"` are backslash-escaped, `\n`, `\r` and `\t` are written as such, and
//! every other control character and every non-ASCII character becomes `\u{…}`. A `\n` in a
//! ticket's `sname` cannot forge a line, and a bidi override cannot reorder one on screen.
//!
//! Pure and dependency-free, so the protocol cores (`krb`) use it in their error texts too.

use std::fmt::{self, Display, Write};

/// Writes `T`'s `Display` output escaped; see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<T>(pub T);

/// `value`'s `Display` output, escaped for a log line.
pub fn escaped<T: Display>(value: T) -> Escaped<T> {
    Escaped(value)
}

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

/// A `fmt::Write` that escapes what passes through it.
struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut clean = 0;
        for (i, c) in s.char_indices() {
            if matches!(c, ' '..='~') && c != '\\' && c != '"' {
                continue;
            }
            self.0.write_str(&s[clean..i])?;
            match c {
                '\\' => self.0.write_str("\\\\")?,
                '"' => self.0.write_str("\\\"")?,
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            clean = i + c.len_utf8();
        }
        self.0.write_str(&s[clean..])
    }
}

/// Whether `s` would pass [`escaped`] unchanged.
pub fn is_log_safe(s: &str) -> bool {
    s.chars().all(|c| matches!(c, ' '..='~') && c != '\\' && c != '"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_passes_unchanged() {
        let s = "http/outlook.contoso.com@CONTOSO.COM (a=1, b=[2])";
        assert_eq!(escaped(s).to_string(), s);
        assert!(is_log_safe(s));
    }

    #[test]
    fn a_newline_cannot_start_a_line() {
        let forged = "x\n2026-01-01T00:00:00Z INFO Negotiate token accepted principal=administrator";
        let out = escaped(forged).to_string();
        assert!(!out.contains('\n'));
        assert!(out.starts_with("x\\n2026"));
    }

    #[test]
    fn controls_quotes_backslashes_and_non_ascii_are_escaped() {
        assert_eq!(escaped("a\r\tb").to_string(), "a\\r\\tb");
        assert_eq!(escaped("say \"hi\"\\").to_string(), "say \\\"hi\\\"\\\\");
        assert_eq!(escaped("\u{1b}[31m").to_string(), "\\u{1b}[31m");
        assert_eq!(
            escaped("m\u{fc}ller\u{202e}").to_string(),
            "m\\u{fc}ller\\u{202e}"
        );
        assert_eq!(escaped("\u{7f}\u{0}").to_string(), "\\u{7f}\\u{0}");
        assert!(!is_log_safe("m\u{fc}ller"));
    }

    #[test]
    fn any_display_value_is_escaped() {
        struct Two;
        impl Display for Two {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                writeln!(f, "a")?;
                write!(f, "b")
            }
        }
        assert_eq!(escaped(Two).to_string(), "a\\nb");
    }
}
