//! `kedge-bench http` against an in-test hyper server that validates `Authorization: Negotiate`
//! with the real `Acceptor` (replay cache and PAC signature on) and keeps auth connection-bound,
//! as kedge and IIS do.
//!
//! The `#[ignore]`d test at the end is the sample load run:
//! `cargo test --release --test bench_client_http -- --ignored --nocapture`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use kedge::benchclient::credentials;
use kedge::benchclient::http::{self as bench_http, AuthMode, HttpOptions, HttpTokens, UserPer};
use kedge::benchclient::limits::Limits;
use kedge::benchclient::stats::Report;
use kedge::benchclient::tls::Trust;
use kedge::benchclient::tokens::{TokenMinter, TokenSpec, FLAGS_HTTP};
use kedge::krb::acceptor::{AcceptCtx, Acceptor, AcceptorConfig, Framing};
use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keyset::KeySet;
use kedge::krb::keytab::{Keytab, KeytabEntry};
use kedge::krb::principal::Principal;
use kedge::krb::replay::ReplayCache;

const SPN: &str = "http/outlook.contoso.com@CONTOSO.COM";

/// What the server saw.
struct Server {
    acceptor: Acceptor,
    tokens: Mutex<HashSet<Vec<u8>>>,
    accepted: AtomicU64,
    rejected: AtomicU64,
    connections: AtomicU64,
    /// Authenticated requests whose principal differs from the previous one on the connection.
    user_switches: AtomicU64,
    /// Keep every token seen (off for load runs: it would hold every token in memory).
    record_tokens: AtomicBool,
}

fn write_keytab(dir: &tempfile::TempDir, key: &Key) -> PathBuf {
    let kt = Keytab {
        entries: vec![KeytabEntry {
            principal: Principal::parse(SPN, "").unwrap(),
            timestamp: 0,
            kvno: 3,
            key: key.clone(),
        }],
        skipped_unsupported: 0,
    };
    let path = dir.path().join("asa.keytab");
    std::fs::write(&path, kt.to_bytes()).unwrap();
    path
}

fn server_state(key: &Key) -> Arc<Server> {
    let kt = Keytab {
        entries: vec![KeytabEntry {
            principal: Principal::parse(SPN, "").unwrap(),
            timestamp: 0,
            kvno: 3,
            key: key.clone(),
        }],
        skipped_unsupported: 0,
    };
    let cfg = AcceptorConfig {
        realm: Some("CONTOSO.COM".into()),
        hosts: vec!["outlook.contoso.com".into()],
        ..Default::default()
    };
    Arc::new(Server {
        acceptor: Acceptor::new(
            cfg,
            KeySet::from_keytab(&kt, SystemTime::now(), "test"),
            Arc::new(ReplayCache::new(2_000_000)),
        ),
        tokens: Mutex::new(HashSet::new()),
        accepted: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        record_tokens: AtomicBool::new(true),
        user_switches: AtomicU64::new(0),
    })
}

/// 200 for a valid token (or on an already authenticated connection), else 401 with
/// `WWW-Authenticate: Negotiate`; the AP-REP goes back where mutual auth was asked.
fn handle(
    state: &Server,
    authed: &AtomicBool,
    user: &Mutex<Option<String>>,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Negotiate "))
        .map(str::to_owned);
    let unauthorized = || {
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(http::header::WWW_AUTHENTICATE, "Negotiate")
            .body(Full::new(Bytes::from_static(b"401")))
            .unwrap()
    };
    let Some(b64) = header else {
        return if authed.load(Ordering::Relaxed) {
            Response::new(Full::new(Bytes::from_static(b"ok")))
        } else {
            unauthorized()
        };
    };
    let Ok(token) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        state.rejected.fetch_add(1, Ordering::Relaxed);
        return unauthorized();
    };
    if state.record_tokens.load(Ordering::Relaxed) {
        state.tokens.lock().unwrap().insert(token.clone());
    }
    let ctx = AcceptCtx {
        now: SystemTime::now(),
        service: "http",
        channel_binding: None,
        groups: None,
        check_replay: true,
    };
    match state.acceptor.accept(&token, &ctx) {
        Ok(a) => {
            state.accepted.fetch_add(1, Ordering::Relaxed);
            authed.store(true, Ordering::Relaxed);
            let name = a.client.to_string();
            let mut last = user.lock().unwrap();
            if last.as_ref().is_some_and(|l| *l != name) {
                state.user_switches.fetch_add(1, Ordering::Relaxed);
            }
            *last = Some(name);
            let mut resp = Response::builder();
            if let Some(rep) = a.response_token().filter(|_| a.mutual) {
                let b64 = base64::engine::general_purpose::STANDARD.encode(rep);
                resp = resp.header(http::header::WWW_AUTHENTICATE, format!("Negotiate {b64}"));
            }
            resp.body(Full::new(Bytes::from_static(b"ok"))).unwrap()
        }
        Err(e) => {
            eprintln!("server rejected a token: {e}");
            state.rejected.fetch_add(1, Ordering::Relaxed);
            authed.store(false, Ordering::Relaxed);
            unauthorized()
        }
    }
}

