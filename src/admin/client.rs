//! A tiny admin-API client for the CLI (`kedge status`, `kedge drain`).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::status::{MemberStatus, Status};

/// Why the admin API could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// Connecting failed.
    #[error("connect {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    /// The HTTP exchange failed.
    #[error("http: {0}")]
    Http(String),
    /// No answer in time.
    #[error("no answer from {0} within 10 s")]
    Timeout(String),
    /// The API answered an error.
    #[error("{status}: {body}")]
    Status { status: StatusCode, body: String },
    /// The body was not the expected JSON.
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
}

async fn request(
    addr: &str,
    method: Method,
    path: &str,
    token: Option<&[u8]>,
) -> Result<Bytes, AdminClientError> {
    let fut = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| AdminClientError::Connect {
                addr: addr.into(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
            .await
            .map_err(|e| AdminClientError::Http(e.to_string()))?;
        let conn = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr);
        if let Some(t) = token {
            let mut v = b"Bearer ".to_vec();
            v.extend_from_slice(t);
            let mut v = http::HeaderValue::from_bytes(&v)
                .map_err(|_| AdminClientError::Http("the token is not a valid header value".into()))?;
            v.set_sensitive(true);
            req = req.header(http::header::AUTHORIZATION, v);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| AdminClientError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| AdminClientError::Http(e.to_string()))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), 64 << 20)
            .collect()
            .await
            .map_err(|e| AdminClientError::Http(e.to_string()))?
            .to_bytes();
        conn.abort();
        if !status.is_success() {
            return Err(AdminClientError::Status {
                status,
                body: String::from_utf8_lossy(&body).trim().to_owned(),
            });
        }
        Ok(body)
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| Err(AdminClientError::Timeout(addr.into())))
}

/// `GET /status` from the admin listener at `addr` (`host:port`).
pub async fn fetch_status(addr: &str) -> Result<Status, AdminClientError> {
    Ok(serde_json::from_slice(
        &request(addr, Method::GET, "/status", None).await?,
    )?)
}

/// `POST /drain/<pool>/<member>` (or `/undrain/...` when `drain` is false) with the admin
/// bearer `token`.
pub async fn drain_member(
    addr: &str,
    pool: &str,
    member: &str,
    drain: bool,
    token: Option<&[u8]>,
) -> Result<MemberStatus, AdminClientError> {
    let verb = if drain { "drain" } else { "undrain" };
    let path = format!("/{verb}/{pool}/{member}");
    Ok(serde_json::from_slice(
        &request(addr, Method::POST, &path, token).await?,
    )?)
}
