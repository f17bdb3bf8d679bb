//! A recording HTTP/1.1 backend standing in for a CAS member.
//!
//! Each connection learns its owner from the first Negotiate token it sees (as a CAS member's
//! connection-bound logon does) and every request is recorded with its connection and that
//! owner. `/stream…` echoes the request body as it arrives (full duplex, like an RPC channel),
//! `/close` answers with `Connection: close`, `/ntlm/…` plays an NTLM handshake.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

/// A token → owner function (fake tokens, or a real acceptor of the backend's own).
pub type OwnerOf = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// What the backend saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Backend connection number (1, 2, …).
    pub conn: u64,
    /// Whose logon that connection carried when the request came (None: no logon yet).
    pub owner: Option<String>,
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The headers as received.
    pub headers: HeaderMap,
}

/// The backend's reply to a Negotiate token, so tests can check it comes back untouched.
pub const BACKEND_APREP: &str = "Negotiate YmFja2VuZC1hcC1yZXA=";

/// A running backend.
pub struct TestBackend {
    /// Its address.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    conns: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(s: String) -> Body {
    Full::new(Bytes::from(s)).map_err(|never| match never {}).boxed()
}

impl TestBackend {
    /// A backend that understands fake tokens.
    pub async fn start() -> Self {
        Self::start_with(Arc::new(|t: &[u8]| super::fake::user_of(t))).await
    }

    /// A backend that learns owners with `owner_of`.
    pub async fn start_with(owner_of: OwnerOf) -> Self {
        Self::start_inner(owner_of, None).await
    }

    /// A TLS backend (fake tokens) with the given certificate.
    pub async fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certs");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
        let cfg =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        Self::start_inner(Arc::new(|t: &[u8]| super::fake::user_of(t)), Some(acceptor)).await
    }

    async fn start_inner(owner_of: OwnerOf, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicU64::new(0));
        let (seen2, conns2) = (seen.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let conn = conns2.fetch_add(1, Ordering::SeqCst) + 1;
                let owner: Arc<Mutex<Option<String>>> = Arc::default();
                let (seen, owner_of, tls) = (seen2.clone(), owner_of.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (seen, owner, owner_of) = (seen.clone(), owner.clone(), owner_of.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(handle(req, conn, &owner, &owner_of, &seen))
                        }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            seen,
            conns,
            task,
        }
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.conns.load(Ordering::SeqCst)
    }
}

fn handle(
    req: Request<Incoming>,
    conn: u64,
    owner: &Mutex<Option<String>>,
    owner_of: &OwnerOf,
    seen: &Mutex<Vec<Seen>>,
) -> Response<Body> {
    let authz = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let mut reply_auth = None;
    let mut status = StatusCode::OK;
    if let Some(a) = &authz {
        let (scheme, b64) = a.split_once(' ').unwrap_or((a, ""));
        let token = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default();
        if scheme.eq_ignore_ascii_case("negotiate") && !token.starts_with(b"NTLMSSP\0") {
            *owner.lock().unwrap() = owner_of(&token);
            reply_auth = Some(HeaderValue::from_static(BACKEND_APREP));
        } else if token.get(8) == Some(&1) {
            // NTLM negotiate → challenge.
            status = StatusCode::UNAUTHORIZED;
            reply_auth = Some(HeaderValue::from_static("NTLM TlRMTVNTUAACAAAA"));
        } else if token.get(8) == Some(&3) {
            *owner.lock().unwrap() = Some("ntlm-user".into());
        }
    }
    let path = req.uri().path().to_string();
    let who = owner.lock().unwrap().clone();
    seen.lock().unwrap().push(Seen {
        conn,
        owner: who.clone(),
        method: req.method().clone(),
        path: path.clone(),
        headers: req.headers().clone(),
    });
    let mut resp = if path.starts_with("/stream") {
        Response::new(req.into_body().boxed())
    } else if let Some(code) = path.strip_prefix("/status/") {
        let mut r = Response::new(full(String::new()));
        *r.status_mut() = code.parse().unwrap_or(StatusCode::IM_A_TEAPOT);
        r
    } else {
        Response::new(full(format!(
            "conn={conn} owner={} path={path}",
            who.as_deref().unwrap_or("-")
        )))
    };
    if status != StatusCode::OK {
        *resp.status_mut() = status;
    }
    if path == "/close" {
        resp.headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
    }
    if let Some(v) = reply_auth {
        resp.headers_mut().insert("www-authenticate", v);
    }
    resp.headers_mut()
        .insert("x-backend-conn", HeaderValue::from(conn));
    resp.headers_mut()
        .insert("persistent-auth", HeaderValue::from_static("true"));
    resp
}