/// Serves on 127.0.0.1:0 (TLS when `tls` is given) until the test's runtime ends.
async fn serve(state: Arc<Server>, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            state.connections.fetch_add(1, Ordering::Relaxed);
            let state = state.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let authed = Arc::new(AtomicBool::new(false));
                let user = Arc::new(Mutex::new(None));
                let svc = service_fn(move |req: Request<Incoming>| {
                    let resp = handle(&state, &authed, &user, &req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                    Some(cfg) => {
                        let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await else {
                            return;
                        };
                        let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                    }
                }
            });
        }
    });
    addr
}

fn feed(key: &Key, dir: &tempfile::TempDir, users: u32, pac: Option<u32>, per: UserPer) -> Arc<HttpTokens> {
    let spn = credentials::parse_spn(SPN).unwrap();
    let cred = credentials::load(&write_keytab(dir, key), &spn, None, None).unwrap();
    assert_eq!(cred.kvno, 3);
    let spec = TokenSpec {
        user_count: users,
        framing: Framing::Spnego { legacy_oid: true },
        gss_flags: FLAGS_HTTP,
        pac_groups: pac,
    };
    let now = kedge::krb::time::unix_secs(SystemTime::now());
    let minter = Arc::new(TokenMinter::new(&cred, spec, now).unwrap());
    Arc::new(HttpTokens::new(minter, per, 1))
}

fn options(url: String, mode: AuthMode, requests: u64, connections: usize) -> HttpOptions {
    HttpOptions {
        url,
        resolve: None,
        trust: None,
        connections,
        limits: Limits {
            duration: None,
            count: Some(requests),
            max_time: Duration::from_secs(60),
            rate: None,
        },
        mode,
        expect_status: 200,
        mutual: false,
        request_timeout: Duration::from_secs(10),
    }
}

/// A plain-HTTP test server accepting tokens for a fresh random key, and a directory for its
/// keytab.
struct Target {
    dir: tempfile::TempDir,
    key: Key,
    state: Arc<Server>,
    addr: SocketAddr,
}

impl Target {
    async fn start() -> Self {
        let key = Key::random(EncType::Aes256CtsHmacSha196);
        let state = server_state(&key);
        let addr = serve(state.clone(), None).await;
        Self {
            dir: tempfile::tempdir().unwrap(),
            key,
            state,
            addr,
        }
    }
}

