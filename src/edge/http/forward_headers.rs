//! Headers a proxy owns: hop-by-hop headers (RFC 9110 §7.6.1) are dropped in both directions,
//! and the client's address goes to the backend in `X-Forwarded-For`, `X-Forwarded-Proto` and
//! `Forwarded` (RFC 7239).
//!
//! kedge is the first trusted hop: forwarding headers a client sent are replaced, never
//! appended to, so a client cannot put another address in front of its own. `Authorization` is
//! end-to-end and always kept (passthrough backends complete their own logon with it).

use std::net::{IpAddr, SocketAddr};

use http::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static PROXY_AUTHENTICATE: HeaderName = HeaderName::from_static("proxy-authenticate");
static PROXY_AUTHORIZATION: HeaderName = HeaderName::from_static("proxy-authorization");

/// Removes every client header that a backend could take for one of kedge's `identity`
/// headers: the same name compared case-insensitively with every character other than a letter
/// or digit read as `-`. IIS, CGI, PHP and WSGI stacks map `X_Kedge_Principal` and
/// `X.Kedge.Principal` to the same variable as `X-Kedge-Principal` (`HTTP_X_KEDGE_PRINCIPAL`),
/// so a spoofed look-alike must go as surely as the exact name.
pub fn remove_identity_headers(headers: &mut HeaderMap, identity: &[HeaderName]) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| identity.iter().any(|id| same_variable(k.as_str(), id.as_str())))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// Whether two header names become the same CGI-style variable.
fn same_variable(a: &str, b: &str) -> bool {
    let norm = |c: u8| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            b'-'
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

/// Whether one `Connection` value holds the `close` option.
pub fn says_close(value: &HeaderValue) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case("close"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers.get_all(CONNECTION).iter().flat_map(tokens)
}

/// The comma-separated options of one `Connection` value (none if it is not visible ASCII).
fn tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    let text = value.to_str().unwrap_or("");
    text.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// The hop-by-hop headers every proxy drops (besides those the `Connection` header names).
static HOP_BY_HOP: [&HeaderName; 9] = [
    &CONNECTION,
    &TE,
    &TRAILER,
    &TRANSFER_ENCODING,
    &UPGRADE,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &PROXY_AUTHENTICATE,
    &PROXY_AUTHORIZATION,
];

/// Which of `names` (at most 32) `headers` holds, as bits by position: one walk over the map's
/// few names. Removing or looking up each name outright hashed and probed for every one of
/// them, on every request, though nearly all are absent.
fn present(headers: &HeaderMap, names: &[&HeaderName]) -> u32 {
    debug_assert!(names.len() <= 32);
    let mut present = 0u32;
    for key in headers.keys() {
        for (i, name) in names.iter().enumerate() {
            if key == *name {
                present |= 1 << i;
            }
        }
    }
    present
}

/// Removes the headers of `names` whose bits [`present`] set: a hashed lookup only for a name
/// that is there.
fn remove_marked(headers: &mut HeaderMap, names: &[&HeaderName], marked: u32) {
    for (i, name) in names.iter().enumerate() {
        if marked & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
}

/// Removes every header of `names` that `headers` holds.
fn remove_present(headers: &mut HeaderMap, names: &[&HeaderName]) {
    remove_marked(headers, names, present(headers, names));
}

/// Removes hop-by-hop headers: the fixed list and every header the `Connection` header names,
/// except `Authorization`, which kedge never drops on the way to a passthrough backend.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let found = present(headers, &HOP_BY_HOP);
    // `CONNECTION` is `HOP_BY_HOP[0]`; the headers it names go first, while it is there to read.
    if found & 1 != 0 {
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|n| *n != AUTHORIZATION)
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    remove_marked(headers, &HOP_BY_HOP, found);
}

/// Headers kedge adds to a forwarded request (forwarding, an assert route's identity). They are
/// written after the client's when the head is encoded, never put into the parsed map: hyper
/// sizes that map to the client's headers, and growing it rehashed every header on each
/// request. Whoever pushes a name removes the client's own copies of it from the map first.
///
/// Names and values are borrowed where they live longer than the request (a route's configured
/// names, a connection's identity): cloning one would write its reference count, and a route's
/// names are shared by every worker, so each clone and drop moved a cache line between cores.
/// Short values made per request (a timestamp, a signature) are kept inline, unallocated.
#[derive(Debug, Default)]
pub struct AddedHeaders<'a>(Vec<(&'a HeaderName, Added<'a>)>);

/// One added value.
#[derive(Debug)]
enum Added<'a> {
    /// Made for this request, or cheap to clone (a static or per-connection value).
    Owned(HeaderValue),
    /// Lives as long as the request.
    Borrowed(&'a HeaderValue),
    /// A short value made for this request: its bytes and length.
    Inline([u8; INLINE_VALUE], u8),
}

/// The longest value kept inline: a signature (`v2=` and 64 hex digits) fits, and so does a
/// timestamp.
pub const INLINE_VALUE: usize = 72;

impl Added<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Added::Owned(v) => v.as_bytes(),
            Added::Borrowed(v) => v.as_bytes(),
            Added::Inline(buf, len) => &buf[..usize::from(*len)],
        }
    }
}

