//! The access log: one line per HTTP request and per RPC connection — who (peer, principal),
//! where (listener, route or interface, member), what came of it (status or bind result,
//! refusal reason), how much and how long — the record an administrator reads after an
//! incident. Diagnostics stay in the process log; this is the audit trail.
//!
//! Cheap on the connection tasks: a line is an owned [`Entry`] handed to a bounded channel with
//! `try_send` (never a wait, never a lock held across an await); one writer thread formats and
//! writes, flushing whenever the channel runs dry. When the channel is full the entry is dropped
//! and counted (`kedge_access_log_dropped_total`). With the log off, or a success sampled out
//! ([`AccessLog::sample_success`]), no entry is built at all. Refusals and errors are always
//! logged; successes at the `sample_successes` rate (deterministic: exactly that share of them).
//!
//! The file (`path`) is opened for append and reopened on SIGUSR1 ([`AccessLog::reopen`]), for
//! logrotate's `postrotate kill -USR1`.

pub mod config;
pub mod format;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use config::{AccessLogConfig, AccessLogFormat};

/// Which edge a line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One HTTP request.
    Http,
    /// One RPC connection (its first bind and the session after it).
    Rpc,
}

impl Kind {
    /// The `kind` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Rpc => "rpc",
        }
    }
}

/// One access-log line, owned, formatted on the writer thread. Text from the wire (user agent,
/// path, principal, interface) is escaped by the formatter, never here.
#[derive(Clone, Debug)]
pub struct Entry {
    /// When the request or connection began.
    pub time: SystemTime,
    /// HTTP request or RPC connection.
    pub kind: Kind,
    /// Listener name.
    pub listener: Arc<str>,
    /// The client: the PROXY header's source where a trusted balancer sent one.
    pub peer: SocketAddr,
    /// The balancer's address, where a PROXY header named the client.
    pub via: Option<SocketAddr>,
    /// HTTP: the route's prefix (`-` where none matched). RPC: the interface (`EMSMDB v4.0`).
    pub route: Option<String>,
    /// HTTP method.
    pub method: Option<http::Method>,
    /// HTTP path (no query string: it may carry secrets).
    pub path: Option<String>,
    /// How the client authenticated: `kerberos`, `ntlm`, `basic`/`bearer` (`unverified`),
    /// `anonymous`, or `no_auth` / `ntlm_passthrough` on RPC.
    pub auth: Option<&'static str>,
    /// The authenticated principal (`alice@CONTOSO.COM`).
    pub principal: Option<String>,
    /// The member that served it.
    pub member: Option<String>,
    /// HTTP status sent.
    pub status: Option<u16>,
    /// RPC: `spliced` (bound and relayed), `bind_nak`, `fault` or `closed`.
    pub result: Option<&'static str>,
    /// Why it was refused or failed (the metric's reason label), absent on success.
    pub reason: Option<String>,
    /// Bytes from the client (HTTP: the request head and body as read; RPC: relayed to the
    /// member, the first bind included).
    pub bytes_in: u64,
    /// Bytes to the client.
    pub bytes_out: u64,
    /// From the request's head (RPC: the connection's accept) to its last byte.
    pub duration: Duration,
    /// The `User-Agent` header.
    pub user_agent: Option<http::HeaderValue>,
}

impl Entry {
    /// An entry with only the always-known fields set.
    pub fn new(kind: Kind, listener: Arc<str>, peer: SocketAddr, time: SystemTime) -> Self {
        Self {
            time,
            kind,
            listener,
            peer,
            via: None,
            route: None,
            method: None,
            path: None,
            auth: None,
            principal: None,
            member: None,
            status: None,
            result: None,
            reason: None,
            bytes_in: 0,
            bytes_out: 0,
            duration: Duration::ZERO,
            user_agent: None,
        }
    }
}

enum Msg {
    Entry(Box<Entry>),
    Reopen,
}

/// The access log of a process (shared by every listener).
pub struct AccessLog {
    tx: SyncSender<Msg>,
    sampler: Sampler,
    reopen: Arc<AtomicBool>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
}

/// Where lines go.
#[derive(Debug)]
enum Sink {
    Stdout,
    File { path: PathBuf, out: BufWriter<File> },
}

impl Sink {
    fn open(path: &str) -> io::Result<Sink> {
        if path == "-" {
            return Ok(Sink::Stdout);
        }
        let path = PathBuf::from(path);
        let out = BufWriter::with_capacity(64 * 1024, open_append(&path)?);
        Ok(Sink::File { path, out })
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().lock().write_all(line),
            Sink::File { out, .. } => out.write_all(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().lock().flush(),
            Sink::File { out, .. } => out.flush(),
        }
    }

    /// Opens the path again (logrotate moved the old file away); the old file is flushed first.
    fn reopen(&mut self) -> io::Result<()> {
        if let Sink::File { path, out } = self {
            out.flush()?;
            *out = BufWriter::with_capacity(64 * 1024, open_append(path)?);
        }
        Ok(())
    }
}

