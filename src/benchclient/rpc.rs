//! The RPC driver: every bind on a NEW TCP connection, as a client logging on does — connect,
//! send a real bind PDU to EMSMDB (or NSPI / RFR) carrying a freshly minted token, read the reply
//! PDU (bind_ack or bind_nak), close. Latency runs from connect to the reply's last byte.
//!
//! Tokens as Microsoft RPC sends them (DESIGN.md §2, and the captures in `tests/testdata/rpc`):
//! auth 16 a bare AP-REQ with DCE-style flags 0x103e; auth 9 a GSS-wrapped SPNEGO NegTokenInit
//! offering the Microsoft Kerberos OID first, its mechToken a GSS-wrapped AP-REQ, same flags.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::krb::acceptor::Framing;
use crate::krb::crypto::Key;
use crate::krb::mint::verify_response;
use crate::rpc::{
    parse_bind_ack, parse_bind_nak, pdu_length, AckResult, AuthLevel, AuthType, AuthVerifier, BindInfo, Drep,
    PacketType, PresentationContext, SyntaxId, Uuid, EMSMDB, HEADER_LEN, NSPI, RFR,
};

use super::feed::{Feed, Local};
use super::limits::{Budget, Limits};
use super::stats::{loadavg, Report, Tally};
use super::tokens::{TokenMinter, FLAGS_DCE};
use super::BenchError;

/// Largest reply PDU read.
const MAX_REPLY: usize = 65_535;
/// `auth_context_id` of the binds (the value impacket uses; any constant will do).
const AUTH_CONTEXT_ID: u32 = 79_231;
/// max_xmit_frag / max_recv_frag offered (as in the captures).
const MAX_FRAG: u16 = 4280;

/// The RPC interface bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    /// EMSMDB 0.81 (`exchangeMDB`).
    Emsmdb,
    /// NSPI 56.0 (`exchangeAB`).
    Nspi,
    /// RFR 1.0 (`exchangeRFR`).
    Rfr,
}

impl Interface {
    /// Parses `emsmdb`, `nspi` or `rfr`.
    pub fn parse(s: &str) -> Result<Self, BenchError> {
        match s.to_ascii_lowercase().as_str() {
            "emsmdb" => Ok(Self::Emsmdb),
            "nspi" => Ok(Self::Nspi),
            "rfr" => Ok(Self::Rfr),
            _ => Err(BenchError::Invalid(format!(
                "interface {s:?}: want emsmdb, nspi or rfr"
            ))),
        }
    }
    fn syntax(self) -> SyntaxId {
        let (uuid, major, minor): (Uuid, u16, u16) = match self {
            Self::Emsmdb => (EMSMDB, 0, 81),
            Self::Nspi => (NSPI, 56, 0),
            Self::Rfr => (RFR, 1, 0),
        };
        SyntaxId { uuid, major, minor }
    }
}

/// The RPC auth type of the binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcAuth {
    /// 16, RPC_C_AUTHN_GSS_KERBEROS: a bare AP-REQ.
    Krb5,
    /// 9, RPC_C_AUTHN_GSS_NEGOTIATE: SPNEGO.
    Spnego,
}

impl RpcAuth {
    /// Parses `16` or `9`.
    pub fn parse(s: &str) -> Result<Self, BenchError> {
        match s {
            "16" | "krb5" | "kerberos" => Ok(Self::Krb5),
            "9" | "spnego" | "negotiate" => Ok(Self::Spnego),
            _ => Err(BenchError::Invalid(format!("auth type {s:?}: want 16 or 9"))),
        }
    }
    /// The token framing for this auth type.
    pub fn framing(self) -> Framing {
        match self {
            Self::Krb5 => Framing::Bare,
            Self::Spnego => Framing::Spnego { legacy_oid: true },
        }
    }
    /// The GSS flags Microsoft RPC sends (DCE style).
    pub fn gss_flags(self) -> u32 {
        FLAGS_DCE
    }
    fn auth_type(self) -> AuthType {
        match self {
            Self::Krb5 => AuthType::Krb5,
            Self::Spnego => AuthType::Spnego,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Krb5 => "auth16",
            Self::Spnego => "auth9",
        }
    }
}