impl<'a> AddedHeaders<'a> {
    /// Room for the forwarding and identity headers.
    pub fn new() -> Self {
        Self(Vec::with_capacity(8))
    }

    /// Adds `name: value` (after those added before).
    pub fn push(&mut self, name: &'a HeaderName, value: HeaderValue) {
        self.0.push((name, Added::Owned(value)));
    }

    /// Adds `name: value`, borrowing the value.
    pub fn push_borrowed(&mut self, name: &'a HeaderName, value: &'a HeaderValue) {
        self.0.push((name, Added::Borrowed(value)));
    }

    /// Adds `name: value` for a short value made for this request: kept inline when it is at
    /// most [`INLINE_VALUE`] bytes, else allocated. `None`, with nothing added, when `value` is
    /// not a valid header value.
    pub fn push_short(&mut self, name: &'a HeaderName, value: &[u8]) -> Option<()> {
        // No early exit: the check of a short value is then a few vector instructions.
        let valid = value
            .iter()
            .fold(true, |ok, &b| ok & ((b >= 0x20 && b != 0x7f) | (b == b'\t')));
        if !valid {
            return None;
        }
        let added = match u8::try_from(value.len()) {
            Ok(len) if value.len() <= INLINE_VALUE => {
                let mut buf = [0u8; INLINE_VALUE];
                buf[..value.len()].copy_from_slice(value);
                Added::Inline(buf, len)
            }
            _ => Added::Owned(HeaderValue::from_bytes(value).ok()?),
        };
        self.0.push((name, added));
        Some(())
    }

    /// The headers added, in order: each name and its value's bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &[u8])> {
        self.0.iter().map(|(n, v)| (*n, v.as_bytes()))
    }

    /// The value added under `name`, if one was (as text).
    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| std::str::from_utf8(v).expect("test values are UTF-8"))
    }

    /// How many values were added under `name`.
    #[cfg(test)]
    pub fn count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .count()
    }
}

/// Readies a client request's headers for a backend: hop-by-hop headers out (a chunked body
/// stays chunked: `RequestFraming::of` reads its framing from these headers, so a chunked `GET`
/// body is not taken for none), the client's forwarding headers out; kedge's own forwarding
/// headers are returned, to be encoded after the client's.
pub fn prepare_request<'a>(headers: &mut HeaderMap, forwarding: &'a Forwarding) -> AddedHeaders<'a> {
    let chunked = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("chunked"));
    strip_hop_by_hop(headers);
    if chunked {
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
    let mut added = AddedHeaders::new();
    forwarding.apply(headers, &mut added);
    added
}

