//! The HTTP driver: `connections` keep-alive HTTP/1.1 connections (plain TCP or rustls), each
//! sending one request at a time as `wrk -c` does, with a Negotiate token on every request
//! (`fresh-token`), on the first request of each connection only (`per-connection`, relying on
//! connection-bound auth as IIS and kedge do), or never (`none`, to compare with a proxy that does
//! no auth). Connections are opened before the clock starts; reconnects during the run count.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, HOST, WWW_AUTHENTICATE};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{watch, Barrier};

use crate::krb::crypto::Key;
use crate::krb::mint::verify_response;

use super::feed::{Feed, FeedStats, Local};
use super::limits::{Budget, Limits};
use super::stats::{loadavg, Report, Tally};
use super::tls::{client_config, server_name, Trust};
use super::tokens::TokenMinter;
use super::BenchError;

/// When a request carries a Negotiate token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// A fresh token on every request.
    FreshToken,
    /// A token on the first request of each connection; later requests rely on the
    /// connection being authenticated.
    PerConnection,
    /// No Authorization header at all.
    None,
}

impl AuthMode {
    /// Parses `fresh-token`, `per-connection` or `none`.
    pub fn parse(s: &str) -> Result<Self, BenchError> {
        match s {
            "fresh-token" | "fresh" => Ok(Self::FreshToken),
            "per-connection" | "connection" => Ok(Self::PerConnection),
            "none" => Ok(Self::None),
            _ => Err(BenchError::Invalid(format!(
                "mode {s:?}: want fresh-token, per-connection or none"
            ))),
        }
    }
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::FreshToken => "fresh-token",
            Self::PerConnection => "per-connection",
            Self::None => "none",
        }
    }
}

/// What to drive and how.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// `http://…` or `https://…` URL.
    pub url: String,
    /// `HOST:IP` or `HOST:PORT:IP` (as curl's `--resolve`): connect there for that host.
    pub resolve: Option<String>,
    /// Certificate trust for `https` URLs.
    pub trust: Option<Trust>,
    /// Concurrent connections.
    pub connections: usize,
    /// Run bounds.
    pub limits: Limits,
    /// When tokens are sent.
    pub mode: AuthMode,
    /// The status that counts as success.
    pub expect_status: u16,
    /// Check the AP-REP in `WWW-Authenticate` of successful authenticated responses.
    pub mutual: bool,
    /// Per-request timeout (a timed-out request closes its connection).
    pub request_timeout: Duration,
}

/// One ready token: the header value and the session key to check the AP-REP with.
pub struct HttpToken {
    /// `Negotiate <base64>`.
    pub header: HeaderValue,
    /// The ticket session key.
    pub session_key: Key,
}

/// Whose token a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserPer {
    /// Each connection is one user, as an Outlook or browser connection is: every token on it is
    /// for that user (a new user on each new connection).
    Connection,
    /// Every request is for the next user, round robin: the worst case for a proxy that pins
    /// an authenticated client connection to one user's backend connection.
    Request,
}

impl UserPer {
    /// Parses `connection` or `request`.
    pub fn parse(s: &str) -> Result<Self, BenchError> {
        match s {
            "connection" => Ok(Self::Connection),
            "request" => Ok(Self::Request),
            _ => Err(BenchError::Invalid(format!(
                "users per {s:?}: want connection or request"
            ))),
        }
    }
}

/// Where the HTTP driver's tokens come from. Per-request users come from a background [`Feed`];
/// a connection's own user's tokens are minted on the spot (a fresh authenticator around the
/// user's ticket costs about a microsecond, see `tokens`), and counted as inline mints.
pub struct HttpTokens {
    minter: Arc<TokenMinter>,
    per: UserPer,
    feed: Option<Feed<HttpToken>>,
    inline: std::sync::atomic::AtomicU64,
}

fn http_token(t: crate::benchclient::tokens::Token) -> HttpToken {
    let b64 = base64::engine::general_purpose::STANDARD.encode(&t.bytes);
    let header = HeaderValue::from_str(&format!("Negotiate {b64}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Negotiate"));
    HttpToken {
        header,
        session_key: t.session_key,
    }
}