fn open_append(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl AccessLog {
    /// Opens the log as `cfg` says and starts its writer thread; `None` when it is off. The
    /// thread ends once every handle is dropped.
    pub fn start(cfg: &AccessLogConfig) -> io::Result<Option<Arc<AccessLog>>> {
        if !cfg.enabled {
            return Ok(None);
        }
        let sink = Sink::open(&cfg.path)?;
        let (tx, rx) = mpsc::sync_channel(cfg.queue.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let format = cfg.format;
        let flag = reopen.clone();
        std::thread::Builder::new()
            .name("kedge-access-log".into())
            .spawn(move || write_lines(rx, sink, format, flag))?;
        Ok(Some(Arc::new(AccessLog {
            tx,
            sampler: Sampler::new(cfg.sample_successes),
            reopen,
        })))
    }

    /// Whether the next success is logged (`sample_successes`); ask before building its entry.
    pub fn sample_success(&self) -> bool {
        self.sampler.take()
    }

    /// Queues `entry`; drops and counts it when the queue is full. Never waits.
    pub fn log(&self, entry: Entry) {
        match self.tx.try_send(Msg::Entry(Box::new(entry))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => super::access_log_dropped(),
        }
    }

    /// Reopens the file before the next line (SIGUSR1).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
        // Wakes an idle writer; a busy one sees the flag after its current line.
        let _ = self.tx.try_send(Msg::Reopen);
    }
}

/// The writer thread: format, write, flush when the queue is empty, reopen when asked.
fn write_lines(rx: Receiver<Msg>, mut sink: Sink, format: AccessLogFormat, reopen: Arc<AtomicBool>) {
    let mut line = String::with_capacity(512);
    let mut failing = false;
    let mut dirty = false;
    loop {
        // With lines written but not flushed, wait only briefly before flushing.
        let msg = if dirty {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            }
        };
        if reopen.swap(false, Ordering::AcqRel) {
            match sink.reopen() {
                Ok(()) => tracing::info!("access log reopened"),
                Err(e) => {
                    tracing::warn!(error = %e, "access log could not be reopened; writing on to the old file")
                }
            }
        }
        let result = match msg {
            Some(Msg::Entry(e)) => {
                line.clear();
                format::write(&mut line, &e, format);
                dirty = true;
                sink.write(line.as_bytes())
            }
            Some(Msg::Reopen) => Ok(()),
            None => {
                dirty = false;
                sink.flush()
            }
        };
        match result {
            Ok(()) => failing = false,
            Err(e) => {
                super::access_log_dropped();
                if !failing {
                    tracing::warn!(error = %e, "access log write failed; lines are dropped and counted");
                }
                failing = true;
            }
        }
    }
    let _ = sink.flush();
}

/// Lets exactly a share `p` of calls through, spread evenly (call n passes when
/// ⌊(n+1)·p⌋ > ⌊n·p⌋): no random numbers, no lock.
#[derive(Debug)]
pub struct Sampler {
    /// p in millionths.
    per_million: u64,
    n: AtomicU64,
}

impl Sampler {
    /// A sampler letting through a share `p` (clamped to 0..=1).
    pub fn new(p: f64) -> Self {
        let per_million = (p.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
        Self {
            per_million,
            n: AtomicU64::new(0),
        }
    }

    /// Whether this call passes.
    pub fn take(&self) -> bool {
        match self.per_million {
            0 => false,
            1_000_000 => true,
            p => {
                let n = self.n.fetch_add(1, Ordering::Relaxed);
                (n.wrapping_add(1).wrapping_mul(p)) / 1_000_000 > n.wrapping_mul(p) / 1_000_000
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampler_passes_exactly_its_share() {
        for (p, of_1000) in [(0.0, 0), (1.0, 1000), (0.1, 100), (0.25, 250), (0.333, 333)] {
            let s = Sampler::new(p);
            assert_eq!((0..1000).filter(|_| s.take()).count(), of_1000, "p = {p}");
        }
    }

    #[test]
    fn lines_reach_the_file_and_a_reopen_starts_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let cfg = AccessLogConfig {
            enabled: true,
            path: path.display().to_string(),
            ..AccessLogConfig::default()
        };
        let log = AccessLog::start(&cfg).unwrap().unwrap();
        let entry = Entry::new(
            Kind::Http,
            "https".into(),
            "192.0.2.1:5000".parse().unwrap(),
            SystemTime::now(),
        );
        log.log(entry.clone());
        let lines = |p: &std::path::Path| {
            for _ in 0..200 {
                if let Ok(s) = std::fs::read_to_string(p) {
                    if !s.is_empty() {
                        return s;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            String::new()
        };
        assert_eq!(lines(&path).lines().count(), 1);
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        log.log(entry);
        assert_eq!(lines(&path).lines().count(), 1, "the new line went to a new file");
        assert_eq!(lines(&rotated).lines().count(), 1);
    }
}
