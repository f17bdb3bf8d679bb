//! A throwaway Active Directory domain controller: Debian's Samba AD DC (`samba-tool domain
//! provision`, then `samba -i`), realm `KEDGE.AD`, in a temporary directory with its own
//! smb.conf, private, state, lock, cache, pid and log directories; nothing under /etc or /var.
//!
//! **Ports.** Samba's KDC listens on 88 and kpasswd on 464, and neither can be moved. So the DC
//! runs in a network namespace of its own (`unshare --net`, loopback brought up inside): no
//! fixed port is taken on the machine, several test binaries (or engineers) can each run a DC at
//! once, and the DC serves only what is inside. Everything that talks to it (kinit, kvno,
//! python-gssapi, `kedge spn check --kdc`, `kedge asa roll …`) runs through
//! [`SambaDc::command`], i.e. `nsenter --net=/proc/<samba pid>/ns/net`; a `kedge run` that only
//! reads the keytab runs outside, on the test's own loopback. Creating the namespace takes
//! root: without it the tests print why and pass as skipped ([`SambaDc::shared`] is `None`).
//!
//! **Sharing.** Provisioning takes seconds (measured with `SAMBA_PROVISION` on stderr), so one
//! DC serves every test of a binary. Tests that change accounts (password rolls) create their
//! own accounts ([`SambaDc::add_computer`], [`SambaDc::add_user`]) and never touch another's.
//!
//! Accounts are administered offline through the DC's `sam.ldb` with `samba-tool` (ldb locks
//! make that safe while samba runs). The DC runs under the pipe-watching supervisor of
//! `daemon.rs`: it dies with the test process, and its directory goes with it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::daemon::Daemon;
use super::gss::{GSS_CLIENT, PYTHON};
use super::kdc::{run_with_stdin, tool};

/// The AD realm (DNS domain `kedge.ad`).
pub const AD_REALM: &str = "KEDGE.AD";
/// The NetBIOS domain.
pub const AD_DOMAIN: &str = "KEDGE";
/// `Administrator`'s password.
pub const AD_ADMIN_PASSWORD: &str = "Admin-Pa55w0rd!";
/// A user every test may get tickets as (never changed).
pub const AD_USER: (&str, &str) = ("alice", "Alice-Pa55w0rd!");

const INSTALL_HINT: &str = "The Samba AD tests need Debian's Samba AD DC: run `scripts/install-test-deps` \
     (it installs samba, samba-ad-provision, samba-ad-dc, ldb-tools, krb5-user and python3-gssapi)";

/// A running Samba AD DC in its own network namespace.
pub struct SambaDc {
    // Field order is drop order: the daemon dies before its directory goes.
    daemon: Daemon,
    counter: AtomicU64,
    dir: tempfile::TempDir,
    /// Seconds `samba-tool domain provision` took.
    pub provision_secs: f64,
    /// Seconds from `samba -i` to the KDC, kpasswd and LDAP listening.
    pub start_secs: f64,
}

/// Whether this process runs as root (the network namespace needs it).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Listening TCP ports in the network namespace of `pid`.
fn listening_ports(pid: u32) -> Vec<u16> {
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) == Some(&"0A") {
                if let Some(p) = f
                    .get(1)
                    .and_then(|l| l.rsplit_once(':'))
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                {
                    out.push(p);
                }
            }
        }
    }
    out
}

