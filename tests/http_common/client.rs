//! A keep-alive HTTP/1.1 client on one connection (plain or TLS), with bodies that can be fed
//! chunk by chunk, and raw-socket helpers for malformed input.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A request body: empty, whole, or fed through a channel (with an optional declared length).
pub enum TestBody {
    /// No body.
    Empty,
    /// A whole body.
    Full(Option<Bytes>),
    /// Chunks as they are sent.
    Channel(mpsc::Receiver<Bytes>, Option<u64>),
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            TestBody::Empty => Poll::Ready(None),
            TestBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            TestBody::Channel(rx, _) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, TestBody::Empty | TestBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            TestBody::Empty | TestBody::Full(None) => SizeHint::with_exact(0),
            TestBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            TestBody::Channel(_, Some(n)) => SizeHint::with_exact(*n),
            TestBody::Channel(_, None) => SizeHint::default(),
        }
    }
}

/// A reply read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// Every value of a header.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_string())
            .collect()
    }
    /// One header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("?").to_string())
    }
}

/// One client connection.
pub struct Conn {
    sender: SendRequest<TestBody>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Conn {
    /// Connects over plain TCP.
    pub async fn plain(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self::over(stream).await
    }

    /// Connects over plain TCP from `local` (an address on loopback: `127.0.0.2`), writes
    /// `prefix` (a PROXY header) and speaks HTTP after it.
    pub async fn plain_after(addr: SocketAddr, local: std::net::IpAddr, prefix: &[u8]) -> Conn {
        use tokio::io::AsyncWriteExt;
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(local, 0))
            .expect("bind the client's address");
        let mut stream = socket.connect(addr).await.expect("connect");
        stream.write_all(prefix).await.expect("write the prefix");
        Self::over(stream).await
    }

    /// Connects over TLS, trusting `ca_pem`, asking for `name`.
    pub async fn tls(addr: SocketAddr, ca_pem: &str, name: &str) -> Conn {
        Self::tls_after(addr, &[], ca_pem, name).await
    }

    /// Connects, writes `prefix` (a PROXY header) in clear, then speaks TLS.
    pub async fn tls_after(addr: SocketAddr, prefix: &[u8], ca_pem: &str, name: &str) -> Conn {
        use tokio::io::AsyncWriteExt;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(prefix).await.expect("write the prefix");
        let tls = tls_connector(ca_pem, &[b"http/1.1"])
            .connect(ServerName::try_from(name.to_string()).expect("name"), stream)
            .await
            .expect("TLS handshake");
        Self::over(tls).await
    }

    async fn over<T>(io: T) -> Conn
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .expect("handshake");
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Conn { sender, driver }
    }

    /// Sends a request and returns the response head with a streaming body.
    pub async fn send(&mut self, req: Request<TestBody>) -> Result<Response<Incoming>, hyper::Error> {
        self.sender.ready().await?;
        self.sender.send_request(req).await
    }

    /// `GET path` with `headers`, read whole.
    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut b = Request::get(path).header("host", "outlook.kedge.test");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self
            .send(b.body(TestBody::Empty).expect("request"))
            .await
            .expect("response");
        read(resp).await
    }

    /// `GET path` carrying a fresh fake Negotiate token for `user`, bounded in time.
    pub async fn get_as(&mut self, what: &str, path: &str, user: &str) -> Reply {
        let authz = super::fake::header(user, "");
        super::bounded(what, self.get(path, &[("authorization", &authz)])).await
    }

    /// `GET path` with `Authorization: authorization` as given (a scheme and a token, or
    /// anything a hostile client sends), bounded in time.
    pub async fn get_with(&mut self, what: &str, path: &str, authorization: &str) -> Reply {
        super::bounded(what, self.get(path, &[("authorization", authorization)])).await
    }

    /// `GET path` with no credentials, bounded in time.
    pub async fn get_plain(&mut self, what: &str, path: &str) -> Reply {
        super::bounded(what, self.get(path, &[])).await
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.driver.is_finished()
    }
}

/// Reads a response whole.
pub async fn read(resp: Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A rustls client trusting `ca_pem`, offering `alpn`.
pub fn tls_connector(ca_pem: &str, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut cfg = client_config(ca_pem);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// A TLS client trusting `ca_pem` only.
pub fn client_config(ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let c: CertificateDer<'static> = c.expect("pem");
        roots.add(c).expect("root");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Writes `bytes` on a fresh connection and reads until the server closes (or `BOUND`).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(super::BOUND, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status line's code of a raw reply (0 when there is none).
pub fn status_of(raw: &str) -> u16 {
    raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}
