//! Talking to a KDC or kpasswd server over TCP (RFC 4120 §7.2.2, RFC 3244 §2): each message
//! is sent with a 4-byte big-endian length prefix and the reply read the same way, within a
//! timeout. The bytes themselves are built and read by `krb::kdc_client`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Replies larger than this are refused (AS-REPs with PACs are a few KiB).
pub const MAX_REPLY: usize = 1 << 20;

/// Why an exchange with a KDC failed.
#[derive(Debug, thiserror::Error)]
pub enum KdcIoError {
    /// No address for the name.
    #[error("{server}: cannot resolve: {reason}")]
    Resolve { server: String, reason: String },
    /// Connect, send or receive failed.
    #[error("{server}: {what}: {reason}")]
    Io {
        server: String,
        what: &'static str,
        reason: String,
    },
    /// No answer in time.
    #[error("{server}: no reply within {0:?}", .timeout)]
    Timeout { server: String, timeout: Duration },
    /// The reply's length prefix is impossible.
    #[error("{server}: reply length {len} refused (high bit set or over {MAX_REPLY} bytes)")]
    BadLength { server: String, len: u32 },
}

/// One TCP exchange: the reply and the local address used (for KRB-PRIV s-address).
pub async fn exchange(server: &str, msg: &[u8], timeout: Duration) -> Result<(Vec<u8>, IpAddr), KdcIoError> {
    exchange_with(server, timeout, |_| msg.to_vec()).await
}

/// One TCP exchange whose message is built once connected, from the local address (the
/// KRB-PRIV s-address MIT's client sends, RFC 4120 §5.7.1).
pub async fn exchange_with(
    server: &str,
    timeout: Duration,
    build: impl FnOnce(IpAddr) -> Vec<u8>,
) -> Result<(Vec<u8>, IpAddr), KdcIoError> {
    match tokio::time::timeout(timeout, exchange_inner(server, build)).await {
        Ok(r) => r,
        Err(_) => Err(KdcIoError::Timeout {
            server: server.to_string(),
            timeout,
        }),
    }
}

async fn exchange_inner(
    server: &str,
    build: impl FnOnce(IpAddr) -> Vec<u8>,
) -> Result<(Vec<u8>, IpAddr), KdcIoError> {
    let io = |what: &'static str| {
        move |e: std::io::Error| KdcIoError::Io {
            server: server.to_string(),
            what,
            reason: e.to_string(),
        }
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(server)
        .await
        .map_err(|e| KdcIoError::Resolve {
            server: server.to_string(),
            reason: e.to_string(),
        })?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(io("connect")(e)),
        (None, None) => {
            return Err(KdcIoError::Resolve {
                server: server.to_string(),
                reason: "no addresses".into(),
            })
        }
    };
    let local = stream.local_addr().map_err(io("local address"))?.ip();
    let msg = zeroize::Zeroizing::new(build(local));
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    let mut framed = Vec::with_capacity(4 + msg.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&msg);
    stream.write_all(&framed).await.map_err(io("send"))?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.map_err(io("receive"))?;
    let len = u32::from_be_bytes(len);
    if len & 0x8000_0000 != 0 || len as usize > MAX_REPLY {
        return Err(KdcIoError::BadLength {
            server: server.to_string(),
            len,
        });
    }
    let mut reply = vec![0u8; len as usize];
    stream.read_exact(&mut reply).await.map_err(io("receive"))?;
    Ok((reply, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn length_prefixed_exchange_round_trips() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut len = [0u8; 4];
            s.read_exact(&mut len).await.unwrap();
            let mut m = vec![0; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut m).await.unwrap();
            m.reverse();
            s.write_all(&(m.len() as u32).to_be_bytes()).await.unwrap();
            s.write_all(&m).await.unwrap();
        });
        let (r, ip) = exchange(&addr, b"abc", Duration::from_secs(5)).await.unwrap();
        assert_eq!(r, b"cba");
        assert!(ip.is_loopback());
    }

    #[tokio::test]
    async fn silent_server_times_out_and_huge_length_is_refused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            let (mut s2, _) = l.accept().await.unwrap();
            s2.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let e = exchange(&addr, b"x", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, KdcIoError::Timeout { .. }), "{e}");
        let e = exchange(&addr, b"x", Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(e, KdcIoError::BadLength { .. }), "{e}");
    }
}
