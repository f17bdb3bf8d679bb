//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1 and 2): what an L4
//! balancer (a cloud NLB, HAProxy `send-proxy`, a Kubernetes ingress) writes in front of a
//! connection to name the client it accepted.
//!
//! I/O-free: [`parse`] looks at the bytes received so far and says whether they are no PROXY
//! header at all, the start of one, or a whole one and how long it is. The caller
//! ([`super::read_header`]) consumes exactly that many bytes, so whatever follows (a TLS
//! ClientHello, an HTTP request, an RPC bind) is left in the socket untouched.
//!
//! Bounds: a v1 header is at most 107 bytes (spec §2.1); a v2 header's length field is checked
//! against `max_v2_bytes` as soon as its 16-byte fixed part is there, before anything more is
//! read. TLVs are skipped without being looked at (only their total length matters).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12-byte signature that starts a v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// What starts a v1 header.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 header, CRLF included (spec §2.1).
pub const V1_MAX: usize = 107;
/// The fixed part of a v2 header: signature, version/command, family/protocol, length.
const V2_FIXED: usize = 16;

/// What the PROXY header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// The client's address as the balancer saw it; `None` for a v2 `LOCAL` command (the
    /// balancer's own health check), v1 `UNKNOWN`, or an address family without a socket
    /// address (`AF_UNSPEC`, `AF_UNIX`): the connection's own peer stands.
    pub source: Option<SocketAddr>,
    /// The address the client connected to.
    pub destination: Option<SocketAddr>,
}

/// How far the bytes so far go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes cannot start a PROXY header.
    NotProxy,
    /// A PROXY header may follow: more bytes are needed. `header` says whether the signature is
    /// complete (every byte so far belongs to the header, none to the data after it).
    Incomplete {
        /// The v1 prefix or the v2 signature was seen whole.
        header: bool,
    },
    /// A whole header of `len` bytes.
    Complete {
        /// Bytes of the header (consume exactly these).
        len: usize,
        /// What it says.
        header: ProxyHeader,
    },
}

/// Why a PROXY header is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// A v1 line longer than 107 bytes without its CRLF.
    #[error("PROXY v1 line longer than {V1_MAX} bytes")]
    V1TooLong,
    /// A v1 line that does not follow the grammar.
    #[error("PROXY v1 line malformed: {0}")]
    V1Malformed(&'static str),
    /// A v2 version nibble other than 2.
    #[error("PROXY v2 version {0} is not 2")]
    V2Version(u8),
    /// A v2 command other than LOCAL (0) and PROXY (1).
    #[error("PROXY v2 command {0} is not LOCAL or PROXY")]
    V2Command(u8),
    /// A v2 address family or transport kedge does not take (datagram, unknown values).
    #[error("PROXY v2 family/protocol byte {0:#04x} is not supported")]
    V2Family(u8),
    /// A v2 length too short for its address family.
    #[error("PROXY v2 length {len} is too short for the address block ({need} bytes)")]
    V2Short {
        /// The length field.
        len: usize,
        /// What the family needs.
        need: usize,
    },
    /// A v2 length over the configured maximum.
    #[error("PROXY v2 length {len} is over the limit of {max} bytes")]
    V2TooLong {
        /// The length field.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl ProxyHeaderError {
    /// A stable label for metrics and the access log.
    pub fn label(&self) -> &'static str {
        match self {
            Self::V1TooLong => "proxy_v1_too_long",
            Self::V1Malformed(_) => "proxy_v1_malformed",
            Self::V2Version(_) | Self::V2Command(_) => "proxy_v2_malformed",
            Self::V2Family(_) => "proxy_v2_family",
            Self::V2Short { .. } => "proxy_v2_malformed",
            Self::V2TooLong { .. } => "proxy_v2_too_long",
        }
    }
}