/// The forwarding headers of one client connection, formatted once when it opens.
#[derive(Debug)]
pub struct Forwarding {
    x_forwarded_for: HeaderValue,
    proto: &'static str,
    /// `for=<node>;proto=<proto>`: the `Forwarded` value without a request's host.
    forwarded: HeaderValue,
    /// The last request's `Host` and the `Forwarded` value made for it (a connection's requests
    /// name one host).
    last_host: std::sync::Mutex<Option<(HeaderValue, HeaderValue)>>,
}

impl Forwarding {
    /// For requests from `client`, over TLS or not.
    pub fn new(client: SocketAddr, tls: bool) -> Self {
        let ip = client.ip().to_canonical();
        let proto = if tls { "https" } else { "http" };
        let node = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        Self {
            x_forwarded_for: value(ip.to_string()),
            proto,
            forwarded: value(format!("for={node};proto={proto}")),
            last_host: std::sync::Mutex::new(None),
        }
    }

    /// Removes the forwarding headers the client sent from `headers` and adds kedge's.
    pub fn apply<'a>(&'a self, headers: &mut HeaderMap, added: &mut AddedHeaders<'a>) {
        let forwarded = match headers.get(http::header::HOST) {
            Some(host) => self.forwarded_for_host(host),
            None => self.forwarded.clone(),
        };
        remove_present(headers, &[&FORWARDED, &X_FORWARDED_FOR, &X_FORWARDED_PROTO]);
        added.push_borrowed(&X_FORWARDED_FOR, &self.x_forwarded_for);
        added.push(&X_FORWARDED_PROTO, HeaderValue::from_static(self.proto));
        added.push(&FORWARDED, forwarded);
    }

    /// The `Forwarded` value for a request naming `host`: with `host="…"` when the host can be
    /// quoted as it is, made once per host the connection names.
    fn forwarded_for_host(&self, host: &HeaderValue) -> HeaderValue {
        let mut last = self
            .last_host
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((h, v)) = last.as_ref() {
            if h == host {
                return v.clone();
            }
        }
        let quotable = |h: &str| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        let v = match host.to_str() {
            Ok(h) if quotable(h) => {
                let base = self.forwarded.to_str().expect("formatted from ASCII");
                value(format!("{base};host=\"{h}\""))
            }
            _ => self.forwarded.clone(),
        };
        *last = Some((host.clone(), v.clone()));
        v
    }
}