impl HttpTokens {
    /// Tokens from `minter`, users chosen `per` connection or request; `threads` mint threads
    /// feed per-request tokens (0: minted inline).
    pub fn new(minter: Arc<TokenMinter>, per: UserPer, threads: usize) -> Self {
        let feed = (per == UserPer::Request).then(|| {
            let m = minter.clone();
            Feed::start(threads, 64, 64, Arc::new(move || http_token(m.mint())))
        });
        Self {
            minter,
            per,
            feed,
            inline: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn next(&self, local: &mut Local<HttpToken>, user: u32) -> HttpToken {
        match (&self.feed, self.per) {
            (Some(f), UserPer::Request) => f.next(local),
            _ => {
                self.inline.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                http_token(self.minter.mint_user_at(user, std::time::SystemTime::now()))
            }
        }
    }

    fn wait_ready(&self) {
        if let Some(f) = &self.feed {
            f.wait_full(Duration::from_secs(10));
        }
    }

    /// Minting counters.
    pub fn stats(&self) -> FeedStats {
        let mut s = self.feed.as_ref().map(Feed::stats).unwrap_or_default();
        s.minted_inline += self.inline.load(std::sync::atomic::Ordering::Relaxed);
        s
    }

    /// Stops the mint threads.
    pub fn stop(&self) {
        if let Some(f) = &self.feed {
            f.stop();
        }
    }
}

/// Where requests go, resolved once.
struct Target {
    addr: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    host: HeaderValue,
    path: PathAndQuery,
}

async fn resolve_target(opts: &HttpOptions) -> Result<Target, BenchError> {
    let bad = |msg: String| BenchError::Target {
        target: opts.url.clone(),
        msg,
    };
    let uri: Uri = opts
        .url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
    let https = match uri.scheme() {
        Some(s) if *s == Scheme::HTTPS => true,
        Some(s) if *s == Scheme::HTTP => false,
        _ => return Err(bad("want an http:// or https:// URL".into())),
    };
    let host = uri.host().ok_or_else(|| bad("no host".into()))?.to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let addr = match &opts.resolve {
        Some(r) => resolve_override(r, &host, port).map_err(bad)?,
        None => None,
    };
    let addr = match addr {
        Some(a) => a,
        None => tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port))
            .await
            .map_err(|e| bad(format!("resolving {host}: {e}")))?
            .next()
            .ok_or_else(|| bad(format!("{host} resolves to nothing")))?,
    };
    let tls = if https {
        let trust = opts
            .trust
            .as_ref()
            .ok_or_else(|| bad("https needs --ca FILE (or --insecure)".into()))?;
        Some((client_config(trust)?, server_name(&host)?))
    } else {
        None
    };
    Ok(Target {
        addr,
        tls,
        host: HeaderValue::from_str(&authority).map_err(|e| bad(e.to_string()))?,
        path: uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    })
}

/// Applies a `--resolve HOST:IP` / `HOST:PORT:IP` override when it names `host` (and `port`).
fn resolve_override(r: &str, host: &str, port: u16) -> Result<Option<SocketAddr>, String> {
    let (name, rest) = r
        .split_once(':')
        .ok_or_else(|| format!("--resolve {r:?}: want HOST:IP or HOST:PORT:IP"))?;
    let (want_port, ip) = match rest.split_once(':') {
        Some((p, ip)) if p.parse::<u16>().is_ok() && !p.is_empty() && !ip.is_empty() => {
            (p.parse::<u16>().ok(), ip)
        }
        _ => (None, rest),
    };
    let ip: std::net::IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("--resolve {r:?}: {ip:?} is not an IP address"))?;
    if !name.eq_ignore_ascii_case(host) || want_port.is_some_and(|p| p != port) {
        return Ok(None);
    }
    Ok(Some(SocketAddr::new(ip, port)))
}