fn show(r: &Report) {
    eprint!("{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_token_mode_sends_a_distinct_valid_token_on_every_request() {
    let Target {
        dir,
        key,
        state,
        addr,
    } = Target::start().await;
    let feed = feed(&key, &dir, 50, Some(30), UserPer::Connection);
    let opts = options(format!("http://{addr}/mapi/emsmdb"), AuthMode::FreshToken, 400, 4);
    let r = bench_http::run(opts, Some(feed.clone())).await.unwrap();
    feed.stop();
    show(&r);
    assert_eq!(r.completed, 400);
    assert_eq!(r.ok, 400);
    assert_eq!(r.errors, 0, "{:?}", r.errors_by_kind);
    assert_eq!(r.tokens_sent, 400);
    assert_eq!(state.accepted.load(Ordering::Relaxed), 400);
    assert_eq!(state.rejected.load(Ordering::Relaxed), 0);
    assert_eq!(state.tokens.lock().unwrap().len(), 400, "every token distinct");
    assert_eq!(r.connects, 4);
    assert_eq!(
        state.user_switches.load(Ordering::Relaxed),
        0,
        "one user per connection"
    );
    assert!(r.latency_us.p50 > 0 && r.latency_us.max >= r.latency_us.p99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_per_request_rotate_the_principal_on_every_request() {
    let Target {
        dir,
        key,
        state,
        addr,
    } = Target::start().await;
    let feed = feed(&key, &dir, 50, None, UserPer::Request);
    let opts = options(format!("http://{addr}/"), AuthMode::FreshToken, 200, 2);
    let r = bench_http::run(opts, Some(feed.clone())).await.unwrap();
    feed.stop();
    assert_eq!((r.ok, r.errors), (200, 0), "{:?}", r.errors_by_kind);
    assert_eq!(state.tokens.lock().unwrap().len(), 200);
    assert!(state.user_switches.load(Ordering::Relaxed) > 150);
    assert!(r.mint.unwrap().minted_background >= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_run_never_exceeds_its_rate() {
    let Target { dir, key, addr, .. } = Target::start().await;
    let feed = feed(&key, &dir, 10, None, UserPer::Connection);
    let mut opts = options(format!("http://{addr}/mapi/emsmdb"), AuthMode::FreshToken, 0, 4);
    // 100/s for 0.3 s: slots at 0, 10, …, 290 ms (30), plus at most one late slot per connection
    // taken before the deadline check; an unpaced run would do thousands here.
    opts.limits = Limits {
        duration: Some(Duration::from_millis(300)),
        count: None,
        max_time: Duration::from_secs(60),
        rate: Some(100.0),
    };
    let r = bench_http::run(opts, Some(feed.clone())).await.unwrap();
    feed.stop();
    show(&r);
    assert_eq!(r.paced_rate, Some(100.0));
    assert!(
        r.completed >= 1 && r.completed <= 30 + 4,
        "completed {}",
        r.completed
    );
    assert_eq!(r.errors, 0, "{:?}", r.errors_by_kind);
    assert!(format!("{r}").contains("paced at 100/s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_connection_mode_sends_one_token_per_connection() {
    let Target {
        dir,
        key,
        state,
        addr,
    } = Target::start().await;
    let feed = feed(&key, &dir, 10, None, UserPer::Connection);
    let opts = options(format!("http://{addr}/"), AuthMode::PerConnection, 300, 3);
    let r = bench_http::run(opts, Some(feed.clone())).await.unwrap();
    feed.stop();
    show(&r);
    assert_eq!((r.ok, r.errors), (300, 0));
    assert_eq!(r.tokens_sent, 3);
    assert_eq!(state.accepted.load(Ordering::Relaxed), 3);
    assert_eq!(state.connections.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_mode_counts_401s_as_errors_by_status() {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let state = server_state(&key);
    let addr = serve(state.clone(), None).await;
    let opts = options(format!("http://{addr}/"), AuthMode::None, 50, 2);
    let r = bench_http::run(opts, None).await.unwrap();
    assert_eq!(r.completed, 50);
    assert_eq!(r.ok, 0);
    assert_eq!(r.errors_by_kind.get("status 401"), Some(&50));
    assert_eq!(r.tokens_sent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_auth_checks_every_ap_rep_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let state = server_state(&key);
    let cert = rcgen::generate_simple_self_signed(vec!["outlook.contoso.com".into()]).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into()),
        )
        .unwrap();
    let addr = serve(state.clone(), Some(Arc::new(server_cfg))).await;
    let feed = feed(&key, &dir, 20, Some(10), UserPer::Connection);
    let mut opts = options(
        format!("https://outlook.contoso.com:{}/ews/exchange.asmx", addr.port()),
        AuthMode::FreshToken,
        120,
        3,
    );
    opts.resolve = Some("outlook.contoso.com:127.0.0.1".into());
    opts.trust = Some(Trust::Ca(ca));
    opts.mutual = true;
    let r = bench_http::run(opts, Some(feed.clone())).await.unwrap();
    feed.stop();
    show(&r);
    assert_eq!((r.ok, r.errors), (120, 0), "{:?}", r.errors_by_kind);
    assert_eq!(r.mutual_verified, 120);
    assert_eq!(state.tokens.lock().unwrap().len(), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_for_another_key_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let state = server_state(&Key::random(EncType::Aes256CtsHmacSha196));
    let addr = serve(state.clone(), None).await;
    let feed = feed(
        &Key::random(EncType::Aes256CtsHmacSha196),
        &dir,
        5,
        None,
        UserPer::Request,
    );
    let opts = options(format!("http://{addr}/"), AuthMode::FreshToken, 20, 2);
    let r = bench_http::run(opts, Some(feed.clone())).await.unwrap();
    feed.stop();
    assert_eq!(r.ok, 0);
    assert_eq!(r.errors_by_kind.get("status 401"), Some(&20));
    assert_eq!(state.rejected.load(Ordering::Relaxed), 20);
}

/// The sample load run (release build recommended): 32 connections, 5 s per mode, AD-sized
/// tokens (30-group PAC) for 1,000 users, against this file's validating server in-process.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "load run; use --release --ignored --nocapture"]
async fn sample_load_run() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let state = server_state(&key);
    state.record_tokens.store(false, Ordering::Relaxed);
    let addr = serve(state.clone(), None).await;
    let secs: u64 = std::env::var("KEDGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for mode in [AuthMode::None, AuthMode::FreshToken, AuthMode::PerConnection] {
        let feed = (mode != AuthMode::None).then(|| feed(&key, &dir, 1000, Some(30), UserPer::Connection));
        let mut opts = options(format!("http://{addr}/mapi/emsmdb"), mode, 0, 32);
        opts.limits = Limits {
            duration: Some(Duration::from_secs(secs)),
            count: None,
            max_time: Duration::from_secs(secs + 30),
            rate: None,
        };
        if mode == AuthMode::None {
            opts.expect_status = 401;
        }
        let r = bench_http::run(opts, feed.clone()).await.unwrap();
        if let Some(f) = feed {
            f.stop();
        }
        show(&r);
        assert_eq!(r.errors, 0, "{:?}", r.errors_by_kind);
        // Each run starts with an empty cache, as a fresh process would.
        state.acceptor.replay_cache().clear();
    }
}
