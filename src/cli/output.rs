//! The CLI's output: every line to stdout goes through [`outln!`] / [`out!`], which return the
//! write's `io::Result` instead of panicking as `println!` does. A reader that goes away early
//! (`kedge keytab list | head`) ends the command with a `BrokenPipe` error, which
//! [`is_broken_pipe`] recognizes so that `main` exits quietly (no panic, no exit 101).
//! Messages to stderr ([`errln!`]) ignore write errors: nothing useful can be done about them.

/// Writes a line to stdout; `io::Result<()>`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        writeln!(::std::io::stdout().lock(), $($arg)*)
    }};
}

/// Writes to stdout without a newline; `io::Result<()>`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut stdout = ::std::io::stdout().lock();
        write!(stdout, $($arg)*).and_then(|()| stdout.flush())
    }};
}

/// Writes a line to stderr, ignoring failure.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// Whether `e` is (or was caused by) a write to a pipe whose reader has gone.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_is_recognized_through_context() {
        let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("listing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