/// Looks at the first bytes of a connection (see the module docs). `max_v2_bytes` bounds a v2
/// header's variable part (addresses and TLVs).
pub fn parse(buf: &[u8], max_v2_bytes: usize) -> Result<Parsed, ProxyHeaderError> {
    if starts(buf, &V2_SIGNATURE) {
        if buf.len() < V2_SIGNATURE.len() {
            return Ok(Parsed::Incomplete { header: false });
        }
        return parse_v2(buf, max_v2_bytes);
    }
    if starts(buf, V1_PREFIX) {
        if buf.len() < V1_PREFIX.len() {
            return Ok(Parsed::Incomplete { header: false });
        }
        return parse_v1(buf);
    }
    Ok(Parsed::NotProxy)
}

/// Whether `buf` and `sig` agree on their common length.
fn starts(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf[..n] == sig[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX {
            return Err(ProxyHeaderError::V1TooLong);
        }
        return Ok(Parsed::Incomplete { header: true });
    };
    let line = std::str::from_utf8(&window[V1_PREFIX.len()..cr])
        .map_err(|_| ProxyHeaderError::V1Malformed("not ASCII"))?;
    let len = cr + 2;
    let mut words = line.split(' ');
    let family = words.next().unwrap_or_default();
    if family == "UNKNOWN" {
        // The rest of the line is to be ignored (spec §2.1).
        let header = ProxyHeader {
            version: 1,
            source: None,
            destination: None,
        };
        return Ok(Parsed::Complete { len, header });
    }
    let v6 = match family {
        "TCP4" => false,
        "TCP6" => true,
        _ => {
            return Err(ProxyHeaderError::V1Malformed(
                "family is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let fields: Vec<&str> = words.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(ProxyHeaderError::V1Malformed("not four address fields"));
    };
    let ip = |s: &str| -> Result<IpAddr, ProxyHeaderError> {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| ProxyHeaderError::V1Malformed("bad address"))?;
        if ip.is_ipv6() != v6 {
            return Err(ProxyHeaderError::V1Malformed("address of the other family"));
        }
        Ok(ip)
    };
    let header = ProxyHeader {
        version: 1,
        source: Some(SocketAddr::new(ip(src)?, v1_port(sport)?)),
        destination: Some(SocketAddr::new(ip(dst)?, v1_port(dport)?)),
    };
    Ok(Parsed::Complete { len, header })
}

/// A v1 port: decimal, no sign, no leading zero (spec §2.1), 0–65535.
fn v1_port(s: &str) -> Result<u16, ProxyHeaderError> {
    let bad = ProxyHeaderError::V1Malformed("bad port");
    if s.is_empty()
        || s.len() > 5
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(bad);
    }
    s.parse().map_err(|_| bad)
}

fn parse_v2(buf: &[u8], max_v2_bytes: usize) -> Result<Parsed, ProxyHeaderError> {
    if buf.len() < V2_FIXED {
        return Ok(Parsed::Incomplete { header: true });
    }
    let (ver_cmd, fam) = (buf[12], buf[13]);
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::V2Version(ver_cmd >> 4));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        c => return Err(ProxyHeaderError::V2Command(c)),
    };
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > max_v2_bytes {
        return Err(ProxyHeaderError::V2TooLong {
            len,
            max: max_v2_bytes,
        });
    }
    // Families: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX; transports: 0 UNSPEC, 1 STREAM.
    let need = match fam {
        0x00 => 0,
        0x11 => 12,
        0x21 => 36,
        0x31 => 216,
        f if local => {
            // A LOCAL header's address block is to be ignored whatever it holds.
            let _ = f;
            0
        }
        f => return Err(ProxyHeaderError::V2Family(f)),
    };
    if len < need {
        return Err(ProxyHeaderError::V2Short { len, need });
    }
    if buf.len() < V2_FIXED + len {
        return Ok(Parsed::Incomplete { header: true });
    }
    let body = &buf[V2_FIXED..V2_FIXED + len];
    let (source, destination) = if local {
        (None, None)
    } else {
        v2_addresses(fam, body)
    };
    let header = ProxyHeader {
        version: 2,
        source,
        destination,
    };
    Ok(Parsed::Complete {
        len: V2_FIXED + len,
        header,
    })
}

