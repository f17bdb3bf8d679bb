//! Daemons of a test realm under a pipe-watching supervisor (they die with the `Kdc` that
//! started them and with the test process, even on SIGKILL), and free loopback ports for them.

use std::fs::{self, File};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::kdc::logs_in;

/// Supervisor for a daemon: runs it in the background, writes its pid, and kills it as soon as
/// its stdin (a pipe whose only writer is the test process) reaches EOF, i.e. when the `Kdc` is
/// dropped or the test process dies in any way. Exits when the daemon exits.
/// Arguments: `<dir to remove after the kill, or ""> <pidfile> <program> <args...>`.
/// (An asynchronous list's stdin is /dev/null unless redirected, hence the copy on fd 3.)
const SUPERVISOR: &str = r#"rmdir=$1; pidfile=$2; shift 2
exec 3<&0
"$@" </dev/null 3<&- &
pid=$!
echo "$pid" >"$pidfile"
{ while read -r _; do :; done; kill -KILL "$pid" 2>/dev/null; [ -z "$rmdir" ] || rm -rf "$rmdir"; } <&3 3<&- &
exec 3<&-
wait "$pid""#;

/// A loopback port free for TCP (and UDP when asked); the sockets hold it until dropped.
pub(crate) fn free_port(udp: bool) -> ((TcpListener, Option<UdpSocket>), u16) {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().unwrap().port();
        if !udp {
            return ((tcp, None), port);
        }
        if let Ok(u) = UdpSocket::bind(("127.0.0.1", port)) {
            return ((tcp, Some(u)), port);
        }
    }
}

/// A daemon under the pipe-watching supervisor.
pub(crate) struct Daemon {
    name: &'static str,
    shell: Option<Child>,
    stdin: Option<ChildStdin>,
    pub(crate) pid: u32,
}

impl Daemon {
    pub(crate) fn placeholder() -> Daemon {
        Daemon {
            name: "",
            shell: None,
            stdin: None,
            pid: 0,
        }
    }

    pub(crate) fn spawn(name: &'static str, cmd: &mut Command, dir: &Path, rmdir: Option<&Path>) -> Daemon {
        let log = File::create(dir.join(format!("{name}.out"))).expect("create daemon log");
        let pidfile = dir.join(format!("{name}.pid"));
        // A daemon started again in the same directory must not be taken for its predecessor.
        let _ = fs::remove_file(&pidfile);
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c")
            .arg(SUPERVISOR)
            .arg("kedge-supervisor")
            .arg(rmdir.map(|p| p.as_os_str().to_owned()).unwrap_or_default())
            .arg(&pidfile)
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut shell = sh.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdin = shell.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(5);
        let pid = loop {
            if let Some(pid) = fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "{name} supervisor wrote no pid");
            std::thread::sleep(Duration::from_millis(1));
        };
        Daemon {
            name,
            shell: Some(shell),
            stdin,
            pid,
        }
    }

    /// Waits until the daemon itself listens on every port (a listening socket on the port that
    /// is one of the daemon's own file descriptors: another process that took the port between
    /// our probe and the daemon's bind does not count); fails if the daemon exits first.
    pub(crate) fn wait_listening(&mut self, ports: &[u16], dir: &Path) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut pending: Vec<u16> = ports.to_vec();
        while !pending.is_empty() {
            let own = socket_inodes(self.pid);
            pending.retain(|&p| !listening_inodes(p).iter().any(|i| own.contains(i)));
            if pending.is_empty() {
                break;
            }
            if let Some(Ok(Some(status))) = self.shell.as_mut().map(Child::try_wait) {
                let logs = logs_in(dir);
                return Err(format!(
                    "{} exited ({status}) before listening on {ports:?}:\n{logs}",
                    self.name
                ));
            }
            if Instant::now() > deadline {
                let logs = logs_in(dir);
                return Err(format!(
                    "{} not listening on {pending:?} after 15 s:\n{logs}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

/// Inodes of the TCP sockets listening on `port` (any local address, IPv4 or IPv6).
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let on_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if on_port && *state == "0A" {
                if let Ok(i) = inode.parse() {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// Inodes of the sockets process `pid` holds open.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(Result::ok)
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut shell) = self.shell.take() else {
            return;
        };
        drop(self.stdin.take()); // EOF: the supervisor kills the daemon, then exits.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match shell.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    let _ = Command::new("kill")
                        .args(["-KILL", &self.pid.to_string()])
                        .status();
                    let _ = shell.kill();
                    let _ = shell.wait();
                    return;
                }
            }
        }
    }
}
