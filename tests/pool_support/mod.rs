//! Loopback CAS stand-ins for pool and admin tests: tiny HTTP servers whose health page status
//! can be flipped at run time.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

use kedge::pool::{Balance, HealthConfig, HealthKind, MemberConfig, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const HEALTH_PATH: &str = "/owa/healthcheck.htm";

/// A backend on 127.0.0.1: the health page answers `status`; any other path answers 200 with
/// the backend's name as body.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub status: Arc<AtomicU16>,
    pub health_hits: Arc<AtomicU64>,
    /// Health requests answered with something other than 200.
    pub health_failures: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Backend {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let health_hits = Arc::new(AtomicU64::new(0));
        let health_failures = Arc::new(AtomicU64::new(0));
        let (st, hits, fails, body) = (
            status.clone(),
            health_hits.clone(),
            health_failures.clone(),
            name.to_owned(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let (st, hits, fails, body) = (st.clone(), hits.clone(), fails.clone(), body.clone());
                tokio::spawn(async move {
                    // Serve requests on the connection until it closes.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end);
                        let path = head.split(' ').nth(1).unwrap_or("");
                        let (code, text) = if path == HEALTH_PATH {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let code = st.load(Ordering::SeqCst);
                            if code != 200 {
                                fails.fetch_add(1, Ordering::SeqCst);
                            }
                            (code, String::new())
                        } else {
                            (200, body.clone())
                        };
                        let resp = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: {}\r\n\r\n{text}",
                            text.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            name: name.into(),
            addr,
            status,
            health_hits,
            health_failures,
            task,
        }
    }

    pub fn set_health(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port with nothing listening (bound, read back, released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn member(port: u16, weight: u32) -> MemberConfig {
    MemberConfig {
        address: "127.0.0.1".into(),
        weight,
        ports: BTreeMap::from([("https".to_owned(), port)]),
        drain: false,
    }
}

pub fn health(kind: HealthKind, rise: u32, fall: u32, interval_ms: u64) -> HealthConfig {
    HealthConfig {
        kind,
        path: HEALTH_PATH.into(),
        interval_ms,
        timeout_ms: 2_000,
        rise,
        fall,
    }
}

pub fn pool_config(members: &[&str], health: HealthConfig) -> PoolConfig {
    PoolConfig {
        members: members.iter().map(|s| (*s).to_owned()).collect(),
        port: "https".into(),
        balance: Balance::Rendezvous,
        affinity: true,
        tls: None,
        health,
        connect_timeout_ms: 2_000,
        response_header_timeout_ms: 300_000,
        idle_timeout_secs: 1_200,
        eject_base_ms: 60_000,
        eject_max_ms: 600_000,
    }
}

/// Member table for `backends` (weight 100 each).
pub fn table(backends: &[&Backend]) -> BTreeMap<String, MemberConfig> {
    backends
        .iter()
        .map(|b| (b.name.clone(), member(b.addr.port(), 100)))
        .collect()
}

pub fn principals(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i:05}@CONTOSO.COM")).collect()
}

/// Polls `cond` every 10 ms for up to 10 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