impl SambaDc {
    /// The DC of this test process, provisioned and started on first use; `None` (with the
    /// reason on stderr) when not running as root. Panics when Samba is not installed.
    pub fn shared() -> Option<&'static SambaDc> {
        static DC: OnceLock<Option<SambaDc>> = OnceLock::new();
        DC.get_or_init(|| {
            if !is_root() {
                eprintln!(
                    "SKIPPED: the Samba AD DC tests need root (a network namespace for the DC's fixed \
                     ports 88 and 464); run them as root, as CI does"
                );
                return None;
            }
            Some(Self::start())
        })
        .as_ref()
    }

    fn start() -> SambaDc {
        let samba_tool = tool("samba-tool", "samba");
        let samba = tool("samba", "samba");
        for (t, pkg) in [
            ("unshare", "util-linux"),
            ("nsenter", "util-linux"),
            ("ip", "iproute2"),
            ("kinit", "krb5-user"),
        ] {
            tool(t, pkg);
        }
        assert!(
            Path::new("/usr/share/samba/setup").exists(),
            "Samba's provisioning data is missing (Debian package samba-ad-provision). {INSTALL_HINT}"
        );
        let dir = tempfile::Builder::new()
            .prefix("kedge-samba-")
            .tempdir()
            .expect("create temp dir for the DC");
        let d = dir.path();
        let opt = |k: &str, v: String| format!("--option={k}={v}");
        let t0 = Instant::now();
        let out = Command::new(&samba_tool)
            .args([
                "domain",
                "provision",
                "--use-rfc2307",
                "--server-role=dc",
                "--dns-backend=NONE",
            ])
            .arg(format!("--realm={AD_REALM}"))
            .arg(format!("--domain={AD_DOMAIN}"))
            .arg(format!("--adminpass={AD_ADMIN_PASSWORD}"))
            .arg("--host-name=dc1")
            .arg(format!("--targetdir={}", d.join("dc").display()))
            .arg(opt("interfaces", "lo".into()))
            .arg(opt("bind interfaces only", "yes".into()))
            .arg(opt("log file", d.join("log.%m").display().to_string()))
            .arg(opt("pid directory", d.join("pid").display().to_string()))
            .arg(opt(
                "winbindd socket directory",
                d.join("winbindd").display().to_string(),
            ))
            .arg(opt(
                "ntp signd socket directory",
                d.join("ntp_signd").display().to_string(),
            ))
            // Only what the tests use: the KDC (with kpasswd) and LDAP.
            .arg(opt("server services", "kdc ldap".into()))
            .output()
            .expect("run samba-tool domain provision");
        assert!(
            out.status.success(),
            "samba-tool domain provision failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let provision_secs = t0.elapsed().as_secs_f64();
        eprintln!("SAMBA_PROVISION {provision_secs:.1} s");
        // `spn check --ldap` binds simply over plain LDAP to this throwaway DC (provision does
        // not keep this option from the command line, so it goes into smb.conf here).
        let conf = d.join("dc/etc/smb.conf");
        let text = fs::read_to_string(&conf).expect("read the provisioned smb.conf");
        let text = text.replacen(
            "[global]\n",
            "[global]\n\tldap server require strong auth = no\n",
            1,
        );
        fs::write(&conf, text).expect("write smb.conf");
        for sub in ["pid", "winbindd", "ntp_signd", "ccache", "keytabs"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        fs::write(
            d.join("krb5.conf"),
            format!(
                "[libdefaults]\n default_realm = {AD_REALM}\n dns_lookup_kdc = false\n dns_lookup_realm = false\n \
                 rdns = false\n dns_canonicalize_hostname = false\n udp_preference_limit = 1\n\n\
                 [realms]\n {AD_REALM} = {{\n  kdc = 127.0.0.1:88\n  kpasswd_server = 127.0.0.1:464\n }}\n"
            ),
        )
        .unwrap();

        let mut dc = SambaDc {
            daemon: Daemon::placeholder(),
            counter: AtomicU64::new(0),
            dir,
            provision_secs,
            start_secs: 0.0,
        };
        // Password rolls in quick succession, and no complexity surprises for test passwords.
        dc.samba_tool(&[
            "domain",
            "passwordsettings",
            "set",
            "--min-pwd-age=0",
            "--history-length=0",
        ]);
        dc.add_user(AD_USER.0, AD_USER.1, &[]);

        let t1 = Instant::now();
        let smb_conf = dc.smb_conf();
        // A PID namespace too, with unshare's child as its init: when the supervisor kills
        // unshare, the kernel kills that child (--kill-child) and with it every samba process,
        // so none is left to write into the directory the supervisor then removes.
        let mut cmd = Command::new(tool("unshare", "util-linux"));
        cmd.args([
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "/bin/sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(&samba)
        .args(["-i", "-d", "1", "-s"])
        .arg(&smb_conf);
        dc.daemon = Daemon::spawn("samba", &mut cmd, dc.dir.path(), Some(dc.dir.path()));
        let pid = dc.daemon.pid;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ports = listening_ports(pid);
            if [88, 464, 389].iter().all(|p| ports.contains(p)) {
                break;
            }
            assert!(
                Path::new(&format!("/proc/{pid}")).exists(),
                "samba exited before listening:\n{}",
                dc.logs()
            );
            assert!(
                Instant::now() < deadline,
                "samba not listening after 60 s:\n{}",
                dc.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        dc.start_secs = t1.elapsed().as_secs_f64();
        eprintln!("SAMBA_START {:.1} s", dc.start_secs);
        dc
    }

    /// Whether something listens on TCP `port` inside the DC's network namespace.
    pub fn listening(&self, port: u16) -> bool {
        listening_ports(self.daemon.pid).contains(&port)
    }

    /// The DC's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its smb.conf.
    pub fn smb_conf(&self) -> PathBuf {
        self.dir().join("dc/etc/smb.conf")
    }

    /// The `krb5.conf` clients use (KDC and kpasswd on 127.0.0.1 inside the namespace).
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir().join("krb5.conf")
    }

    /// The KDC as `kedge … --kdc` takes it (inside the namespace).
    pub fn kdc_addr(&self) -> &'static str {
        "127.0.0.1:88"
    }

    /// `program` run inside the DC's network namespace, with the DC's krb5.conf.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(tool("nsenter", "util-linux"));
        cmd.arg(format!("--net=/proc/{}/ns/net", self.daemon.pid))
            .arg("--")
            .arg(program)
            .env("KRB5_CONFIG", self.krb5_conf())
            .env(
                "KRB5CCNAME",
                format!("FILE:{}", self.dir().join("ccache/default").display()),
            );
        cmd
    }

    /// `samba-tool <args> -s smb.conf` (offline, on sam.ldb); panics on failure; its stdout.
    pub fn samba_tool(&self, args: &[&str]) -> String {
        let out = Command::new(tool("samba-tool", "samba"))
            .args(args)
            .arg("-s")
            .arg(self.smb_conf())
            .output()
            .expect("run samba-tool");
        assert!(
            out.status.success(),
            "samba-tool {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A user account `name` (sAMAccountName as given) with `password` and `spns`.
    pub fn add_user(&self, name: &str, password: &str, spns: &[&str]) {
        self.samba_tool(&["user", "create", name, password]);
        for s in spns {
            self.samba_tool(&["spn", "add", s, name]);
        }
    }

    /// A computer account `name$` with `password` and `spns`.
    pub fn add_computer(&self, name: &str, password: &str, spns: &[&str]) {
        let sam = format!("{name}$");
        self.samba_tool(&["computer", "create", name]);
        self.samba_tool(&["user", "setpassword", &sam, &format!("--newpassword={password}")]);
        for s in spns {
            self.samba_tool(&["spn", "add", s, &sam]);
        }
    }

    /// Adds `spn` to the account `sam` past Samba's uniqueness check (which refuses duplicates,
    /// as AD's `setspn -S` does; AD itself still ends up with them: `setspn -A`, replication of
    /// conflicting writes, other domains of the forest). Written into the domain partition with
    /// no ldb modules loaded, as only a test DC may be.
    pub fn add_spn_unchecked(&self, sam: &str, spn: &str) {
        let out = Command::new(tool("ldbsearch", "ldb-tools"))
            .arg("-H")
            .arg(self.dir().join("dc/private/sam.ldb"))
            .arg(format!("(sAMAccountName={sam})"))
            .arg("dn")
            .output()
            .expect("run ldbsearch");
        let text = String::from_utf8_lossy(&out.stdout);
        let dn = text
            .lines()
            .find_map(|l| l.strip_prefix("dn: "))
            .unwrap_or_else(|| panic!("no account {sam}: {text}"));
        let partition = self
            .dir()
            .join(format!("dc/private/sam.ldb.d/DC={},DC=AD.ldb", AD_DOMAIN));
        let ldif =
            format!("dn: {dn}\nchangetype: modify\nadd: servicePrincipalName\nservicePrincipalName: {spn}\n");
        let out = run_with_stdin(
            Command::new(tool("ldbmodify", "ldb-tools"))
                .arg("-H")
                .arg(partition)
                .args(["-o", "modules:"]),
            ldif.as_bytes(),
        );
        assert!(
            out.status.success(),
            "ldbmodify {spn} on {sam}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// AD's `msDS-KeyVersionNumber` of the account `sam`.
    pub fn kvno_of(&self, sam: &str) -> u32 {
        let out = Command::new(tool("ldbsearch", "ldb-tools"))
            .arg("-H")
            .arg(self.dir().join("dc/private/sam.ldb"))
            .arg(format!("(sAMAccountName={sam})"))
            .arg("msDS-KeyVersionNumber")
            .output()
            .expect("run ldbsearch");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("msDS-KeyVersionNumber: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no msDS-KeyVersionNumber for {sam}: {text}"))
    }

    /// The keys AD holds for `sam`, as `samba-tool domain exportkeytab` writes them.
    pub fn export_keytab(&self, sam: &str, path: &Path) {
        self.samba_tool(&[
            "domain",
            "exportkeytab",
            &path.display().to_string(),
            &format!("--principal={sam}"),
        ]);
    }

    /// A fresh credential cache of `user` (kinit with `password`, inside the namespace).
    pub fn kinit(&self, user: &str, password: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let cc = self.dir().join("ccache").join(format!("{user}.{n}"));
        let out = run_with_stdin(
            self.command(tool("kinit", "krb5-user"))
                .env("KRB5CCNAME", format!("FILE:{}", cc.display()))
                .arg(format!("{user}@{AD_REALM}")),
            format!("{password}\n").as_bytes(),
        );
        assert!(
            out.status.success(),
            "kinit {user}@{AD_REALM}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cc
    }

    /// `n` SPNEGO tokens for `spn` (`http/outlook.kedge.ad@KEDGE.AD`) from the ccache `cc`
    /// (python-gssapi inside the namespace; the service ticket is cached in `cc`, so its kvno
    /// is the one current when `cc` first asked for it).
    pub fn tokens(&self, cc: &Path, spn: &str, n: usize) -> Result<Vec<Vec<u8>>, String> {
        let out = self
            .command(PYTHON)
            .env("KRB5CCNAME", format!("FILE:{}", cc.display()))
            .args([
                GSS_CLIENT,
                "tokens",
                "--spn",
                spn,
                "--mech",
                "spnego",
                "--count",
                &n.to_string(),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run gss_client.py");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| B64.decode(l).expect("base64 token"))
            .collect())
    }

    /// The samba log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = fs::read_dir(self.dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == "samba.out" || name.starts_with("log.") {
                    let text = fs::read_to_string(e.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(60).collect();
                    s.push_str(&format!("--- {name}\n"));
                    for l in tail.into_iter().rev() {
                        s.push_str(l);
                        s.push('\n');
                    }
                }
            }
        }
        s
    }
}
