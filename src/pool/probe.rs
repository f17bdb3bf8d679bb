//! One active health probe: TCP connect, or HTTP/1.1 `GET` of the health page (over TLS when
//! the pool has TLS) where only status 200 passes.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer within the check timeout.
    #[error("timed out")]
    Timeout,
    /// TCP connect failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// TLS handshake failed.
    #[error("tls: {0}")]
    Tls(std::io::Error),
    /// Reading or writing the request failed.
    #[error("io: {0}")]
    Io(std::io::Error),
    /// The reply was not an HTTP/1.x status line.
    #[error("malformed reply")]
    Malformed,
    /// The health page answered something other than 200.
    #[error("status {0}")]
    Status(u16),
}

/// What to probe.
#[derive(Clone, Debug)]
pub enum Probe {
    /// Connect and close.
    Tcp,
    /// `GET path` with `Host: host_header`, optionally over TLS.
    Http {
        /// Request path.
        path: String,
        /// TLS config and server name, for HTTPS pools.
        tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    },
}

/// Runs `probe` against `host:port`, all of it within `timeout`.
pub async fn run(probe: &Probe, host: &str, port: u16, timeout: Duration) -> Result<(), ProbeError> {
    tokio::time::timeout(timeout, run_inner(probe, host, port))
        .await
        .unwrap_or(Err(ProbeError::Timeout))
}

async fn run_inner(probe: &Probe, host: &str, port: u16) -> Result<(), ProbeError> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(ProbeError::Connect)?;
    match probe {
        Probe::Tcp => Ok(()),
        Probe::Http { path, tls: None } => http_get(tcp, host, port, path, 80).await,
        Probe::Http {
            path,
            tls: Some((config, name)),
        } => {
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name.clone(), tcp)
                .await
                .map_err(ProbeError::Tls)?;
            http_get(tls, host, port, path, 443).await
        }
    }
}

async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    host: &str,
    port: u16,
    path: &str,
    default_port: u16,
) -> Result<(), ProbeError> {
    let host_header = match (port == default_port, host.contains(':')) {
        (true, false) => host.to_owned(),
        (true, true) => format!("[{host}]"),
        (false, false) => format!("{host}:{port}"),
        (false, true) => format!("[{host}]:{port}"),
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: kedge-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.map_err(ProbeError::Io)?;
    s.flush().await.map_err(ProbeError::Io)?;
    let status = read_status(&mut s).await?;
    // Closing without reading the body is fine: we asked for `Connection: close`.
    let _ = s.shutdown().await;
    if status == 200 {
        Ok(())
    } else {
        Err(ProbeError::Status(status))
    }
}

/// Reads the status line (at most 1 KiB) and returns its code.
async fn read_status<S: AsyncRead + Unpin>(s: &mut S) -> Result<u16, ProbeError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        if buf.len() > 1024 {
            return Err(ProbeError::Malformed);
        }
        let n = s.read(&mut chunk).await.map_err(ProbeError::Io)?;
        if n == 0 {
            return Err(ProbeError::Malformed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status_line(&buf).ok_or(ProbeError::Malformed)
}

/// `HTTP/1.x NNN ...` → `NNN`.
pub(crate) fn parse_status_line(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_status_line;

    #[test]
    fn status_line_yields_its_code() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable\r\nx"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 204\r\n"), Some(204));
    }

    #[test]
    fn garbage_is_not_a_status_line() {
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/2 200\r\n"), None);
    }
}
