//! Inbound PROXY protocol (v1 and v2) on a listener: a kedge behind an L4 balancer (a cloud
//! NLB, a Kubernetes Service with `externalTrafficPolicy: Cluster`, HAProxy `send-proxy`) learns
//! the client's address from the header the balancer writes in front of each connection.
//!
//! `proxy_protocol = { trusted = ["10.0.0.0/8"], required = true }` on an HTTP or RPC listener:
//!
//! - A connection from a **trusted** source must start with a header when `required` (the
//!   default); without `required` a header is used when one is there. The header is read before
//!   anything else (before the TLS handshake), within the listener's head / bind timeout, and
//!   exactly its bytes are consumed ([`header::parse`]). Its source address then *is* the
//!   client everywhere: per-source limits, `X-Forwarded-For` / `Forwarded`, logs, the access
//!   log, `/status` top talkers. A `LOCAL` header (the balancer's health check) or `UNKNOWN`
//!   keeps the connection's own peer.
//! - A connection from an **untrusted** source is refused when `required`; without `required`
//!   it is served as a direct client and its bytes are never read as a header (a forged header
//!   is then data: HTTP 400, a failed TLS handshake, an RPC version error).
//! - A malformed, oversized or missing-but-required header closes the connection, counted as
//!   `kedge_limit_exceeded_total{limit="proxy_protocol"}` and logged with the reason.

pub mod header;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::edge::source_limits::{SourceGuard, SourceLimits};
use header::Parsed;
pub use header::{ProxyHeader, ProxyHeaderError};

/// `proxy_protocol = { … }` of a listener.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProxyProtocolConfig {
    /// Sources (the balancers) whose headers are believed: addresses or CIDR blocks
    /// (`"10.0.0.0/8"`, `"127.0.0.1"`, `"2001:db8::/32"`). Required, not empty.
    pub trusted: Vec<Cidr>,
    /// Every connection must come from a trusted source and start with a header (default
    /// true). False: trusted sources may send one, others are served as direct clients.
    #[serde(default = "default_required")]
    pub required: bool,
    /// Largest v2 address-and-TLV block taken, bytes (default 2,048; AWS, Azure and GCP send
    /// well under 300).
    #[serde(default = "default_max_v2_bytes")]
    pub max_v2_bytes: usize,
}

fn default_required() -> bool {
    true
}
fn default_max_v2_bytes() -> usize {
    2048
}

impl ProxyProtocolConfig {
    /// Problems of this block, each with `path`.
    pub fn validate(&self, path: &str, problems: &mut Vec<String>) {
        if self.trusted.is_empty() {
            problems.push(format!("{path}.trusted: empty (name the balancers' addresses)"));
        }
        if !(16..=65_535).contains(&self.max_v2_bytes) {
            problems.push(format!(
                "{path}.max_v2_bytes: {} is not between 16 and 65535",
                self.max_v2_bytes
            ));
        }
    }

    /// Whether `ip` is a trusted source.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|c| c.contains(ip))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, a dual-stack socket's view) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address block: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), u32::from(a).into(), 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => masked(u128::from(n), u128::from(a), 128, self.prefix),
            _ => false,
        }
    }
}

fn masked(net: u128, addr: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (net >> shift) == (addr >> shift)
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = ip
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
        let net = canonical(net);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length is not 0..={max}"))?,
        };
        Ok(Cidr { net, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a connection on a PROXY-protocol listener is closed before it is served.
#[derive(Debug, thiserror::Error)]
pub enum ProxyRefusal {
    /// `required`, and the source is not a trusted balancer.
    #[error("source is not a trusted PROXY-protocol sender")]
    Untrusted,
    /// `required`, and the connection does not start with a header.
    #[error("no PROXY header")]
    Missing,
    /// The header is malformed or too long.
    #[error(transparent)]
    Bad(#[from] ProxyHeaderError),
    /// Not complete within the timeout.
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    /// The connection closed or failed first.
    #[error("connection ended before the PROXY header: {0}")]
    Io(std::io::Error),
}

impl ProxyRefusal {
    /// A stable label for logs and the access log.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Untrusted => "proxy_untrusted_source",
            Self::Missing => "proxy_header_missing",
            Self::Bad(e) => e.label(),
            Self::Timeout(_) => "proxy_header_timeout",
            Self::Io(_) => "proxy_header_io",
        }
    }
}

/// The client of a connection on a PROXY-protocol listener: the header's source where a trusted
/// balancer sent one, else the connection's own peer (see the module docs for who is refused).
/// Consumes exactly the header's bytes.
pub async fn client_address(
    stream: &mut TcpStream,
    peer: SocketAddr,
    cfg: &ProxyProtocolConfig,
    timeout: Duration,
) -> Result<SocketAddr, ProxyRefusal> {
    if !cfg.trusts(peer.ip()) {
        return if cfg.required {
            Err(ProxyRefusal::Untrusted)
        } else {
            Ok(peer)
        };
    }
    match tokio::time::timeout(timeout, read_header(stream, cfg)).await {
        Ok(Ok(Some(h))) => Ok(h.source.unwrap_or(peer)),
        Ok(Ok(None)) if cfg.required => Err(ProxyRefusal::Missing),
        Ok(Ok(None)) => Ok(peer),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ProxyRefusal::Timeout(timeout)),
    }
}

