//! The soak's backend members: tiny in-process HTTP and MS-RPC servers on fixed loopback ports
//! that write down the soak id of every request and bind they see (the `x-soak-id` header; the
//! bind's `call_id`), so the soak can check afterwards that no member ever saw a request kedge
//! should have refused.
//!
//! A member can be killed (its listeners closed and every open connection dropped, as a crashed
//! process's would be) and restarted on the same ports, and its HTTP side can hang: accept, read
//! the request head and never answer (kedge's `response_header_timeout_ms` must eject it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The header every soak HTTP request carries its id in.
pub const ID_HEADER: &str = "x-soak-id";
/// Largest request head a member reads.
const MAX_HEAD: usize = 64 * 1024;

/// Which listener of a member saw an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// An HTTP request (`x-soak-id`).
    Http,
    /// An RPC first PDU (`call_id`).
    Rpc,
}

/// Every id the members saw: (member, side, id).
pub type Seen = Arc<Mutex<Vec<(String, Side, u64)>>>;

/// One backend member: an HTTP and an RPC listener.
pub struct Member {
    /// Its name in the kedge config.
    pub name: String,
    /// Its HTTP port.
    pub http: SocketAddr,
    /// Its RPC port.
    pub rpc: SocketAddr,
    hang: Arc<AtomicBool>,
    seen: Seen,
    tasks: Vec<JoinHandle<()>>,
}

impl Member {
    /// Binds both listeners on 127.0.0.1 (free ports) and starts serving.
    pub async fn start(name: &str, seen: Seen) -> std::io::Result<Member> {
        let http = TcpListener::bind("127.0.0.1:0").await?;
        let rpc = TcpListener::bind("127.0.0.1:0").await?;
        let mut m = Member {
            name: name.to_owned(),
            http: http.local_addr()?,
            rpc: rpc.local_addr()?,
            hang: Arc::new(AtomicBool::new(false)),
            seen,
            tasks: Vec::new(),
        };
        m.serve(http, rpc);
        Ok(m)
    }

    /// Makes its HTTP side hang (`true`: read each request head, never answer) or answer.
    pub fn set_hang(&self, hang: bool) {
        self.hang.store(hang, Ordering::Relaxed);
    }

    /// Whether it is serving.
    pub fn is_up(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// Closes both listeners and drops every open connection.
    pub fn kill(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// Listens again on the same ports (retrying while the kernel still holds them).
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        let mut tries = 0;
        let (http, rpc) = loop {
            match (
                TcpListener::bind(self.http).await,
                TcpListener::bind(self.rpc).await,
            ) {
                (Ok(h), Ok(r)) => break (h, r),
                (Err(e), _) | (_, Err(e)) if tries >= 50 => return Err(e),
                _ => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        self.serve(http, rpc);
        Ok(())
    }

    fn serve(&mut self, http: TcpListener, rpc: TcpListener) {
        let (name, seen, hang) = (self.name.clone(), self.seen.clone(), self.hang.clone());
        self.tasks.push(tokio::spawn(accept_loop(http, move |s| {
            http_conn(s, name.clone(), seen.clone(), hang.clone())
        })));
        let (name, seen) = (self.name.clone(), self.seen.clone());
        self.tasks.push(tokio::spawn(accept_loop(rpc, move |s| {
            rpc_conn(s, name.clone(), seen.clone())
        })));
    }
}

/// Accepts until aborted; aborting it drops (and so aborts) every connection task.
async fn accept_loop<F, Fut>(l: TcpListener, conn: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = l.accept() => match accepted {
                Ok((s, _)) => { conns.spawn(conn(s)); }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Serves keep-alive GETs: records the id, answers `200` with the member's name.
async fn http_conn(mut s: TcpStream, name: String, seen: Seen, hang: Arc<AtomicBool>) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut s, &mut buf).await else {
            return;
        };
        if let Some(id) = header(&head, ID_HEADER).and_then(|v| v.parse().ok()) {
            seen.lock().unwrap().push((name.clone(), Side::Http, id));
        }
        if hang.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        let body = format!("{name}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request head (bodies are not expected) off `s`, keeping bytes after it in `buf`.
pub async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 8192];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The value of header `name` (case-insensitive) in a head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Serves one RPC association: records the first PDU's `call_id` and answers every bind with a
/// bind_ack header; other PDUs are read and dropped.
async fn rpc_conn(mut s: TcpStream, name: String, seen: Seen) {
    let mut first = true;
    loop {
        let mut head = [0u8; 16];
        if s.read_exact(&mut head).await.is_err() {
            return;
        }
        let frag = usize::from(u16::from_le_bytes([head[8], head[9]]));
        let mut rest = vec![0u8; frag.saturating_sub(16)];
        if s.read_exact(&mut rest).await.is_err() {
            return;
        }
        let call_id = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
        if first {
            seen.lock()
                .unwrap()
                .push((name.clone(), Side::Rpc, u64::from(call_id)));
            first = false;
        }
        if matches!(head[2], 11 | 14) && s.write_all(&bind_ack(call_id)).await.is_err() {
            return;
        }
    }
}

/// A little-endian bind_ack PDU (C706 12.6.4.4) with an empty secondary address and no results:
/// enough for the soak client, which reads the type.
pub fn bind_ack(call_id: u32) -> Vec<u8> {
    let mut p = vec![5, 0, 12, 3, 0x10, 0, 0, 0, 28, 0, 0, 0];
    p.extend_from_slice(&call_id.to_le_bytes());
    p.extend_from_slice(&[0xb8, 0x10, 0xb8, 0x10, 1, 0, 0, 0, 0, 0, 0, 0]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive_and_skips_the_request_line() {
        let head = "GET /x-soak-id: 9 HTTP/1.1\r\nHost: a\r\nX-Soak-Id: 42";
        assert_eq!(header(head, ID_HEADER), Some("42"));
        assert_eq!(header(head, "missing"), None);
    }

    #[test]
    fn bind_ack_is_a_whole_pdu_with_the_call_id() {
        let p = bind_ack(7);
        assert_eq!(usize::from(u16::from_le_bytes([p[8], p[9]])), p.len());
        assert_eq!((p[2], &p[12..16]), (12, &7u32.to_le_bytes()[..]));
    }
}
