//! HAProxy in TCP mode next to kedge, for the spliced-throughput comparison.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Haproxy {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_haproxy(backend: SocketAddr) -> Option<Haproxy> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = tempfile::tempdir().ok()?;
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 4000\n  nbthread 2\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
             timeout client 60s\n  timeout server 60s\n\nlisten rpc\n  bind 127.0.0.1:{port}\n  \
             server cas1 {backend}\n"
        ),
    )
    .ok()?;
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let hp = Haproxy {
        child,
        addr,
        _dir: dir,
    };
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Some(hp);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}