/// A connection of a PROXY-protocol listener let in: its client, the balancer that named it
/// (where it is another address), and the client's place in the per-source counts.
#[derive(Debug)]
pub struct Admitted {
    /// The client.
    pub peer: SocketAddr,
    /// The balancer, where a header named another address.
    pub via: Option<SocketAddr>,
    /// The client's place in the listener's per-source counts.
    pub source: SourceGuard,
}

/// The door of a PROXY-protocol listener: the header ([`client_address`], within `timeout`),
/// then the per-source limits for the client it names. A refusal is counted
/// (`kedge_limit_exceeded_total{limit="proxy_protocol"}` or the per-source limit) and logged
/// with its reason, and the connection is to be closed unanswered (`None`).
pub async fn admit(
    stream: &mut TcpStream,
    via: SocketAddr,
    (listener, cfg): (&str, &ProxyProtocolConfig),
    timeout: Duration,
    sources: &Arc<SourceLimits>,
) -> Option<Admitted> {
    let peer = match client_address(stream, via, cfg, timeout).await {
        Ok(peer) => peer,
        Err(e) => {
            crate::observe::limit_exceeded(listener, "proxy_protocol");
            tracing::info!(listener, peer = %via, reason = e.label(), error = %e, "connection refused");
            return None;
        }
    };
    match sources.admit(peer.ip(), std::time::Instant::now()) {
        Ok(source) => Some(Admitted {
            peer,
            via: (peer != via).then_some(via),
            source,
        }),
        Err(refusal) => {
            crate::observe::limit_exceeded(listener, refusal.label());
            tracing::info!(listener, %peer, %via, reason = refusal.label(), "connection refused");
            None
        }
    }
}