/// The source and destination of a v2 address block (its length already checked).
fn v2_addresses(fam: u8, b: &[u8]) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let port = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    match fam {
        0x11 => {
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]));
            (
                Some(SocketAddr::new(ip(0), port(8))),
                Some(SocketAddr::new(ip(4), port(10))),
            )
        }
        0x21 => {
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            (
                Some(SocketAddr::new(ip(0), port(32))),
                Some(SocketAddr::new(ip(16), port(34))),
            )
        }
        // UNSPEC and UNIX name no IP client: the connection's own peer stands.
        _ => (None, None),
    }
}

/// A v2 header for `source` → `destination` (PROXY command, TCP), with `tlv` bytes appended
/// (tests, the fuzz seeds, and clients kedge's own tools may make).
pub fn encode_v2(source: SocketAddr, destination: SocketAddr, tlv: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x21);
    let mut body = Vec::new();
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            body.extend_from_slice(&s.port().to_be_bytes());
            body.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            out.push(0x21);
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            body.extend_from_slice(&v6(s).octets());
            body.extend_from_slice(&v6(d).octets());
            body.extend_from_slice(&s.port().to_be_bytes());
            body.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    body.extend_from_slice(tlv);
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body[..usize::from(len)]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 2048;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn complete(buf: &[u8]) -> (usize, ProxyHeader) {
        match parse(buf, MAX) {
            Ok(Parsed::Complete { len, header }) => (len, header),
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn a_v1_tcp4_line_names_client_and_destination_and_its_length() {
        let line = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\nGET / HTTP/1.1\r\n";
        let (len, h) = complete(line);
        assert_eq!(&line[len..len + 3], b"GET");
        assert_eq!(h.version, 1);
        assert_eq!(h.source, Some(addr("203.0.113.7:51234")));
        assert_eq!(h.destination, Some(addr("192.0.2.1:443")));
    }

    #[test]
    fn a_v1_tcp6_line_parses() {
        let (_, h) = complete(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n");
        assert_eq!(h.source, Some(addr("[2001:db8::7]:40000")));
    }

    #[test]
    fn v1_unknown_keeps_the_real_peer() {
        let (len, h) = complete(b"PROXY UNKNOWN ffff::1 whatever\r\nrest");
        assert_eq!(len, 32);
        assert_eq!(h.source, None);
        assert_eq!(complete(b"PROXY UNKNOWN\r\n").0, 15);
    }

    #[test]
    fn v1_with_bad_addresses_ports_or_fields_is_refused() {
        for bad in [
            &b"PROXY TCP4 203.0.113.300 192.0.2.1 1 2\r\n"[..],
            b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n",
            b"PROXY TCP6 203.0.113.7 2001:db8::1 1 2\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 443\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 0443 443\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 -1 443\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 443\r\n",
            b"PROXY TCP4 203.0.113.7  192.0.2.1 1 443\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 1 443 extra\r\n",
            b"PROXY UDP4 203.0.113.7 192.0.2.1 1 443\r\n",
            b"PROXY TCP4 203.0.113.7\n192.0.2.1 1 443\r\n",
            b"PROXY TCP4 \xff\xfe 192.0.2.1 1 443\r\n",
        ] {
            assert!(
                matches!(parse(bad, MAX), Err(ProxyHeaderError::V1Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_v1_line_without_crlf_in_107_bytes_is_refused() {
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(200, b'1');
        assert_eq!(parse(&long, MAX), Err(ProxyHeaderError::V1TooLong));
        assert_eq!(parse(&long[..106], MAX), Ok(Parsed::Incomplete { header: true }));
    }

    #[test]
    fn a_v2_tcp4_header_with_tlvs_names_the_client() {
        let tlv = [0x04, 0x00, 0x03, b'a', b'b', b'c'];
        let mut h = encode_v2(addr("203.0.113.7:51234"), addr("10.0.0.5:443"), &tlv);
        let header_len = h.len();
        h.extend_from_slice(b"\x16\x03\x01");
        let (len, p) = complete(&h);
        assert_eq!(len, header_len);
        assert_eq!((p.version, p.source), (2, Some(addr("203.0.113.7:51234"))));
        assert_eq!(p.destination, Some(addr("10.0.0.5:443")));
    }

    #[test]
    fn a_v2_tcp6_header_parses() {
        let h = encode_v2(addr("[2001:db8::7]:1"), addr("[2001:db8::1]:443"), &[]);
        assert_eq!(complete(&h).1.source, Some(addr("[2001:db8::7]:1")));
    }

    #[test]
    fn v2_local_keeps_the_real_peer() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(
            complete(&h),
            (
                16,
                ProxyHeader {
                    version: 2,
                    source: None,
                    destination: None
                }
            )
        );
    }

    #[test]
    fn v2_unix_and_unspec_families_keep_the_real_peer() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x31, 0x00, 216]);
        h.extend_from_slice(&[0u8; 216]);
        assert_eq!(complete(&h).1.source, None);
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
        assert_eq!(complete(&h).1.source, None);
    }

    #[test]
    fn v2_lying_lengths_are_refused_before_the_body_is_read() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(
            parse(&h, MAX),
            Err(ProxyHeaderError::V2TooLong {
                len: 65_535,
                max: MAX
            })
        );
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]);
        assert_eq!(
            parse(&h, MAX),
            Err(ProxyHeaderError::V2Short { len: 4, need: 12 })
        );
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x21, 0x00, 0x0c]);
        assert!(matches!(parse(&h, MAX), Err(ProxyHeaderError::V2Short { .. })));
    }

    #[test]
    fn v2_bad_version_command_or_family_is_refused() {
        let with = |b12: u8, b13: u8| {
            let mut h = V2_SIGNATURE.to_vec();
            h.extend_from_slice(&[b12, b13, 0x00, 0x0c]);
            h.extend_from_slice(&[0u8; 12]);
            parse(&h, MAX)
        };
        assert_eq!(with(0x11, 0x11), Err(ProxyHeaderError::V2Version(1)));
        assert_eq!(with(0x22, 0x11), Err(ProxyHeaderError::V2Command(2)));
        assert_eq!(with(0x21, 0x12), Err(ProxyHeaderError::V2Family(0x12)));
        assert_eq!(with(0x21, 0x41), Err(ProxyHeaderError::V2Family(0x41)));
        assert!(matches!(with(0x20, 0x12), Ok(Parsed::Complete { len: 28, .. })));
    }

    #[test]
    fn every_truncation_of_a_header_is_incomplete_never_an_error() {
        let v2 = encode_v2(addr("203.0.113.7:51234"), addr("10.0.0.5:443"), &[1, 0, 1, 9]);
        let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n".to_vec();
        for h in [v2, v1] {
            for n in 1..h.len() {
                assert!(
                    matches!(parse(&h[..n], MAX), Ok(Parsed::Incomplete { .. })),
                    "{n}"
                );
            }
            assert_eq!(parse(&h[..1], MAX), Ok(Parsed::Incomplete { header: false }));
        }
    }

    #[test]
    fn other_first_bytes_are_not_a_header() {
        for data in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01\x02",
            b"\x05\x00\x0b\x03",
            b"PROXZ",
            b"\r\n\r\n\0\r\nQUIT!",
        ] {
            assert_eq!(parse(data, MAX), Ok(Parsed::NotProxy), "{data:?}");
        }
        assert_eq!(parse(b"", MAX), Ok(Parsed::Incomplete { header: false }));
    }
}
