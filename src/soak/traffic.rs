//! The soak's clients: one async operation per [`Class`], each on its own TCP connection to
//! kedge's HTTP or RPC listener, recording what it sent and how it ended in the [`Ledger`].
//! Tokens are minted locally (the bench client's [`TokenMinter`]) with the ASA key of the
//! current kvno; after a keytab roll the previous minter keeps minting the `Previous` class.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ledger::{Class, Ledger, Outcome};
use super::members::{read_head, ID_HEADER};
use crate::benchclient::rpc::{bind_pdu, Interface, RpcAuth};
use crate::benchclient::tokens::TokenMinter;
use crate::rpc::{parse_bind, AuthLevel, AuthType};

/// The host name requests carry.
pub const HOST: &str = "outlook.contoso.com";
/// An NTLM NEGOTIATE message (what Windows sends first).
const NTLM_NEGOTIATE: &str = "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==";
/// Tokens and binds kept for replaying.
const REPLAY_POOL: usize = 256;
/// Requests per session connection (the first carries the token).
const SESSION_REQUESTS: u64 = 4;
/// A valid RPC association closed this soon after a member kill is a failover.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// Longest any one operation may take.
const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// The minters of the current and the previous kvno.
pub struct Minters {
    /// HTTP tokens, current kvno.
    pub http: Arc<TokenMinter>,
    /// RPC (auth 16) tokens, current kvno.
    pub rpc: Arc<TokenMinter>,
    /// HTTP tokens of the kvno before the last roll.
    pub previous: Option<Arc<TokenMinter>>,
}

/// Shared state of every client operation.
pub struct Traffic {
    /// kedge's HTTP listener.
    pub http: SocketAddr,
    /// kedge's RPC listener.
    pub rpc: SocketAddr,
    /// What was sent and how it ended.
    pub ledger: Arc<Ledger>,
    /// The minters; replaced on a keytab roll.
    pub minters: RwLock<Minters>,
    /// The HTTP listener's `max_header_bytes`.
    pub max_header_bytes: usize,
    /// HTTP tokens valid requests carried.
    pub http_tokens: AtomicU64,
    /// RPC tokens valid binds carried.
    pub rpc_tokens: AtomicU64,
    /// When a member was last killed or restarted.
    pub last_kill: Mutex<Option<Instant>>,
    /// Member kills so far.
    pub kills: AtomicU64,
    next_id: AtomicU64,
    http_replay: Mutex<VecDeque<Vec<u8>>>,
    rpc_replay: Mutex<VecDeque<Vec<u8>>>,
}