struct Ctx {
    opts: HttpOptions,
    target: Target,
    tokens: Option<Arc<HttpTokens>>,
    budget: OnceLock<Budget>,
    /// Connections opened so far: the next connection's user.
    next_user: std::sync::atomic::AtomicU32,
}

/// Runs the load and returns its report. `tokens` is required unless the mode is `none`.
pub async fn run(opts: HttpOptions, tokens: Option<Arc<HttpTokens>>) -> Result<Report, BenchError> {
    opts.limits.validate()?;
    if opts.connections == 0 {
        return Err(BenchError::Invalid("--connections must be at least 1".into()));
    }
    if opts.mode != AuthMode::None && tokens.is_none() {
        return Err(BenchError::Invalid(
            "an authenticated mode needs a token feed".into(),
        ));
    }
    let target = resolve_target(&opts).await?;
    if let Some(t) = &tokens {
        t.wait_ready();
    }
    let n = opts.connections;
    let ctx = Arc::new(Ctx {
        opts,
        target,
        tokens,
        budget: OnceLock::new(),
        next_user: std::sync::atomic::AtomicU32::new(0),
    });
    let ready = Arc::new(Barrier::new(n + 1));
    let (go_tx, go_rx) = watch::channel(false);
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        let (ctx, ready, go) = (ctx.clone(), ready.clone(), go_rx.clone());
        workers.push(tokio::spawn(worker(ctx, ready, go)));
    }
    ready.wait().await;
    let load_start = loadavg();
    let start = Instant::now();
    let _ = ctx.budget.set(Budget::start(ctx.opts.limits, start));
    let _ = go_tx.send(true);
    let mut tally = Tally::new();
    for w in workers {
        if let Ok(t) = w.await {
            tally.merge(&t);
        }
    }
    let elapsed = start.elapsed();
    let mut report = Report::new(
        "http",
        ctx.opts.url.clone(),
        ctx.opts.mode.name().to_owned(),
        n,
        elapsed,
        &tally,
    );
    report.mint = ctx.tokens.as_ref().map(|t| t.stats());
    report.loadavg_start = load_start;
    report.paced_rate = ctx.opts.limits.rate;
    report.loadavg_end = loadavg();
    Ok(report)
}

/// A connection's sender, with whether the connection is authenticated.
struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    authed: bool,
    /// The user whose tokens this connection carries (with `UserPer::Connection`).
    user: u32,
}

async fn connect(ctx: &Ctx, tally: &mut Tally) -> Option<Conn> {
    let t = &ctx.target;
    let tcp = match tokio::time::timeout(ctx.opts.request_timeout, TcpStream::connect(t.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tally.error_with("connect", format!("{}: {e}", t.addr));
            return None;
        }
        Err(_) => {
            tally.error_with("connect", format!("{}: timed out", t.addr));
            return None;
        }
    };
    let _ = tcp.set_nodelay(true);
    tally.connects += 1;
    let handshake = match &t.tls {
        None => http1::handshake(TokioIo::new(tcp)).await.map(|(s, c)| {
            tokio::spawn(async move {
                let _ = c.await;
            });
            s
        }),
        Some((config, name)) => {
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let tls =
                match tokio::time::timeout(ctx.opts.request_timeout, connector.connect(name.clone(), tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(_)) | Err(_) => {
                        tally.error("tls");
                        return None;
                    }
                };
            http1::handshake(TokioIo::new(tls)).await.map(|(s, c)| {
                tokio::spawn(async move {
                    let _ = c.await;
                });
                s
            })
        }
    };
    match handshake {
        Ok(sender) => Some(Conn {
            sender,
            authed: false,
            user: ctx.next_user.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }),
        Err(e) => {
            tally.error_with("handshake", e);
            None
        }
    }
}

