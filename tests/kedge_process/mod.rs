//! `kedge run` as a real process for integration tests: a tiny HTTP backend, starting kedge
//! with a config file (listeners on port 0, read back from its JSON log), plain HTTP requests,
//! `/metrics` samples and SIGTERM.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A tiny CAS member answering every request with its name, on its own thread.
pub fn backend(name: &'static str) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                loop {
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let body = format!("{name}\n");
                    let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                    if std::io::Write::write_all(&mut w, resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A `kedge run` process; killed when dropped.
pub struct Running {
    pub child: Child,
    /// Its HTTP listener.
    pub http: SocketAddr,
    /// Its admin listener.
    pub admin: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kedge run --config <cfg_path>` and waits (20 s at most) until it reports its HTTP
/// and admin listeners (bound to port 0 in the config) on its JSON log.
pub fn start(cfg_path: &Path) -> Running {
    start_command(
        &["run".as_ref(), "--config".as_ref(), cfg_path.as_os_str()],
        Stdio::null(),
    )
}

/// Starts `kedge <args>` with its standard output to `stdout`, and waits as [`start`] does.
pub fn start_command(args: &[&std::ffi::OsStr], stdout: Stdio) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(args)
        .env("KEDGE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kedge");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut http, mut admin) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.is_none() || admin.is_none() {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kedge did not report its listeners within 20 s");
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        // Flat records (fields beside `level` and `timestamp`).
        if v["message"] == "listening" {
            let addr: SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
            match v["kind"].as_str() {
                Some("http") => http = Some(addr),
                Some("admin") => admin = Some(addr),
                _ => {}
            }
        }
    }
    std::thread::spawn(move || for _ in rx {});
    Running {
        child,
        http: http.unwrap(),
        admin: admin.unwrap(),
    }
}

/// One `GET` on a new connection, with `Authorization: Negotiate <auth>` when given: status and body.
pub fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: Negotiate {a}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: outlook.contoso.com\r\n{auth}Connection: close\r\n\r\n");
    std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Sum of the samples of `name` on the admin listener's `/metrics` whose labels include every pair.
pub fn metric(admin: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (_, body) = get(admin, "/metrics", None);
    sample_sum(&body, name, labels)
}

/// Sum of the samples of `name` in a Prometheus exposition whose labels include every pair.
pub fn sample_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(exposition.lines().map(|l| Ok(l.to_owned())))
        .expect("valid exposition");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// SIGTERM: kedge drains and exits 0 within 15 s.
pub fn terminate(mut k: Running) {
    Command::new("kill")
        .args(["-TERM", &k.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = k.child.try_wait().unwrap() {
            assert!(st.success(), "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "kedge did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `promtool check metrics` on a scrape: every metric has help text and a valid name, type and
/// unit suffix (promtool says nothing). promtool comes with Debian's `prometheus` package
/// (`scripts/install-test-deps`).
pub fn promtool_check_metrics(scrape: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; run scripts/install-test-deps)");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), scrape.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );
}