/// Builds a first bind to `iface` (call_id 1, new association group, NDR 2.0, little endian)
/// with `token` as its auth value.
pub fn bind_pdu(
    iface: Interface,
    auth: RpcAuth,
    level: AuthLevel,
    token: &[u8],
) -> Result<Vec<u8>, BenchError> {
    let bind = BindInfo {
        ptype: PacketType::Bind,
        rpc_vers_minor: 0,
        pfc_flags: crate::rpc::PFC_FIRST_FRAG | crate::rpc::PFC_LAST_FRAG,
        call_id: 1,
        drep: Drep::LITTLE_ENDIAN,
        max_xmit_frag: MAX_FRAG,
        max_recv_frag: MAX_FRAG,
        assoc_group_id: 0,
        contexts: vec![PresentationContext {
            context_id: 0,
            abstract_syntax: iface.syntax(),
            transfer_syntaxes: vec![SyntaxId::NDR],
        }],
        auth: Some(AuthVerifier {
            auth_type: auth.auth_type(),
            auth_level: level,
            auth_pad_length: 0,
            auth_reserved: 0,
            auth_context_id: AUTH_CONTEXT_ID,
            token_range: 0..0,
        }),
    };
    Ok(bind.to_bytes(token)?)
}

/// What to drive and how.
#[derive(Clone, Debug)]
pub struct RpcOptions {
    /// The RPC endpoint (kedge's RPC listener).
    pub addr: SocketAddr,
    /// Auth type of the binds.
    pub auth: RpcAuth,
    /// Auth level (2 connect as tools send, 6 privacy as Outlook sends).
    pub level: AuthLevel,
    /// Interface bound to.
    pub interface: Interface,
    /// Concurrent binds in flight.
    pub connections: usize,
    /// Run bounds.
    pub limits: Limits,
    /// Check the AP-REP in each bind_ack's auth verifier.
    pub mutual: bool,
    /// Per-bind timeout.
    pub timeout: Duration,
}

/// One ready bind PDU and the session key of its token.
pub struct RpcBind {
    /// The bind PDU.
    pub pdu: Vec<u8>,
    /// The ticket session key.
    pub session_key: Key,
}

/// A feed of bind PDUs from `minter` (whose framing and flags must suit `auth`).
pub fn bind_feed(
    minter: Arc<TokenMinter>,
    iface: Interface,
    auth: RpcAuth,
    level: AuthLevel,
    threads: usize,
) -> Feed<RpcBind> {
    let make = move || {
        let t = minter.mint();
        RpcBind {
            pdu: bind_pdu(iface, auth, level, &t.bytes).unwrap_or_default(),
            session_key: t.session_key,
        }
    };
    Feed::start(threads, 64, 64, Arc::new(make))
}

/// Marks a connect failure already counted (with its message) by `exchange`.
const CONNECT_RECORDED: &str = "connect (recorded)";

/// How one bind ended.
enum Outcome {
    Ack { ap_rep: Option<Vec<u8>> },
    AckRejected(u16),
    Nak(u16),
    Other(u8),
}

/// Runs the load and returns its report.
pub async fn run(opts: RpcOptions, feed: Arc<Feed<RpcBind>>) -> Result<Report, BenchError> {
    opts.limits.validate()?;
    if opts.connections == 0 {
        return Err(BenchError::Invalid("--connections must be at least 1".into()));
    }
    feed.wait_full(Duration::from_secs(10));
    let load_start = loadavg();
    let start = Instant::now();
    let budget = Arc::new(Budget::start(opts.limits, start));
    let opts = Arc::new(opts);
    let mut workers = Vec::with_capacity(opts.connections);
    for _ in 0..opts.connections {
        let (opts, budget, feed) = (opts.clone(), budget.clone(), feed.clone());
        workers.push(tokio::spawn(async move { worker(&opts, &budget, &feed).await }));
    }
    let mut tally = Tally::new();
    for w in workers {
        if let Ok(t) = w.await {
            tally.merge(&t);
        }
    }
    let elapsed = start.elapsed();
    let mut report = Report::new(
        "rpc",
        opts.addr.to_string(),
        opts.auth.name().to_owned(),
        opts.connections,
        elapsed,
        &tally,
    );
    report.mint = Some(feed.stats());
    report.loadavg_start = load_start;
    report.paced_rate = opts.limits.rate;
    report.loadavg_end = loadavg();
    Ok(report)
}