impl Traffic {
    /// Clients of kedge at `http` and `rpc`.
    pub fn new(http: SocketAddr, rpc: SocketAddr, minters: Minters, max_header_bytes: usize) -> Self {
        Traffic {
            http,
            rpc,
            ledger: Arc::new(Ledger::default()),
            minters: RwLock::new(minters),
            max_header_bytes,
            http_tokens: AtomicU64::new(0),
            rpc_tokens: AtomicU64::new(0),
            last_kill: Mutex::new(None),
            kills: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            http_replay: Mutex::new(VecDeque::new()),
            rpc_replay: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether `class` can be sent now (replays need something to replay, `Previous` a roll).
    pub fn ready(&self, class: Class) -> bool {
        match class {
            Class::Previous => self.minters.read().unwrap().previous.is_some(),
            Class::Replay => !self.http_replay.lock().unwrap().is_empty(),
            Class::RpcReplay => !self.rpc_replay.lock().unwrap().is_empty(),
            _ => true,
        }
    }

    /// Runs one attempt of `class` (a session: its requests) and records it.
    pub async fn run(self: Arc<Self>, class: Class) {
        let first = self.next_id.fetch_add(SESSION_REQUESTS, Ordering::Relaxed);
        let op = async {
            match class {
                Class::Session => self.session(first).await,
                c if is_rpc(c) => self.rpc_op(c, first).await,
                c => self.http_op(c, first).await,
            }
        };
        if tokio::time::timeout(OP_TIMEOUT, op).await.is_err() {
            self.ledger
                .ended(class, first, Outcome::Unexpected("timed out".into()), None);
        }
    }

    fn fresh_http(&self, previous: bool) -> Vec<u8> {
        let m = self.minters.read().unwrap();
        let minter = if previous {
            m.previous.clone()
        } else {
            Some(m.http.clone())
        };
        minter.map(|m| m.mint().bytes).unwrap_or_default()
    }

    async fn http_op(&self, class: Class, id: u64) {
        let b64 = |t: &[u8]| base64::engine::general_purpose::STANDARD.encode(t);
        let mut extra = String::new();
        let token = match class {
            Class::Fresh | Class::Previous | Class::Mutated | Class::Truncated => {
                let mut t = self.fresh_http(class == Class::Previous);
                match class {
                    Class::Mutated => *t.last_mut().expect("a token") ^= 1,
                    Class::Truncated => t.truncate(t.len() / 2),
                    _ => {}
                }
                Some(t)
            }
            Class::Replay => match self.http_replay.lock().unwrap().pop_front() {
                Some(t) => Some(t),
                None => return,
            },
            _ => None,
        };
        let auth = match (&token, class) {
            (Some(t), _) => format!("Authorization: Negotiate {}\r\n", b64(t)),
            (None, Class::Ntlm) => format!("Authorization: Negotiate {NTLM_NEGOTIATE}\r\n"),
            _ => String::new(),
        };
        if class == Class::Oversized {
            extra = format!("x-pad: {}\r\n", "a".repeat(self.max_header_bytes + 1024));
        }
        self.ledger.sent(class, id);
        if class.valid() {
            self.http_tokens.fetch_add(1, Ordering::Relaxed);
        }
        if class == Class::Slowloris {
            let outcome = slowloris(self.http, id).await;
            return self.ledger.ended(class, id, outcome, None);
        }
        let req = format!(
            "GET /soak/{id} HTTP/1.1\r\nHost: {HOST}\r\n{auth}{ID_HEADER}: {id}\r\n{extra}Connection: close\r\n\r\n"
        );
        let started = Instant::now();
        let res = match TcpStream::connect(self.http).await {
            Ok(mut s) => exchange(&mut s, &mut Vec::new(), req.as_bytes()).await,
            Err(e) => Err(e),
        };
        let micros = started.elapsed().as_micros() as u64;
        let outcome = match (res, class.valid()) {
            (Ok(status), true) => valid_status(status),
            (Ok(401), false) if class != Class::Oversized => Outcome::Refused,
            (Ok(431), false) if class == Class::Oversized => Outcome::Refused,
            (Ok(status), false) => Outcome::Unexpected(format!("status {status}")),
            (Err(e), _) => Outcome::Unexpected(format!("i/o: {e}")),
        };
        if let (Some(t), Class::Fresh, Outcome::Passed | Outcome::Failover(_)) = (token, class, &outcome) {
            let mut pool = self.http_replay.lock().unwrap();
            if pool.len() < REPLAY_POOL {
                pool.push_back(t);
            }
        }
        self.ledger.ended(class, id, outcome, Some(micros));
    }

    /// One token, then requests without one on the same connection; stops after a failover.
    async fn session(&self, first: u64) {
        let token = base64::engine::general_purpose::STANDARD.encode(self.fresh_http(false));
        self.http_tokens.fetch_add(1, Ordering::Relaxed);
        let mut s = match TcpStream::connect(self.http).await {
            Ok(s) => s,
            Err(e) => {
                self.ledger.sent(Class::Session, first);
                let o = Outcome::Unexpected(format!("connect: {e}"));
                return self.ledger.ended(Class::Session, first, o, None);
            }
        };
        let mut buf = Vec::new();
        for id in first..first + SESSION_REQUESTS {
            let auth = if id == first {
                format!("Authorization: Negotiate {token}\r\n")
            } else {
                String::new()
            };
            let req = format!("GET /soak/{id} HTTP/1.1\r\nHost: {HOST}\r\n{auth}{ID_HEADER}: {id}\r\n\r\n");
            self.ledger.sent(Class::Session, id);
            let started = Instant::now();
            let outcome = match exchange(&mut s, &mut buf, req.as_bytes()).await {
                Ok(status) => valid_status(status),
                Err(e) => Outcome::Unexpected(format!("i/o: {e}")),
            };
            let micros = started.elapsed().as_micros() as u64;
            let go_on = outcome == Outcome::Passed;
            self.ledger.ended(Class::Session, id, outcome, Some(micros));
            if !go_on {
                return;
            }
        }
    }

    async fn rpc_op(&self, class: Class, id: u64) {
        let fresh = || {
            let t = self.minters.read().unwrap().rpc.mint().bytes;
            bind_pdu(Interface::Emsmdb, RpcAuth::Krb5, AuthLevel::PktPrivacy, &t).expect("a bind encodes")
        };
        let mut pdu = match class {
            Class::RpcReplay => self.rpc_replay.lock().unwrap().pop_front().unwrap_or_default(),
            Class::RpcNtlm => ntlm_bind(),
            _ => fresh(),
        };
        let mut send = pdu.len();
        match class {
            Class::RpcMutated => *pdu.last_mut().expect("a bind") ^= 1,
            Class::RpcOverLength => pdu[8..10].copy_from_slice(&0xfff0u16.to_le_bytes()),
            Class::RpcShortSend => {
                let lie = u16::try_from(pdu.len() + 64).unwrap_or(u16::MAX);
                pdu[8..10].copy_from_slice(&lie.to_le_bytes());
            }
            Class::RpcAuthLength => lie_auth_length(&mut pdu),
            _ => {}
        }
        if pdu.len() < 16 {
            return;
        }
        pdu[12..16].copy_from_slice(&(id as u32).to_le_bytes());
        send = send.min(pdu.len());
        self.ledger.sent(class, id);
        if class == Class::RpcBind {
            self.rpc_tokens.fetch_add(1, Ordering::Relaxed);
        }
        let started = Instant::now();
        let reply = match TcpStream::connect(self.rpc).await {
            Ok(mut s) => bind_reply(&mut s, &pdu[..send]).await,
            Err(e) => Err(e),
        };
        let micros = started.elapsed().as_micros() as u64;
        let killed_lately = self
            .last_kill
            .lock()
            .unwrap()
            .is_some_and(|t| t.elapsed() < KILL_GRACE);
        let outcome = match (reply, class) {
            (Ok(Some(12)), Class::RpcBind) => Outcome::Passed,
            (Ok(None), Class::RpcBind) if killed_lately => {
                Outcome::Failover("association closed by a killed member".into())
            }
            (Ok(Some(13)), c) if c != Class::RpcBind => Outcome::Refused,
            (Ok(None), Class::RpcAuthLength) => Outcome::Refused,
            (Ok(Some(t)), _) => Outcome::Unexpected(format!("reply PDU type {t}")),
            (Ok(None), _) => Outcome::Unexpected("closed without a reply".into()),
            (Err(e), _) => Outcome::Unexpected(format!("i/o: {e}")),
        };
        if outcome == Outcome::Passed {
            let mut pool = self.rpc_replay.lock().unwrap();
            if pool.len() < REPLAY_POOL {
                pool.push_back(pdu);
            }
        }
        self.ledger.ended(class, id, outcome, Some(micros));
    }
}

/// Whether `class` goes to the RPC listener.
pub fn is_rpc(class: Class) -> bool {
    matches!(
        class,
        Class::RpcBind
            | Class::RpcReplay
            | Class::RpcMutated
            | Class::RpcNtlm
            | Class::RpcOverLength
            | Class::RpcShortSend
            | Class::RpcAuthLength
    )
}

/// 2xx passes; 502/503/504 are the documented failover answers; anything else is unexpected.
fn valid_status(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Passed,
        502..=504 => Outcome::Failover(format!("{status}")),
        s => Outcome::Unexpected(format!("status {s}")),
    }
}

/// Sends `req`, reads one response (head and `content-length` body): its status.
async fn exchange(s: &mut TcpStream, buf: &mut Vec<u8>, req: &[u8]) -> std::io::Result<u16> {
    s.write_all(req).await?;
    let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a response");
    let head = read_head(s, buf).await.ok_or_else(eof)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status"))?;
    let len: usize = super::members::header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < len {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await? {
            0 => return Err(eof()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.drain(..len);
    Ok(status)
}

/// A head that never ends: a header line every 300 ms until kedge closes the connection
/// (its `header_timeout_ms`), which is the expected refusal.
async fn slowloris(addr: SocketAddr, id: u64) -> Outcome {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Outcome::Unexpected("connect failed".into());
    };
    let start = format!("GET /soak/{id} HTTP/1.1\r\nHost: {HOST}\r\n{ID_HEADER}: {id}\r\n");
    if s.write_all(start.as_bytes()).await.is_err() {
        return Outcome::Unexpected("closed at once".into());
    }
    for n in 0..60 {
        let mut b = [0u8; 512];
        tokio::select! {
            r = s.read(&mut b) => return match r {
                Ok(0) | Err(_) => Outcome::Refused,
                Ok(_) => Outcome::Unexpected("answered an unfinished head".into()),
            },
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        if s.write_all(format!("x-slow-{n}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            return Outcome::Refused;
        }
    }
    Outcome::Unexpected("not closed within 18 s".into())
}

/// Sends `pdu` on a new association and reads the reply's PDU type (`None`: closed first).
async fn bind_reply(s: &mut TcpStream, pdu: &[u8]) -> std::io::Result<Option<u8>> {
    s.write_all(pdu).await?;
    let mut head = [0u8; 16];
    match s.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    }
    let frag = usize::from(u16::from_le_bytes([head[8], head[9]]));
    let mut rest = vec![0u8; frag.saturating_sub(16)];
    s.read_exact(&mut rest).await?;
    Ok(Some(head[2]))
}

/// An EMSMDB bind with auth type 10 carrying an NTLM NEGOTIATE.
pub fn ntlm_bind() -> Vec<u8> {
    let token = base64::engine::general_purpose::STANDARD
        .decode(NTLM_NEGOTIATE)
        .expect("a constant");
    let template =
        bind_pdu(Interface::Emsmdb, RpcAuth::Krb5, AuthLevel::PktPrivacy, &token).expect("a bind encodes");
    let mut bind = parse_bind(&template).expect("a bind parses");
    if let Some(auth) = bind.auth.as_mut() {
        auth.auth_type = AuthType::Ntlm;
    }
    bind.to_bytes(&token).expect("a bind encodes")
}

/// Makes `auth_length` claim 512 bytes more than the PDU holds.
pub fn lie_auth_length(pdu: &mut [u8]) {
    let auth = u16::from_le_bytes([pdu[10], pdu[11]]);
    pdu[10..12].copy_from_slice(&auth.saturating_add(512).to_le_bytes());
}

/// The reason kedge counts for a bind with a lying `auth_length` (`parse_bind`'s error).
pub fn auth_length_reason() -> &'static str {
    let mut pdu = ntlm_bind();
    lie_auth_length(&mut pdu);
    match parse_bind(&pdu) {
        Err(e) => e.reason(),
        Ok(_) => "parsed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lying_auth_length_bind_is_refused_by_the_parser_and_the_ntlm_bind_is_not() {
        let b = ntlm_bind();
        assert_eq!(parse_bind(&b).unwrap().auth.unwrap().auth_type, AuthType::Ntlm);
        assert_ne!(auth_length_reason(), "parsed");
    }

    #[test]
    fn only_2xx_passes_and_only_gateway_errors_are_failovers() {
        assert_eq!(valid_status(200), Outcome::Passed);
        assert_eq!(valid_status(504), Outcome::Failover("504".into()));
        assert!(matches!(valid_status(401), Outcome::Unexpected(_)));
        assert!(matches!(valid_status(500), Outcome::Unexpected(_)));
    }
}
