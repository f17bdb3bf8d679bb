//! A throwaway `redis-server` (Debian package `redis-server`) on a free loopback port: no
//! persistence, its own temporary directory, under the same pipe-watching supervisor as the KDC
//! (it dies with the value that started it and with the test process). It can be killed and
//! started again on the same port, to test what happens while a shared store is away.

use std::path::PathBuf;
use std::process::Command;

use super::daemon::{free_port, Daemon};
use super::kdc::tool;

/// One `redis-server` on 127.0.0.1.
pub struct RedisServer {
    // Field order is drop order: the daemon dies before its directory goes.
    daemon: Option<Daemon>,
    port: u16,
    tls: bool,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it owns its socket.
    pub fn start() -> RedisServer {
        Self::start_opts(None)
    }

    /// Like [`RedisServer::start`], but speaking only TLS with this certificate chain and key
    /// (PEM; clients are not asked for certificates).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> RedisServer {
        Self::start_opts(Some((cert_pem, key_pem)))
    }

    fn start_opts(tls: Option<(&str, &str)>) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("kedge-redis-")
            .tempdir()
            .expect("create temp dir for redis-server");
        if let Some((cert, key)) = tls {
            std::fs::write(dir.path().join("server.crt"), cert).unwrap();
            std::fs::write(dir.path().join("server.key"), key).unwrap();
        }
        let mut server = RedisServer {
            daemon: None,
            port: 0,
            tls: tls.is_some(),
            dir,
        };
        let mut last_error = String::new();
        for _ in 0..5 {
            let (sockets, port) = free_port(false);
            drop(sockets);
            server.port = port;
            match server.spawn() {
                Ok(()) => return server,
                // Another process took the port between our probe and the server's bind.
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server after 5 attempts: {last_error}")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let program = tool("redis-server", "redis-server");
        let mut cmd = Command::new(program);
        let port = self.port.to_string();
        if self.tls {
            let d = self.dir.path();
            cmd.args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(d.join("server.crt"))
                .arg("--tls-key-file")
                .arg(d.join("server.key"));
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--protected-mode", "yes", "--logfile", ""])
            // `DEBUG SLEEP` lets a test stall the server.
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(self.dir.path());
        let mut daemon = Daemon::spawn("redis-server", &mut cmd, self.dir.path(), None);
        daemon.wait_listening(&[self.port], self.dir.path())?;
        self.daemon = Some(daemon);
        Ok(())
    }

    /// `redis://127.0.0.1:<port>/0` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory (log in `redis-server.out`).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Kills the server (SIGKILL: no goodbye to its clients). Its data goes with it.
    pub fn kill(&mut self) {
        drop(self.daemon.take());
    }

    /// Starts a new, empty server on the same port (after [`RedisServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn()
            .unwrap_or_else(|e| panic!("redis-server did not come back on port {}: {e}", self.port));
    }
}