fn value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).expect("addresses and checked hosts are valid header values")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_but_authorization_stays() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, X-Private, Authorization"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Negotiate YWJj"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-private").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get(CONNECTION).is_none());
        assert!(h.get(TRANSFER_ENCODING).is_none());
        assert_eq!(h.get(AUTHORIZATION).expect("kept"), "Negotiate YWJj");
        assert!(h.get("x-keep").is_some());
    }

    #[test]
    fn every_hop_by_hop_header_goes_with_or_without_a_connection_header() {
        for with_connection in [false, true] {
            let mut h = HeaderMap::new();
            for name in [
                "te",
                "trailer",
                "transfer-encoding",
                "upgrade",
                "keep-alive",
                "proxy-connection",
                "proxy-authenticate",
                "proxy-authorization",
            ] {
                let name = HeaderName::from_bytes(name.as_bytes()).expect("name");
                h.append(name.clone(), HeaderValue::from_static("a"));
                h.append(name, HeaderValue::from_static("b"));
            }
            if with_connection {
                h.extend(headers(&[
                    ("connection", "X-One"),
                    ("connection", "x-two, close"),
                    ("x-one", "1"),
                    ("x-two", "2"),
                ]));
                h.append("x-two", HeaderValue::from_static("2"));
            }
            h.extend(headers(&[("host", "outlook.contoso.com"), ("x-keep", "1")]));
            strip_hop_by_hop(&mut h);
            let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
            left.sort_unstable();
            assert_eq!(left, ["host", "x-keep"], "with Connection: {with_connection}");
            assert_eq!(h.len(), 2, "every value of a removed name goes");
        }
    }

    /// The client's map after `apply`, and what kedge added.
    fn applied(fwd: &Forwarding, mut h: HeaderMap) -> (HeaderMap, AddedHeaders<'_>) {
        let mut added = AddedHeaders::new();
        fwd.apply(&mut h, &mut added);
        (h, added)
    }

    /// A map of `pairs`, each appended in order.
    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn client_forwarding_headers_are_replaced() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "gopher"),
            ("forwarded", "for=6.6.6.6"),
            ("host", "outlook.contoso.com"),
        ]);
        let fwd = Forwarding::new("192.0.2.7:5555".parse().expect("addr"), true);
        let (h, added) = applied(&fwd, h);
        for name in ["x-forwarded-for", "x-forwarded-proto", "forwarded"] {
            assert!(h.get(name).is_none(), "the client's {name} is still there");
            assert_eq!(added.count(name), 1, "{name}");
        }
        assert_eq!(added.get("x-forwarded-for").expect("xff"), "192.0.2.7");
        assert_eq!(added.get("x-forwarded-proto").expect("proto"), "https");
        assert_eq!(
            added.get("forwarded").expect("fwd"),
            "for=192.0.2.7;proto=https;host=\"outlook.contoso.com\""
        );
    }

    #[test]
    fn each_request_s_host_is_the_one_in_forwarded() {
        let fwd = Forwarding::new("192.0.2.7:5555".parse().expect("addr"), true);
        for host in [
            "outlook.contoso.com",
            "mail.contoso.com",
            "outlook.contoso.com",
            "a\"b",
        ] {
            let mut h = HeaderMap::new();
            h.insert(http::header::HOST, HeaderValue::from_str(host).expect("host"));
            let (_, added) = applied(&fwd, h);
            let want = if host.contains('"') {
                "for=192.0.2.7;proto=https".to_owned()
            } else {
                format!("for=192.0.2.7;proto=https;host=\"{host}\"")
            };
            assert_eq!(added.get("forwarded").expect("fwd"), want.as_str(), "{host}");
        }
    }

    #[test]
    fn ipv6_clients_are_quoted_in_forwarded() {
        let fwd = Forwarding::new("[2001:db8::1]:443".parse().expect("addr"), false);
        let (_, added) = applied(&fwd, HeaderMap::new());
        assert_eq!(
            added.get("forwarded").expect("fwd"),
            "for=\"[2001:db8::1]\";proto=http"
        );
    }

    #[test]
    fn identity_look_alikes_are_removed_with_the_exact_name() {
        let mut h = HeaderMap::new();
        for name in [
            "x-kedge-principal",
            "x_kedge_principal",
            "x.kedge_principal",
            "x-kedge_timestamp",
        ] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_static("administrator@CONTOSO.COM"),
            );
        }
        h.insert("x-kedge-principals", HeaderValue::from_static("kept"));
        h.insert("x_other", HeaderValue::from_static("kept"));
        let identity = [
            HeaderName::from_static("x-kedge-principal"),
            HeaderName::from_static("x-kedge-timestamp"),
        ];
        remove_identity_headers(&mut h, &identity);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["x-kedge-principals", "x_other"]);
    }

    #[test]
    fn connection_close_is_seen() {
        for close in ["Keep-Alive, Close", "close", " ,CLOSE ,", "upgrade,close"] {
            assert!(says_close(&HeaderValue::from_static(close)), "{close}");
        }
        for not in ["", "keep-alive", "closed", "close-ish, x", "clo se"] {
            assert!(!says_close(&HeaderValue::from_static(not)), "{not}");
        }
        // Not visible ASCII: the value says nothing (as `HeaderValue::to_str` refuses it).
        assert!(!says_close(&HeaderValue::from_bytes(b"close, \xff").unwrap()));
    }
}