async fn worker(opts: &RpcOptions, budget: &Budget, feed: &Feed<RpcBind>) -> Tally {
    let mut tally = Tally::new();
    let mut local = Local::default();
    while budget.take() {
        let bind = feed.next(&mut local);
        let t0 = budget.pace().await;
        let r = tokio::time::timeout(opts.timeout, exchange(opts.addr, &bind.pdu, &mut tally)).await;
        let outcome = match r {
            Err(_) => {
                tally.error("timeout");
                continue;
            }
            Ok(Err(CONNECT_RECORDED)) => {
                // Back off a little so a refused port does not spin the core the server needs.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Ok(Err(kind)) => {
                tally.error(kind);
                continue;
            }
            Ok(Ok(o)) => o,
        };
        let elapsed = t0.elapsed();
        match outcome {
            Outcome::Ack { ap_rep } => {
                tally.completed(elapsed, "bind_ack", true);
                if opts.mutual {
                    match ap_rep.map(|t| verify_response(&t, &bind.session_key)) {
                        Some(Ok(_)) => tally.mutual_ok += 1,
                        _ => tally.error("mutual"),
                    }
                }
            }
            Outcome::AckRejected(r) => {
                tally.completed(elapsed, "bind_ack rejected", false);
                tally.error(&format!("bind_ack context rejected (result {r})"));
            }
            Outcome::Nak(reason) => {
                tally.completed(elapsed, "bind_nak", false);
                tally.error(&format!("bind_nak reason {reason}"));
            }
            Outcome::Other(t) => {
                tally.completed(elapsed, "other", false);
                tally.error(&format!("unexpected PDU type {t}"));
            }
        }
    }
    tally
}

/// Connects, sends the bind, reads one reply PDU. Errors name their kind.
async fn exchange(addr: SocketAddr, pdu: &[u8], tally: &mut Tally) -> Result<Outcome, &'static str> {
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => {
            tally.error_with("connect", format!("{addr}: {e}"));
            return Err(CONNECT_RECORDED);
        }
    };
    tally.connects += 1;
    tally.tokens_sent += 1;
    let _ = s.set_nodelay(true);
    s.write_all(pdu).await.map_err(|_| "write")?;
    let mut reply = vec![0u8; HEADER_LEN];
    s.read_exact(&mut reply).await.map_err(|_| "closed")?;
    let len = pdu_length(&reply, MAX_REPLY).map_err(|_| "bad reply")?;
    if len < HEADER_LEN {
        return Err("bad reply");
    }
    reply.resize(len, 0);
    s.read_exact(&mut reply[HEADER_LEN..])
        .await
        .map_err(|_| "closed")?;
    match PacketType::from_code(reply[2]) {
        PacketType::BindAck => {
            let ack = parse_bind_ack(&reply).map_err(|_| "bad reply")?;
            match ack.results.first().map(|r| r.result) {
                Some(AckResult::Acceptance) => Ok(Outcome::Ack {
                    ap_rep: ack
                        .auth
                        .as_ref()
                        .and_then(|a| a.token(&reply))
                        .map(<[u8]>::to_vec),
                }),
                Some(other) => Ok(Outcome::AckRejected(other.code())),
                None => Err("bad reply"),
            }
        }
        PacketType::BindNak => {
            let nak = parse_bind_nak(&reply).map_err(|_| "bad reply")?;
            Ok(Outcome::Nak(nak.reason.code()))
        }
        t => Ok(Outcome::Other(t.code())),
    }
}