/// Reads a header if the connection starts with one, consuming exactly its bytes: what is
/// looked at but not yet known to be header is only peeked, never read.
pub async fn read_header(
    stream: &mut TcpStream,
    cfg: &ProxyProtocolConfig,
) -> Result<Option<ProxyHeader>, ProxyRefusal> {
    // Header bytes already taken from the socket, then a look at what follows them.
    let mut taken: Vec<u8> = Vec::new();
    let mut look = [0u8; 256];
    let mut view: Vec<u8> = Vec::with_capacity(256);
    loop {
        let n = stream.peek(&mut look).await.map_err(ProxyRefusal::Io)?;
        if n == 0 {
            return Err(ProxyRefusal::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        view.clear();
        view.extend_from_slice(&taken);
        view.extend_from_slice(&look[..n]);
        match header::parse(&view, cfg.max_v2_bytes)? {
            Parsed::Complete { len, header } => {
                let mut rest = vec![0u8; len - taken.len()];
                stream.read_exact(&mut rest).await.map_err(ProxyRefusal::Io)?;
                return Ok(Some(header));
            }
            Parsed::NotProxy if taken.is_empty() => return Ok(None),
            Parsed::NotProxy => return Err(ProxyRefusal::Missing),
            // Every byte seen belongs to the header: take them, and wait for more.
            Parsed::Incomplete { header: true } => take(stream, &mut taken, n).await?,
            // A few bytes that may start a header; where one is required, nothing else is
            // acceptable anyway, so they are taken; else look again shortly (a balancer writes
            // its header in one segment, so this is rare).
            Parsed::Incomplete { header: false } if cfg.required => take(stream, &mut taken, n).await?,
            Parsed::Incomplete { header: false } => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

async fn take(stream: &mut TcpStream, taken: &mut Vec<u8>, n: usize) -> Result<(), ProxyRefusal> {
    let at = taken.len();
    taken.resize(at + n, 0);
    stream
        .read_exact(&mut taken[at..])
        .await
        .map_err(ProxyRefusal::Io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(trusted: &[&str], required: bool) -> ProxyProtocolConfig {
        ProxyProtocolConfig {
            trusted: trusted.iter().map(|s| s.parse().expect("cidr")).collect(),
            required,
            max_v2_bytes: 2048,
        }
    }

    #[test]
    fn cidr_blocks_contain_their_addresses_only() {
        let c = cfg(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"], true);
        assert!(c.trusts("10.200.1.1".parse().unwrap()));
        assert!(
            c.trusts("::ffff:10.0.0.1".parse().unwrap()),
            "v4-mapped counts as v4"
        );
        assert!(c.trusts("192.0.2.7".parse().unwrap()));
        assert!(!c.trusts("192.0.2.8".parse().unwrap()));
        assert!(c.trusts("2001:db8:1::5".parse().unwrap()));
        assert!(!c.trusts("2001:db9::5".parse().unwrap()));
        assert!(!c.trusts("11.0.0.1".parse().unwrap()));
        assert!(cfg(&["0.0.0.0/0"], true).trusts("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn bad_cidr_blocks_are_refused_with_their_text() {
        for bad in ["10.0.0.0/33", "10.0.0/8", "host", "2001:db8::/129", "10.0.0.0/"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_needs_a_trusted_source() {
        let mut p = Vec::new();
        cfg(&[], true).validate("http[0].proxy_protocol", &mut p);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("http[0].proxy_protocol.trusted"));
    }

    async fn pair() -> (TcpStream, TcpStream, SocketAddr) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, peer) = l.accept().await.unwrap();
        (client, server, peer)
    }

    #[tokio::test]
    async fn exactly_the_header_is_consumed_even_when_it_arrives_in_pieces() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut server, peer) = pair().await;
        let h = header::encode_v2(
            "203.0.113.7:4000".parse().unwrap(),
            "10.0.0.1:443".parse().unwrap(),
            &[],
        );
        let c = cfg(&["127.0.0.1/32"], true);
        let writer = tokio::spawn(async move {
            for chunk in h.chunks(5) {
                client.write_all(chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            client.write_all(b"hello").await.unwrap();
            client
        });
        let got = client_address(&mut server, peer, &c, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(got, "203.0.113.7:4000".parse().unwrap());
        let mut rest = [0u8; 5];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"hello");
        drop(writer.await);
    }

    #[tokio::test]
    async fn a_trusted_source_without_a_header_is_refused_only_when_required() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut server, peer) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let required = cfg(&["127.0.0.1/32"], true);
        let r = client_address(&mut server, peer, &required, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(ProxyRefusal::Missing)), "{r:?}");
        let optional = cfg(&["127.0.0.1/32"], false);
        assert_eq!(
            client_address(&mut server, peer, &optional, Duration::from_secs(5))
                .await
                .unwrap(),
            peer
        );
        let mut first = [0u8; 3];
        server.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"GET", "nothing of the request was consumed");
    }

    #[tokio::test]
    async fn a_silent_balancer_times_out() {
        let (_client, mut server, peer) = pair().await;
        let r = client_address(
            &mut server,
            peer,
            &cfg(&["127.0.0.1/32"], true),
            Duration::from_millis(50),
        )
        .await;
        assert!(matches!(r, Err(ProxyRefusal::Timeout(_))), "{r:?}");
    }

    #[tokio::test]
    async fn an_untrusted_source_is_refused_when_required_and_served_as_itself_otherwise() {
        let (_client, mut server, peer) = pair().await;
        let r = client_address(
            &mut server,
            peer,
            &cfg(&["10.0.0.0/8"], true),
            Duration::from_secs(1),
        )
        .await;
        assert!(matches!(r, Err(ProxyRefusal::Untrusted)));
        let r = client_address(
            &mut server,
            peer,
            &cfg(&["10.0.0.0/8"], false),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(r.unwrap(), peer);
    }
}