async fn worker(ctx: Arc<Ctx>, ready: Arc<Barrier>, mut go: watch::Receiver<bool>) -> Tally {
    let mut tally = Tally::new();
    let mut local = Local::default();
    let mut conn = connect(&ctx, &mut tally).await;
    ready.wait().await;
    let _ = go.wait_for(|g| *g).await;
    let Some(budget) = ctx.budget.get() else {
        return tally;
    };
    loop {
        if Instant::now() >= budget.deadline() {
            break;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                conn = connect(&ctx, &mut tally).await;
                if conn.is_none() {
                    // A failed connect costs the request it was for, so a dead target ends a
                    // counted run; back off a little so a refused port does not spin the core.
                    if !budget.take() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        if c.sender.ready().await.is_err() {
            // Closed by the peer between requests (keep-alive ended): reconnect, not a failure.
            conn = None;
            continue;
        }
        if !budget.take() {
            break;
        }
        let send_token = match ctx.opts.mode {
            AuthMode::FreshToken => true,
            AuthMode::PerConnection => !c.authed,
            AuthMode::None => false,
        };
        let token = match (&ctx.tokens, send_token) {
            (Some(t), true) => Some(t.next(&mut local, c.user)),
            _ => None,
        };
        let mut req = Request::builder()
            .method("GET")
            .uri(ctx.target.path.clone())
            .header(HOST, ctx.target.host.clone());
        if let Some(t) = &token {
            req = req.header(AUTHORIZATION, t.header.clone());
            tally.tokens_sent += 1;
        }
        let Ok(req) = req.body(Empty::<Bytes>::new()) else {
            tally.error("request");
            continue;
        };
        let t0 = budget.pace().await;
        let exchange = async {
            let resp = c.sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            body.collect().await?;
            Ok::<_, hyper::Error>(parts)
        };
        let parts = match tokio::time::timeout(ctx.opts.request_timeout, exchange).await {
            Err(_) => {
                tally.error("timeout");
                conn = None;
                continue;
            }
            Ok(Err(e)) => {
                let kind = if e.is_incomplete_message() || e.is_closed() {
                    "closed"
                } else {
                    "http"
                };
                tally.error_with(kind, e);
                conn = None;
                continue;
            }
            Ok(Ok(p)) => p,
        };
        let elapsed = t0.elapsed();
        let status = parts.status.as_u16();
        let ok = status == ctx.opts.expect_status;
        tally.completed(elapsed, status_name(status), ok);
        if !ok {
            tally.error(&format!("status {status}"));
        }
        if ok && token.is_some() {
            c.authed = true;
        }
        if status == 401 {
            c.authed = false;
        }
        if let (true, true, Some(t)) = (ctx.opts.mutual, ok, &token) {
            if check_ap_rep(&parts.headers, &t.session_key) {
                tally.mutual_ok += 1;
            } else {
                tally.error("mutual");
            }
        }
        let closing = parts
            .headers
            .get(CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closing {
            conn = None;
        }
    }
    tally
}

fn status_name(status: u16) -> &'static str {
    match status {
        200 => "200",
        204 => "204",
        301 => "301",
        302 => "302",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => "other",
    }
}

/// Whether `WWW-Authenticate: Negotiate <b64>` carries an AP-REP good for `session_key`.
fn check_ap_rep(headers: &http::HeaderMap, session_key: &Key) -> bool {
    headers.get_all(WWW_AUTHENTICATE).iter().any(|v| {
        let Ok(s) = v.to_str() else { return false };
        let Some((scheme, b64)) = s.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("negotiate") {
            return false;
        }
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .is_ok_and(|tok| verify_response(&tok, session_key).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_override_names_host_and_optional_port() {
        let a = resolve_override("outlook.contoso.com:127.0.0.1", "outlook.contoso.com", 8443).unwrap();
        assert_eq!(a, Some("127.0.0.1:8443".parse().unwrap()));
        let b = resolve_override("outlook.contoso.com:8443:127.0.0.2", "outlook.contoso.com", 8443).unwrap();
        assert_eq!(b, Some("127.0.0.2:8443".parse().unwrap()));
        let c = resolve_override("other:127.0.0.1", "outlook.contoso.com", 8443).unwrap();
        assert_eq!(c, None);
        assert!(resolve_override("outlook.contoso.com:nope", "outlook.contoso.com", 1).is_err());
    }
}
