//! Members scripted byte by byte (for what a well-behaved HTTP server never sends: stalls,
//! broken framing, unasked-for bytes), a pool over them, and kedge in front with one `/` route.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use kedge::pool::Pool;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::fake::FakeAuth;
use super::kedge::{start_over, Kedge};

const ROUTES: &str = "name = \"https\"\n[[routes]]\nprefix = \"/\"\npool = \"cas\"\n";

/// A member on `127.0.0.1:0` that runs `serve` on every connection it accepts.
pub async fn serve_raw<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s));
        }
    });
    addr
}

/// Reads one request head (up to its blank line); `None` when the connection ends first.
pub async fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    read_until(s, b"\r\n\r\n").await
}

/// Reads byte by byte until what was read ends with `end` (nothing past it is taken); `None`
/// when the connection ends first.
pub async fn read_until(s: &mut TcpStream, end: &[u8]) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(end) {
        match s.read(&mut byte).await {
            Ok(1) => got.push(byte[0]),
            _ => return None,
        }
    }
    Some(got)
}

/// Reads and drops whatever comes until the connection ends.
pub async fn drain(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Pool `cas` over `members`, with `timeouts` (TOML lines), a one-minute ejection and no
/// active health check.
pub fn pool(members: &[(&str, SocketAddr)], timeouts: &str) -> Arc<Pool> {
    let extra = format!("eject_base_ms = 60000\neject_max_ms = 60000\n{timeouts}");
    super::kedge::multi_member_pool_with("cas", members, &extra)
}

/// kedge with one passthrough route `/` over `pool`, tokens checked by [`FakeAuth`].
pub async fn edge(pool: Arc<Pool>) -> Kedge {
    kedge::observe::install();
    let pools = BTreeMap::from([("cas".to_string(), pool)]);
    start_over(ROUTES, pools, Arc::new(FakeAuth::default()), None).await
}
